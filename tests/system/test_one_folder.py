"""One results folder, several runs of one sweep: every reader shows one expansion's trials (the
folder's last run, or the sweep file as named), says what else the folder holds, and never mixes
them; damaged and foreign trial files are named, moved aside by the next run and rerun."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd
import pytest

import ablate
from ablate.analysis.sources import sweep_holdings
from ablate.cli import main
from ablate.results.layout import SweepDir
from ablate.sweep.load import read_sweep
from helpers.tiny_sweeps import write_sweep

pytestmark = pytest.mark.system

GRID = """\
grid:
  predictor.name: [linear, directpred]
seeds: [0]
metric: {name: z_std, mode: max}
table: {rows: [predictor.name], metric: z_std}
"""


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_runs_with_other_overrides_share_a_folder_without_mixing(ray_local, tmp_path):
    sweep = write_sweep(tmp_path, "mix", GRID)
    store, folder = str(tmp_path / "res"), tmp_path / "res" / "mix"
    first = ablate.run(sweep, storage=store, stream=io.StringIO())
    assert (first.total, first.skipped, first.ran) == (2, 0, 2)
    more = ablate.run(sweep, {"seeds": [0, 1]}, storage=store, stream=io.StringIO())
    assert (more.total, more.skipped, more.ran) == (4, 2, 2)  # the first 2 are the same trials: reused
    log = io.StringIO()
    longer = ablate.run(sweep, {"train.epochs": 3}, storage=store, stream=log)
    assert (longer.total, longer.skipped, longer.ran) == (2, 0, 2)
    assert "also holds 4 trials of this sweep run with other settings" in log.getvalue()
    assert len(pd.read_parquet(folder).trial_id.unique()) == 6  # the folder keeps them all

    # the folder's last run (train.epochs=3): its 2 trials, 3 epochs each, 1 seed per cell
    code, out, err = cli("table", str(folder))
    assert code == 0 and out.count("(n=1)") == 2 and "also holds 4 trials" in err
    code, out, _ = cli("status", str(folder))
    assert out.splitlines()[0].endswith(": 2 trials: 2 done, 0 diverged, 0 failed, 0 interrupted, 0 missing")
    assert "also holds 4 trials" in out
    # the sweep file as written (seeds [0], 2 epochs): the first run's 2 trials
    code, out, _ = cli("table", str(sweep), "--storage", store)
    assert code == 0 and out.count("(n=1)") == 2
    held = sweep_holdings(read_sweep(sweep, {"seeds": [0, 1]}), SweepDir.at(folder))
    assert held.rows.trial_id.nunique() == 4 and set(held.rows.epoch) == {1, 2} and len(held.others) == 2

    # the report shows the sweep as it was run: the overrides of the last run
    code, out, _ = cli("report", str(folder), "--format", "markdown")
    assert code == 0 and "train.epochs" in Path(out.strip()).read_text()


def test_a_damaged_trial_file_is_reported_then_moved_aside_and_rerun(ray_local, tmp_path):
    sweep = write_sweep(tmp_path, "dmg", GRID)
    store, folder = str(tmp_path / "res"), tmp_path / "res" / "dmg"
    assert cli("run", str(sweep), "--storage", store, "--no-table")[0] == 0
    victim = sorted(folder.glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])  # a copy cut short
    code, out, err = cli("table", str(folder))
    assert code == 0 and out.count("(n=1)") == 1 and f"skipped {victim.name}: not a readable Parquet file" in err
    code, out, _ = cli("status", str(folder))
    assert "1 done" in out.splitlines()[0] and "1 missing" in out.splitlines()[0]
    code, out, _ = cli("run", str(folder), "--no-table")
    assert code == 0 and f"moved {victim.name} to " in out and "runs again" in out
    assert (SweepDir.at(folder).damaged.local / victim.name).stat().st_size == 100  # kept as it was, never deleted
    assert pd.read_parquet(victim).is_final.any()  # rerun: whole again
    assert cli("table", str(folder))[1].count("(n=1)") == 2


def test_a_search_finds_its_own_trials_and_only_them(ray_local, tmp_path):
    sweep = write_sweep(
        tmp_path,
        "srch",
        """\
        search:
          num_samples: 2
          seed: 3
          metric: z_std
          space:
            optim.lr: {loguniform: [0.01, 0.1]}
        seeds: [0]
        """,
    )
    assert cli("run", str(sweep), "--storage", str(tmp_path / "res"), "--no-table")[0] == 0
    folder = SweepDir.at(tmp_path / "res" / "srch")
    held = sweep_holdings(read_sweep(sweep), folder)
    assert held.rows.trial_id.nunique() == 2 and held.others == ()
    other = sweep_holdings(read_sweep(sweep, {"train.epochs": 3}), folder)  # another base: none are its
    assert other.rows.empty and len(other.others) == 2
    code, out, _ = cli("run", str(sweep), "--storage", str(tmp_path / "res"), "--no-table")
    assert code == 0 and "nothing to run" in out
