"""``ablate run`` end to end on a real local Ray: failures, divergence, resume, --restart, the lock,
Optuna search, ``ablate status``. Tiny digits sweeps (a trial is a few seconds of which most is the
Ray worker starting); one Ray instance for the whole module, except the SIGTERM test, which runs
``ablate run`` as a subprocess with its own Ray."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ablate.cli import main
from ablate.results.layout import SweepDir
from ablate.results.lock import RunLock
from ablate.sweep.load import read_sweep
from helpers.runs import interrupt, run_process, wait_for
from helpers.tiny_sweeps import write_sweep

pytestmark = pytest.mark.system


def rows_of(results: Path) -> pd.DataFrame:
    return pd.read_parquet(results)


def by_trial(sweep_file: Path) -> dict[str, dict]:
    """trial_id -> axes of the sweep's trials."""
    return {t.trial_id: t.axes for t in read_sweep(sweep_file).trials}


MIXED = """\
cases:
  - {optim.lr: 0.05}
  - {train.batch_size: 5000}   # more than digits' 1347 pretraining images: run_trial raises ValueError
  - {optim.lr: 1.0e+30}        # the weights blow up: non-finite loss at step 2
seeds: [0]
"""


@pytest.fixture(scope="module")
def mixed(ray_local, tmp_path_factory):
    """One run of a sweep with an ok, a failing and a diverging trial: (sweep file, results, exit code, stdout)."""
    tmp = tmp_path_factory.mktemp("mixed")
    sweep = write_sweep(tmp, "mixed", MIXED)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(sweep), "--storage", str(tmp / "res"), "--no-table"])
    return sweep, tmp / "res" / "mixed", code, out.getvalue()


def trial_of(sweep: Path, key: str, value) -> str:
    return next(tid for tid, axes in by_trial(sweep).items() if axes.get(key) == value)


def test_a_failing_trial_gets_a_failed_row_and_the_others_finish(mixed):
    sweep, results, code, out = mixed
    df = rows_of(results)
    failed = trial_of(sweep, "train.batch_size", 5000)
    ok = trial_of(sweep, "optim.lr", 0.05)
    bad = df[df.trial_id == failed]
    assert list(bad.status) == ["failed"] and bool(bad.is_final.iloc[0])
    assert "ValueError: train.batch_size=5000 exceeds the 1347 pretraining images" in bad.error.iloc[0]
    good = df[df.trial_id == ok].sort_values("epoch")
    assert list(good.epoch) == [1, 2] and list(good.status) == ["ok", "ok"] and bool(good.is_final.iloc[-1])
    assert code == 1
    assert f"failed {failed}: ValueError: train.batch_size=5000" in out and "1 failed" in out


def test_a_diverged_trial_is_recorded_as_diverged_and_the_sweep_goes_on(mixed):
    sweep, results, _, _ = mixed
    df = rows_of(results)
    rows = df[df.trial_id == trial_of(sweep, "optim.lr", 1e30)]
    assert list(rows.status) == ["diverged"] and bool(rows.is_final.iloc[-1])
    assert "non-finite loss" in rows.error.iloc[-1] and rows.loss.isna().all()
    assert set(df[df.is_final].status) == {"ok", "failed", "diverged"}  # all three trials ended


