"""What a person watching ``ablate run`` sees, on a real local Ray: each running trial's epoch in the
progress line and in ``ablate status`` while the run holds its lock, the resume message with the
finished trials' best, and a full disk that stops the run with one line and resumes afterwards."""

from __future__ import annotations

import errno
import json

import pandas as pd
import pytest

import ablate.results.io as results_io
from ablate.analysis.status import render_status, trial_states
from ablate.cli import main
from ablate.results.io import read_rows
from ablate.results.layout import SweepDir
from ablate.sweep.load import read_sweep
from helpers.runs import interrupt, run_process, wait_for
from helpers.tiny_sweeps import write_sweep

pytestmark = pytest.mark.system

TWO = "grid:\n  optim.lr: [0.03, 0.05]\nseeds: [0]\nmax_concurrent: 1\n"


def test_a_full_disk_stops_the_run_with_one_line_and_the_run_resumes(ray_local, tmp_path, capsys, monkeypatch):
    sweep = write_sweep(tmp_path, "full", TWO)
    results = tmp_path / "res" / "full"
    real, writes = results_io.write_table, []

    def disk_fills_up(loc, table):  # the first row is written, then the disk is full
        writes.append(loc.name)
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(loc, table)

    monkeypatch.setattr(results_io, "write_table", disk_fills_up)
    assert main(["run", str(sweep), "--storage", str(tmp_path / "res"), "--no-table"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"ablate: error: {results}: no space left on device while writing {writes[1]}; free space and run "
        "again (finished trials are kept; the run resumes)"
    ]
    assert not list(results.rglob(".tmp-*")) and not SweepDir.at(results).progress_file.exists()
    monkeypatch.setattr(results_io, "write_table", real)  # space freed
    assert main(["run", str(sweep), "--storage", str(tmp_path / "res"), "--no-table"]) == 0
    df = pd.read_parquet(results)
    assert df.trial_id.nunique() == 2
    for _, rows in df.groupby("trial_id"):
        assert sorted(rows.epoch) == [1, 2] and rows.is_final.sum() == 1


def test_a_running_sweep_shows_its_epochs_and_a_rerun_says_what_was_done(ray_local, tmp_path, capsys):
    """The run is a subprocess with its own Ray (its stdout a pipe: a log, not a terminal); ``ablate
    status`` is read here while it runs; the rerun after SIGTERM runs in-process. A short and a long
    trial: status is read while the long one runs, SIGTERM comes once one trial has finished."""
    sweep = write_sweep(tmp_path, "watch", "grid:\n  train.epochs: [4, 60]\nseeds: [0]\nmax_concurrent: 1\n")
    sweep.write_text(sweep.read_text().replace("every: 1,", "every: 30,").replace("per_epoch: 2,", "per_epoch: 20,"))
    folder = SweepDir.at(tmp_path / "res" / "watch")
    with run_process(str(sweep), "--storage", str(tmp_path / "res"), "--no-table") as proc:
        tid, info = wait_for(lambda: _running_epoch(folder, 3), proc, "the 60-epoch trial at epoch 3", 300)
        rows = read_rows(folder.loc.local) if list(folder.loc.local.glob("*.parquet")) else pd.DataFrame()
        text = render_status(trial_states(read_sweep(sweep), rows, folder), folder.display())
        assert ", 1 running, " in text and f"  running     {tid}  train.epochs=60 seed=0 (epoch " in text
        assert any(f"(epoch {e}/60, " in text for e in range(info["epoch"], 61)), text
        wait_for(lambda: _done(folder), proc, "a finished trial", 300)
        code, out = interrupt(proc)
    assert code == 130, out
    lines = [ln for ln in out.splitlines() if ln.startswith("trials ")]
    assert any("1 running (epoch " in ln and "img/s" in ln for ln in lines), out
    assert len(lines) == len(set(lines)), out  # a log gets each line once
    assert not folder.progress_file.exists()  # the run has ended: status reads no live state
    best = read_rows(folder.loc.local).query("is_final").probe_top1_best.max()
    assert main(["run", str(sweep), "--storage", str(tmp_path / "res"), "--no-table"]) == 0
    out = capsys.readouterr().out
    assert f"resuming: 1 of 2 trials already done in {folder.display()}; running 1" in out
    first = next(ln for ln in out.splitlines() if ln.startswith("trials "))
    assert f"best probe_top1_best {best:.4g}" in first  # the finished trial's best, before any new row


def _running_epoch(folder: SweepDir, epoch: int):
    """(trial_id, its entry) of the 60-epoch trial while the progress file says it runs at ``epoch`` or later."""
    try:
        trials = json.loads(folder.progress_file.read_bytes())["trials"]
    except (OSError, ValueError, KeyError):
        return None
    found = [(t, i) for t, i in trials.items() if i["state"] == "running" and i["epochs"] == 60 and i["epoch"] >= epoch]
    return found[0] if found else None


def _done(folder: SweepDir) -> bool:
    try:
        df = read_rows(folder.loc.local)
    except Exception:
        return False
    return not df.empty and bool(df.is_final.any())
