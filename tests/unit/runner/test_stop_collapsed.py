"""``stop_collapsed``: Tune's stopper ends a trial after N evaluations in a row with collapsed = true;
the trial's last row becomes its final row with status collapsed_stopped, a result that resume skips,
tables mark, compare refuses and status and check name."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pandas as pd
import pytest

import ablate
from ablate.analysis.status import render_status, trial_states
from ablate.errors import UserError
from ablate.kinds.registry import SSL
from ablate.kinds.ssl import load_trial_config
from ablate.results.io import Expect, ResultsStore, scan
from ablate.results.layout import SweepDir
from ablate.results.schema import COLLAPSED_STOPPED
from ablate.runner.progress import ProgressView
from ablate.runner.recorder import Recording, RunSummary, stopper
from ablate.runner.trainable import ROW_KEY
from ablate.sweep.load import read_sweep
from helpers.tiny_sweeps import write_sweep

CFG = load_trial_config({"seed": 0})
TID = SSL.columns(CFG, "cpu")["trial_id"]


def row(epoch: int, collapsed: bool | None, final: bool = False) -> dict:
    out = {**SSL.columns(CFG, "cpu"), "sweep": "s", "epoch": epoch, "status": "ok", "is_final": final}
    if collapsed is not None:
        out.update(z_std=0.02 if collapsed else 0.5, collapsed=collapsed)
    return out


def recording(tmp_path) -> tuple[Recording, SimpleNamespace]:
    store = ResultsStore(SweepDir.at(tmp_path / "s"), Expect("s", SSL.schema))
    view = ProgressView(total=1, metric="z_std", stream=io.StringIO())
    trial = SimpleNamespace(trial_id="ray1", config={"trial": {"trial_id": TID}})
    return Recording(store, view, RunSummary(tmp_path / "s", None, 1, 0, 0)), trial


def feed(rec: Recording, stop, trial, r: dict) -> bool:
    """What Tune does with a result: the callbacks first, then the stopper's verdict."""
    result = {ROW_KEY: json.dumps(r)}
    rec.result(trial, result)
    return stop(trial.trial_id, result)


def test_a_trial_stops_after_n_collapsed_evaluations_in_a_row_and_its_last_row_says_so(tmp_path):
    rec, trial = recording(tmp_path)
    stop = stopper(rec, 3)
    verdicts = [feed(rec, stop, trial, row(e, c)) for e, c in [(1, True), (2, True), (3, False), (4, True), (5, None)]]
    assert verdicts == [False] * 5  # the streak broke at epoch 3; a row without the flag changes nothing
    assert not feed(rec, stop, trial, row(6, True)) and feed(rec, stop, trial, row(7, True))  # 4, 6, 7: three
    rec.complete(trial)
    rows = scan(SweepDir.at(tmp_path / "s"), Expect("s", SSL.schema)).rows
    last = rows.sort_values("epoch").iloc[-1]
    assert (last.epoch, last.status, bool(last.is_final)) == (7, COLLAPSED_STOPPED, True)
    assert "collapsed for 3 evaluations in a row (z_std 0.02 < 0.1); stopped at epoch 7" in last.error
    assert rec.view.counts()["stopped"] == 1 and "1 stopped (collapsed)" in rec.view.line()


def test_stopping_off_or_a_final_row_never_stops(tmp_path):
    rec, trial = recording(tmp_path)
    assert not any(feed(rec, stopper(rec, 0), trial, row(e, True)) for e in range(1, 6))
    rec2, trial2 = recording(tmp_path / "2")
    stop = stopper(rec2, 2)
    assert not feed(rec2, stop, trial2, row(1, True)) and not feed(rec2, stop, trial2, row(2, True, final=True))


def stopped_results(tmp_path) -> pd.DataFrame:
    """Two arms x 2 seeds: linear finished, no-predictor stopped at epochs 3 and 4."""
    rows = []
    for name, seeds in (("linear", {0: None, 1: None}), ("none", {0: 3, 1: 4})):
        for seed, stop_at in seeds.items():
            final_epoch = stop_at or 10
            rows.append(
                {
                    "trial_id": f"{name}{seed}",
                    "seed": seed,
                    "predictor.name": name,
                    "epoch": final_epoch,
                    "is_final": True,
                    "status": COLLAPSED_STOPPED if stop_at else "ok",
                    "sweep": "s",
                    "z_std": 0.02 if stop_at else 0.8,
                    "collapsed": bool(stop_at),
                    "probe_top1_best": 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_tables_mark_stopped_cells_with_their_epoch_and_leave_them_out_of_the_mean(tmp_path):
    t = ablate.table(stopped_results(tmp_path), rows=["predictor.name"], metric="z_std", scale=1.0)
    text = t.render()
    assert "collapsed at epochs 3, 4 (2 seeds)¶" in text and "0.80 ± 0.00 (n=2)" in text
    assert "¶ a seed collapsed and the sweep's stop_collapsed ended it" in text
    cells = t.to_frame().set_index("row")
    assert pd.isna(cells.loc["name=none", "mean"]) and "stopped" in cells.loc["name=none", "flags"]


def test_compare_refuses_stopped_trials(tmp_path):
    with pytest.raises(UserError, match=r"ended at collapse by the sweep's stop_collapsed.*stop_collapsed=0"):
        ablate.compare_arms(stopped_results(tmp_path), {"predictor.name": "linear"}, {"predictor.name": "none"})


def test_status_and_check_name_stopping(tmp_path):
    sweep = read_sweep(write_sweep(tmp_path, "stp", "seeds: [0]\nstop_collapsed: 2\n"))
    assert "stopping     a trial ends after 2 evaluations in a row with collapsed = true" in ablate.check(sweep)
    t = sweep.trials[0]
    df = pd.DataFrame(
        [
            {
                "trial_id": t.trial_id,
                "epoch": 4,
                "is_final": True,
                "status": COLLAPSED_STOPPED,
                "error": "collapsed for 2 evaluations in a row",
            }
        ]
    )
    text = render_status(trial_states(sweep, df), "r")
    assert text.startswith("r: 1 trials: 0 done, 1 stopped, 0 diverged") and "stopped     " in text
    assert "(epoch 4)" in text


def test_resume_skips_stopped_trials_only_while_stopping_is_on(tmp_path):
    from ablate.results.io import Holdings

    df = pd.DataFrame(
        [
            {"trial_id": "a", "is_final": True, "status": COLLAPSED_STOPPED, "epoch": 3},
            {"trial_id": "b", "is_final": True, "status": "ok", "epoch": 10},
        ]
    )
    held = Holdings(df)
    assert held.finished(stopped_count=True) == {"a", "b"} and held.finished() == {"b"}
