"""The results folder: atomic per-trial files, one schema, resume bookkeeping, the run lock."""

import io

import pandas as pd
import pytest

from ablate.errors import UserError
from ablate.kinds.registry import SSL
from ablate.kinds.ssl import load_trial_config
from ablate.results.io import Expect, ResultsStore, move_aside
from ablate.results.layout import SweepDir
from ablate.results.lock import run_lock
from ablate.runner.progress import ProgressView

SCHEMA = SSL.schema
EXPECT = Expect("s", SCHEMA)


def row(cfg, epoch, final=False, status="ok", **metrics):
    return {
        **SSL.columns(cfg, "cpu"),
        "sweep": "s",
        "epoch": epoch,
        "is_final": final,
        "status": status,
        **metrics,
    }


def test_rows_of_different_predictors_read_back_as_one_table(tmp_path):
    store = ResultsStore(SweepDir.at(tmp_path / "s"), EXPECT)
    lin = load_trial_config({"predictor": {"name": "linear", "bias": True}})
    dp = load_trial_config({"predictor": {"name": "directpred", "rho": 0.5}})
    store.add(row(lin, 1, True, loss=1.0, f_eigs=[2.0, 1.0]))
    store.add(row(dp, 1, True, loss=0.5))
    df = pd.read_parquet(tmp_path / "s")  # nothing but pandas
    assert len(df) == 2
    by = df.set_index("predictor.name")
    assert by.loc["directpred", "predictor.rho"] == 0.5 and pd.isna(by.loc["linear", "predictor.rho"])
    assert bool(by.loc["linear", "predictor.bias"]) and list(by.loc["linear", "f_eigs"]) == [2.0, 1.0]


def test_finished_ids_and_replacement_on_resume(tmp_path):
    store = ResultsStore(SweepDir.at(tmp_path / "s"), EXPECT)
    a, b = load_trial_config({"seed": 0}), load_trial_config({"seed": 1})
    store.add(row(a, 1))
    store.add(row(a, 2, True))
    store.add(row(b, 1))
    store.add(row(b, 2))  # interrupted before its final row
    assert store.holdings().finished() == {SSL.columns(a, "cpu")["trial_id"]}
    fresh = ResultsStore(SweepDir.at(tmp_path / "s"), EXPECT)  # a new run resumes b from its epoch-1 checkpoint
    fresh.add(row(b, 2))
    fresh.add(row(b, 3, True))
    df = pd.read_parquet(tmp_path / "s")
    assert sorted(df[df.seed == 1].epoch) == [1, 2, 3]  # nothing duplicated, nothing lost
    assert len(fresh.holdings().finished()) == 2


def test_failed_row_keeps_earlier_epochs_and_a_retry_replaces_it(tmp_path):
    store = ResultsStore(SweepDir.at(tmp_path / "s"), EXPECT)
    cfg = load_trial_config({})
    store.add(row(cfg, 1))
    store.add({**SSL.failed_row(cfg, "RuntimeError: boom"), "sweep": "s"})
    df = pd.read_parquet(tmp_path / "s")
    assert list(df.status) == ["ok", "failed"] and df.error.iloc[-1] == "RuntimeError: boom"
    assert store.holdings().finished() == set()
    store.add(row(cfg, 2, True))
    assert list(pd.read_parquet(tmp_path / "s").status) == ["ok", "ok"]


def test_no_temporary_files_are_left(tmp_path):
    store = ResultsStore(SweepDir.at(tmp_path / "s"), EXPECT)
    store.add(row(load_trial_config({}), 1, True))
    assert [p.name for p in (tmp_path / "s").iterdir()] == [
        f"{SSL.columns(load_trial_config({}), 'cpu')['trial_id']}.parquet"
    ]


def test_schema_drift_is_refused(tmp_path):
    store = ResultsStore(SweepDir.at(tmp_path / "s"), EXPECT)
    with pytest.raises(KeyError, match="not in the results schema"):
        store.add({**row(load_trial_config({}), 1), "surprise": 1})


def test_second_lock_refuses_with_a_clear_message(tmp_path):
    first = run_lock(SweepDir.at(tmp_path / "s"))
    first.acquire()
    try:
        with pytest.raises(UserError, match=r"another `ablate run` of this sweep is running \(pid \d+"):
            run_lock(SweepDir.at(tmp_path / "s")).acquire()
    finally:
        first.release()
    again = run_lock(SweepDir.at(tmp_path / "s"))
    again.acquire()
    again.release()


def test_restart_moves_old_results_aside(tmp_path):
    store = ResultsStore(SweepDir.at(tmp_path / "s"), EXPECT)
    store.add(row(load_trial_config({}), 1, True))
    backup = move_aside(store.dir).display()
    assert backup.name.startswith("s.old-") and any(backup.glob("*.parquet")) and not (tmp_path / "s").exists()


def test_progress_line_counts_and_best():
    out = io.StringIO()
    view = ProgressView(total=3, metric="probe_top1_best", stream=out)
    view.start("a")
    view.start("b")
    view.result({"trial_id": "a", "probe_top1_best": 0.7, "is_final": True, "status": "ok"})
    view.result({"trial_id": "b", "probe_top1_best": float("nan"), "is_final": True, "status": "diverged"})
    line = view.line()
    assert line.startswith("trials 2/3 | 0 running | 1 pending | 0 failed | 1 diverged")
    assert "best probe_top1_best 0.7" in line and "ETA" in line
