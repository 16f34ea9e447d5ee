"""``ablate run`` into a pyarrow filesystem URI, then every command on that folder by URI, rerun,
--restart, and ``ablate submit`` of the results folder (the job reruns exactly its trials)."""

from __future__ import annotations

import shlex

import pandas as pd
import pytest

from ablate.cli import main
from ablate.sweep.load import read_sweep
from helpers.runs import every_command
from helpers.tiny_sweeps import write_sweep

pytestmark = pytest.mark.system

SWEEP = """\
grid:
  predictor.name: [linear, directpred]
seeds: [0]
table: {rows: [predictor.name], metric: z_std}
"""


def test_a_sweep_on_a_file_uri_and_every_command_on_it(ray_local, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, "uri", SWEEP)
    storage = f"file://{tmp_path}/store"
    folder = f"{storage}/uri"
    assert main(["run", str(path), "--storage", storage, "--set", "seeds=[0,1]"]) == 0
    out = capsys.readouterr().out
    assert "4 trials run" in out and "name=directpred" in out  # the table at the end, read from the URI
    assert pd.read_parquet(tmp_path / "store" / "uri").trial_id.nunique() == 4
    assert main(["run", folder]) == 0 and "already in" in capsys.readouterr().out  # the folder, overrides kept
    every_command(main, folder, capsys, tmp_path / "t.pt", "z_std.png", "_uri/report.html")
    assert main(["run", str(path), "--storage", storage, "--set", "seeds=[0,1]", "--restart"]) == 0
    assert "moved old results to" in capsys.readouterr().out
    assert len(list((tmp_path / "store").glob("uri.old-*"))) == 1 and not list(tmp_path.rglob("file:*"))


def test_submitting_a_results_folder_reruns_exactly_its_trials(ray_local, tmp_path, capsys):
    path = write_sweep(tmp_path, "again", SWEEP)
    results = tmp_path / "res"
    assert main(["run", str(path), "--storage", str(results), "--set", "seeds=[3]", "--set", "train.epochs=1"]) == 0
    held = set(pd.read_parquet(results / "again").trial_id)
    assert held != {t.trial_id for t in read_sweep(path).trials}  # the file alone makes other trials
    capsys.readouterr()
    assert main(["submit", str(results / "again"), "--dry-run"]) == 0
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("RUN_ARGS=(")]
    run = shlex.split(line[len("RUN_ARGS=(") : -1])  # the job runs `ablate.cli run "${RUN_ARGS[@]}" --address ...`
    assert run == [str(results / "again"), "--storage", str(results)]
    assert main(["run", *run]) == 0  # what the job runs: nothing left, the same trials
    assert "all 2 trials of again are already in" in capsys.readouterr().out
    assert set(pd.read_parquet(results / "again").trial_id) == held
