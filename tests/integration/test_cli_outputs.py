"""Output paths of ``report``, ``plot``, ``export`` and ``trial``: one that could never be written is
refused before any work (a trial before its training), and one whose folders do not exist yet is
made. On a results folder built as ``ablate run`` leaves it (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ablate
from ablate.cli import main
from ablate.errors import UserError
from ablate.results.layout import SweepDir
from helpers.sweeps import fill_run_folder

TINY_TRIAL = ["--set", "train.epochs=1", "--set", "train.steps_per_epoch=2", "--set", "train.device=cpu"]
TINY_TRIAL += ["--set", "eval.probe_epochs=2", "--set", "model.width=8", "--set", "eval.knn_k=5"]


@pytest.fixture
def results(tmp_path) -> Path:
    """The folder as ``ablate run`` leaves it: sweep file, one file of rows per trial, weights."""
    folder = SweepDir.at(tmp_path / "results" / "outs")
    fill_run_folder(folder, tmp_path)
    return folder.loc.local


def refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ablate: error: "), err
    return err


@pytest.mark.parametrize(
    ("command", "flag", "name"),
    [
        ("report", "--out", "r.html"),
        ("report --format markdown", "--out", "r.md"),
        ("plot", "--out", "figs"),
        ("export --best probe_top1_best", "--to", "t.pt"),
    ],
)
def test_an_output_under_a_file_is_refused_and_one_in_new_folders_is_made(
    command, flag, name, results, tmp_path, capsys
):
    words = command.split()
    (tmp_path / "a_file").write_text("x")
    bad = tmp_path / "a_file" / name
    assert f"{flag} {bad}: cannot be created: " in refused([words[0], str(results), *words[1:], flag, str(bad)], capsys)
    good = tmp_path / "new" / "deeper" / name
    assert main([words[0], str(results), *words[1:], flag, str(good)]) == 0
    assert good.is_dir() if words[0] == "plot" else good.is_file()
    if words[0] == "export":
        assert json.loads(good.with_suffix(".json").read_text())["sweep"] == "outs"


def test_default_outputs_that_cannot_be_written_are_refused(results, tmp_path, capsys):
    """No --out: the report and the figures go into the results folder, which must take them."""
    figures, report = SweepDir.at(results).figures.local, SweepDir.at(results).report("html").local
    figures.write_text("not a folder")
    assert f"--out {figures}: is a file" in refused(["plot", str(results)], capsys)
    report.mkdir()
    assert f"--out {report}: is a folder" in refused(["report", str(results)], capsys)


def test_a_trial_with_an_unwritable_out_never_trains_and_one_in_new_folders_runs(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    rows: list[dict] = []
    with pytest.raises(UserError, match=r"^--out .*/a_file/t.parquet: cannot be created: .*/a_file is a file"):
        ablate.run_trial(train__epochs=1, report=rows.append, out=tmp_path / "a_file" / "t.parquet")
    assert rows == []  # refused before the first step, not after the training
    out = tmp_path / "new" / "deeper" / "t.parquet"
    assert main(["trial", *TINY_TRIAL, "--out", str(out)]) == 0
    assert out.is_file() and f"wrote 1 rows to {out}" in capsys.readouterr().out
