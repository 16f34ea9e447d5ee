"""Plugins through ``ablate run`` in its own process: the shipped example (a low-rank predictor beside
the built-ins) runs in Ray's worker processes, which import it from the package Ray's runtime
environment ships, never from the working directory; an edit reruns exactly its trials; the results
folder keeps the source it ran, so ``ablate table`` reads it after the file is gone; a plugin kind
runs end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ablate.cli import main
from helpers.plugins import walk
from helpers.runs import run_process

pytestmark = pytest.mark.system
REPO = Path(__file__).resolve().parents[2]
SHRINK = [
    "--set", "train.epochs=1", "--set", "train.steps_per_epoch=2", "--set", "train.batch_size=64",
    "--set", "eval.probe_epochs=2", "--set", "eval.knn_k=10", "--set", "seeds=[0]",
]  # fmt: skip


def ablate_run(*argv: str) -> str:
    """``ablate run ARGV`` in its own process (with its own Ray), to the end; its output."""
    with run_process(*argv) as proc:
        out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def test_the_example_plugin_runs_in_ray_workers_and_an_edit_reruns_only_its_trials(tmp_path, capsys, monkeypatch):
    example = shutil.copytree(REPO / "examples" / "plugin_predictor", tmp_path / "example")
    monkeypatch.chdir(tmp_path)  # nothing is imported from the working directory: workers get a package
    results = tmp_path / "res"
    out = ablate_run(str(example / "sweep.yaml"), "--storage", str(results), *SHRINK)
    assert "5 trials" in out or "5/5" in out, out
    rows = pd.read_parquet(results / "plugin_predictor")
    final = rows[rows.is_final.astype(bool)]
    assert len(final) == 5 and set(final.status) == {"ok"}
    ours = final[final["predictor.name"] == "lowrank"]
    assert sorted(ours["predictor.rank"]) == [2, 16] and set(ours.plugin) == {"lowrank.py"}
    assert ours.plugin_sha256.str.len().eq(64).all() and final[final.plugin.isna()].shape[0] == 3
    assert ours.eig_align.notna().all()  # its W_p (linear_weight) got the spectra columns

    (example / "lowrank.py").write_text((example / "lowrank.py").read_text() + "\n# edited\n")
    out = ablate_run(str(example / "sweep.yaml"), "--storage", str(results), *SHRINK)
    assert "3 of 5 trials already done" in out and "running 2" in out, out
    rows = pd.read_parquet(results / "plugin_predictor")
    assert rows[rows.is_final.astype(bool)].trial_id.nunique() == 7  # 3 built-in + 2 old + 2 new plugin trials

    (example / "lowrank.py").unlink()  # the folder kept the source it ran
    assert main(["table", str(results / "plugin_predictor")]) == 0
    table = capsys.readouterr().out
    assert "lowrank" in table and "directpred" in table


def test_a_plugin_kind_runs_through_ablate_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "walk.py").write_text(walk())
    sweep = tmp_path / "w.yaml"
    sweep.write_text(
        "name: walk\nplugins: [walk.py]\nbase: {kind: walk}\ngrid: {steps: [2, 4]}\nseeds: [0, 1]\n"
        "table: {rows: [steps], metric: position, scale: 1.0}\n"
    )
    ablate_run(str(sweep), "--storage", str(tmp_path / "res"))
    rows = pd.read_parquet(tmp_path / "res" / "walk")
    final = rows[rows.is_final.astype(bool)].sort_values(["steps", "seed"])
    assert final.position.tolist() == [2.0, 4.0, 4.0, 8.0] and set(final.kind) == {"walk"}
    for command in (["table"], ["status"], ["plot"], ["report"]):  # every command works for a plugin kind
        assert main([*command, str(tmp_path / "res" / "walk")]) == 0, capsys.readouterr().err
    assert "steps" in capsys.readouterr().out
