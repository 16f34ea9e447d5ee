"""The driver writes the trials read from a longer trial's run (:mod:`ablate.runner.readouts`): the long
run's rows up to each shorter trial's length, as that trial's rows; a run that ends early ends them
the same way (issue #21, point 6)."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

from ablate.kinds.registry import SSL
from ablate.results.io import Expect, ResultsStore, scan
from ablate.results.layout import SweepDir
from ablate.runner.progress import ProgressView
from ablate.runner.readouts import Readouts, derive
from ablate.runner.recorder import Recording, RunSummary
from ablate.runner.trainable import ROW_KEY
from ablate.sweep.load import read_sweep
from helpers.tiny_sweeps import write_sweep

STEPS = 2  # steps per epoch of the tiny sweep


def trials(tmp_path):
    """(short, long): the 2- and 4-epoch trials of one config, the short read from the long's run."""
    sweep = read_sweep(write_sweep(tmp_path, "r", "grid:\n  train.epochs: [2, 4]\n"))
    short, long = sorted(sweep.trials, key=lambda t: t.config.train.epochs)
    assert short.derived_from == long.trial_id and long.derived_from is None
    return short, long


def long_row(long, epoch: int, status: str = "ok", final: bool = False) -> dict:
    return {
        **SSL.columns(long.config, "cpu"),
        "sweep": "r",
        "search": "grid",
        "epoch": epoch,
        "step": epoch * STEPS,
        "total_steps": 4 * STEPS,
        "status": status,
        "is_final": final,
        "loss": 1.0 / epoch,
        "probe_top1_best": 0.5 + epoch / 100,
    }


def test_the_short_trials_rows_are_the_long_rows_up_to_its_length_relabelled(tmp_path):
    """Everything a row says about the run (metrics, step, timing) is the long run's; everything it says
    about the trial is the short trial's: trial_id, config columns, train.epochs, total_steps = steps per
    epoch x its epochs; the last row (epoch 2) is final and every row names the run (derived_from)."""
    short, long = trials(tmp_path)
    rows = [long_row(long, e) for e in (1, 2, 3)]
    assert derive(rows[:1], short, 2, long, SSL) is None  # not there yet
    got = derive(rows, short, 2, long, SSL)
    assert [r["epoch"] for r in got] == [1, 2] and [r["is_final"] for r in got] == [False, True]
    own = SSL.columns(short.config)
    for r, src in zip(got, rows):
        assert (r["trial_id"], r["train.epochs"], r["config_json"]) == (short.trial_id, 2, own["config_json"])
        assert (r["derived_from"], r["total_steps"], r["search"]) == (long.trial_id, 2 * STEPS, "grid")
        assert (r["loss"], r["probe_top1_best"], r["step"], r["status"]) == (
            src["loss"],
            src["probe_top1_best"],
            src["step"],
            "ok",
        )


def test_a_run_that_ends_before_the_length_ends_the_short_trial_the_same_way(tmp_path):
    """A trial of 2 epochs whose first epoch diverges diverges there too (same steps); a failed run ends the
    short trial only once it is over (Tune may retry it from a checkpoint)."""
    short, long = trials(tmp_path)
    diverged = derive([long_row(long, 1, "diverged", final=True)], short, 2, long, SSL)
    assert [(r["epoch"], r["status"], r["is_final"]) for r in diverged] == [(1, "diverged", True)]
    failed = [long_row(long, 1), {**SSL.failed_row(long.config, "boom"), "sweep": "r"}]
    assert derive(failed, short, 2, long, SSL) is None
    got = derive(failed, short, 2, long, SSL, ended=True)
    assert [(r["status"], r["is_final"]) for r in got] == [("ok", False), ("failed", True)]
    assert got[-1]["error"] == f"the run it is read from ({long.trial_id}) failed: boom"


def test_the_driver_writes_the_short_trial_when_the_long_run_reports_its_length(tmp_path):
    short, long = trials(tmp_path)
    folder = SweepDir.at(tmp_path / "res" / "r")
    store = ResultsStore(folder, Expect("r", SSL.schema))
    readouts = Readouts.plan(store, SSL, [short, long], done=set())
    assert readouts.params(long.trial_id) == [[2, short.trial_id]]
    view = ProgressView(total=2, metric="probe_top1_best", stream=io.StringIO())
    rec = Recording(store, view, RunSummary(folder.display(), None, 2, 0, 0), readouts)
    ray_trial = SimpleNamespace(trial_id="ray0", config={"trial": {"trial_id": long.trial_id}})
    for e in (1, 2, 3, 4):
        rec.result(ray_trial, {ROW_KEY: json.dumps(long_row(long, e, final=e == 4))})
        if e == 1:
            assert not folder.trial_file(short.trial_id).exists()
    rows = scan(folder, Expect("r", SSL.schema)).rows
    mine = rows[rows.trial_id == short.trial_id].sort_values("epoch")
    assert mine.epoch.tolist() == [1, 2] and mine.is_final.tolist() == [False, True]
    assert set(mine.derived_from) == {long.trial_id} and rows[rows.trial_id == long.trial_id].derived_from.isna().all()
    assert view.status == {short.trial_id: "ok", long.trial_id: "ok"}
    assert readouts.written(long.trial_id) == []  # each shorter trial once


def test_a_short_trial_missing_beside_a_finished_long_one_is_read_from_its_rows(tmp_path):
    """Resume: the long trial is done, the short one's file is gone: its rows come from the long trial's
    file, nothing runs."""
    short, long = trials(tmp_path)
    folder = SweepDir.at(tmp_path / "res" / "r")
    store = ResultsStore(folder, Expect("r", SSL.schema))
    store.add_many([long_row(long, e, final=e == 4) for e in (1, 2, 3, 4)])
    fresh = ResultsStore(folder, Expect("r", SSL.schema))
    readouts = Readouts.plan(fresh, SSL, [short, long], done={long.trial_id})
    assert readouts.pending_from({long.trial_id}) == [long.trial_id]
    written = readouts.written(long.trial_id, ended=True)
    assert [(tid, [r["epoch"] for r in rows]) for tid, rows in written] == [(short.trial_id, [1, 2])]


def test_a_table_keeps_the_shorter_trials_as_cells_and_says_where_they_came_from():
    """Cells by train.epochs: the 100- and 300-epoch trials are cells of their own (their own
    train.epochs), and the caption says how many trials were read from a longer run."""
    import pandas as pd

    import ablate

    df = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c"],
            "seed": 0,
            "epoch": [100, 300, 500],
            "train.epochs": [100, 300, 500],
            "is_final": True,
            "status": "ok",
            "probe_top1_best": [0.7, 0.75, 0.8],
            "derived_from": ["c", "c", None],
        }
    )
    t = ablate.table(df, cols=["train.epochs"], scale=1.0)
    assert [round(m, 2) for m in t.to_frame()["mean"]] == [0.7, 0.75, 0.8]
    assert "2 of 3 trials read from the first epochs of a longer trial's run (derived_from)." in t.table.caption
    assert "derived_from" not in ablate.table(df.drop(columns="derived_from"), cols=["train.epochs"]).table.caption