def test_status_names_failed_and_missing_trials(mixed, capsys, tmp_path):
    sweep, results, _, _ = mixed
    failed = trial_of(sweep, "train.batch_size", 5000)
    assert main(["status", str(results)]) == 0
    out = capsys.readouterr().out
    assert "3 trials: 1 done, 1 diverged, 1 failed, 0 interrupted, 0 missing" in out
    assert f"failed      {failed}  train.batch_size=5000 seed=0" in out
    assert "error: ValueError: train.batch_size=5000 exceeds" in out
    # the same results without the ok trial's file: that trial is missing
    import shutil

    copy = tmp_path / "mixed"
    shutil.copytree(results, copy)
    shutil.copytree(SweepDir.at(results).companion.local, SweepDir.at(copy).companion.local)  # the sweep file
    ok = trial_of(sweep, "optim.lr", 0.05)
    (copy / f"{ok}.parquet").unlink()
    assert main(["status", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "1 missing" in out and f"missing     {ok}" in out


def test_run_again_reruns_only_the_failed_trial(mixed, capsys):
    sweep, results, _, _ = mixed
    before = rows_of(results)
    code = main(["run", str(sweep), "--storage", str(results.parent), "--no-table"])
    out = capsys.readouterr().out
    assert code == 1 and "1 trials run, 2 already done, 1 failed" in out
    after = rows_of(results)
    assert len(after) == len(before)  # nothing duplicated
    ok = trial_of(sweep, "optim.lr", 0.05)
    keep = ["epoch", "loss", "started_at", "wall_s"]
    pd.testing.assert_frame_equal(
        before[before.trial_id == ok][keep].reset_index(drop=True),
        after[after.trial_id == ok][keep].reset_index(drop=True),
    )  # not run again


def test_restart_moves_old_results_aside(ray_local, tmp_path, capsys):
    sweep = write_sweep(tmp_path, "again", "seeds: [0]\n")
    storage = tmp_path / "res"
    # storage as a pyarrow filesystem URI (file:// is the one that can be tested here, s3:// cannot)
    assert main(["run", str(sweep), "--storage", f"file://{storage}", "--no-table"]) == 0
    first = rows_of(storage / "again")
    assert main(["run", str(sweep), "--storage", str(storage), "--no-table"]) == 0  # the same place: done
    assert "all 1 trials of again are already in" in capsys.readouterr().out
    assert main(["run", str(sweep), "--storage", str(storage), "--no-table", "--restart"]) == 0
    out = capsys.readouterr().out
    backups = [p for p in storage.iterdir() if p.name.startswith("again.old-")]
    assert len(backups) == 1 and f"moved old results to {backups[0]}" in out
    pd.testing.assert_frame_equal(rows_of(backups[0]), first)  # the old results, untouched
    fresh = rows_of(storage / "again")
    assert len(fresh) == len(first) and set(fresh.started_at) != set(first.started_at)  # ran again


def test_a_second_run_of_the_same_sweep_refuses_while_one_holds_the_lock(tmp_path, capsys):
    sweep = write_sweep(tmp_path, "locked", "seeds: [0]\n")
    lock = RunLock(SweepDir.at(tmp_path / "res" / "locked").lock_file.local)
    lock.acquire()
    try:
        assert main(["run", str(sweep), "--storage", str(tmp_path / "res")]) == 2
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert err.startswith("ablate: error: ") and "another `ablate run` of this sweep is running (pid" in err
    assert len(err.strip().splitlines()) == 1


def test_optuna_search_writes_optuna_rows_with_distinct_sampled_values(ray_local, tmp_path, capsys):
    sweep = write_sweep(
        tmp_path,
        "search",
        """\
        search:
          num_samples: 3
          seed: 1
          metric: knn_top1   # not the sweep's metric (probe_top1_best): every result carries both
          space:
            optim.lr: {loguniform: [0.01, 0.1]}
        seeds: [0]
        """,
    )
    assert main(["run", str(sweep), "--storage", str(tmp_path / "res"), "--no-table"]) == 0
    df = rows_of(tmp_path / "res" / "search")
    final = df[df.is_final]
    assert len(final) == 3 and set(final.search) == {"optuna"} and set(df.search) == {"optuna"}
    assert final["optim.lr"].nunique() == 3 and final["optim.lr"].between(0.01, 0.1).all()
    assert final.trial_id.nunique() == 3


def test_sigterm_keeps_finished_trials_and_a_second_run_resumes_the_rest(ray_local, tmp_path):
    """SIGTERM (a SLURM time limit / preemption) mid-sweep: no half-written files; the next run
    skips finished trials and continues the interrupted one from its last checkpoint. The first run
    is a subprocess with its own Ray; the second runs in-process (a resubmitted job)."""
    sweep = write_sweep(
        tmp_path,
        "term",
        """\
        grid:
          optim.lr: [0.03, 0.05]
        seeds: [0]
        max_concurrent: 1
        checkpoint: {every: 1, keep: 2}
        """,
    )
    # Enough epochs that the trial whose first checkpoint we wait for is still running when SIGTERM
    # lands (with 3 it could finish, and drop its checkpoints, before the signal was handled).
    epochs = 20
    sweep.write_text(sweep.read_text().replace("epochs: 2,", f"epochs: {epochs},"))
    # started over (--restart) into a folder whose name needs quoting: the printed way to resume is
    # the same command, quoted, without --restart (which would move the finished trials aside)
    storage = tmp_path / "my res"
    results = storage / "term"
    ray_dir = SweepDir.at(results).ray_dir.local

    def ready() -> bool:  # a trial has reported rows and stored a checkpoint
        files = list(results.glob("*.parquet")) if results.exists() else []
        return bool(files) and ray_dir.exists() and bool(list((ray_dir / "term").glob("*/checkpoint_*")))

    argv = ["run", str(sweep), "--storage", str(storage), "--restart", "--no-table"]
    with run_process(*argv[1:]) as proc:
        wait_for(ready, proc, "a trial's rows and checkpoint")
        code, out = interrupt(proc)
    assert code == 130, out
    hint = "interrupted: finished trials are saved; to resume: "
    assert hint in out, out
    resume = out.split(hint, 1)[1].splitlines()[0]
    assert shlex.split(resume) == ["ablate", *[a for a in argv if a != "--restart"]], resume
    assert not list(results.rglob(".tmp-*"))
    before = {p.stem: pq.read_table(p).to_pandas() for p in results.glob("*.parquet")}  # every file reads
    assert before
    finished = {tid for tid, df in before.items() if df.is_final.any()}
    assert len(finished) < 2  # it really was cut off
    checkpointed = {p.parent.name for p in (ray_dir / "term").glob("*/checkpoint_*")} - finished
    assert checkpointed  # the cut-off trial left a checkpoint (finished ones leave none)
    code = main(shlex.split(resume)[1:])  # the printed command, as the user pastes it
    assert code == 0
    assert not list(storage.glob("term.old-*"))  # nothing was moved aside: it resumed
    df = rows_of(results)
    assert df.trial_id.nunique() == 2
    for tid, rows in df.groupby("trial_id"):
        assert sorted(rows.epoch) == list(range(1, epochs + 1)), tid  # every epoch once: nothing lost, nothing twice
        assert rows.is_final.sum() == 1 and bool(rows.sort_values("epoch").is_final.iloc[-1])
    for tid in finished:  # not run again
        pd.testing.assert_frame_equal(
            before[tid].reset_index(drop=True),
            df[df.trial_id == tid].sort_values("epoch").reset_index(drop=True)[before[tid].columns],
        )
    for tid in checkpointed:  # continued from its checkpoint, not from epoch 0
        rows = df[df.trial_id == tid].sort_values("epoch")
        resumed = rows.resumed_from_epoch.dropna()
        assert len(resumed) and resumed.iloc[0] >= 1, rows[["epoch", "resumed_from_epoch"]]
        first_epochs = rows[rows.epoch <= resumed.iloc[0]]
        assert first_epochs.resumed_from_epoch.isna().all()  # those epochs came from the first run


def test_stop_collapsed_ends_a_collapsed_trial_through_tune_and_lets_the_healthy_one_finish(
    ray_local, tmp_path, capsys
):
    """SimSiam without a predictor (Theorem 2) collapses at once; the MLP arm dips below the threshold
    at epoch 1 only. With stop_collapsed 2 and a collapse check every epoch, Tune's stopper ends the
    first after two collapsed checks and leaves the second to its last epoch; a rerun runs neither."""
    body = """\
    cases:
      - {predictor: {name: none}, ema.tau: 0.0}
      - {predictor: {name: mlp}}
    seeds: [0]
    stop_collapsed: 2
    table: {rows: [predictor.name], metric: z_std}
    """
    sweep = write_sweep(tmp_path, "stopping", body)
    longer = ["train.epochs=6", "train.steps_per_epoch=4", "ema.init=copy", "eval.every=6", "eval.collapse_every=1"]
    args = ["run", str(sweep), "--storage", str(tmp_path / "res"), *(f"--set={kv}" for kv in longer)]
    assert main(args) == 0
    out = capsys.readouterr().out
    final = rows_of(tmp_path / "res" / "stopping").query("is_final").set_index("predictor.name")
    assert (final.loc["none", "status"], final.loc["none", "epoch"]) == ("collapsed_stopped", 2)
    assert (final.loc["mlp", "status"], final.loc["mlp", "epoch"]) == ("ok", 6)
    assert "1 stopped (collapsed)" in out and "collapsed at epoch 2" in out
    assert main([*args, "--no-table"]) == 0
    assert "nothing to run" in capsys.readouterr().out
