"""``ablate run``: an expanded sweep -> Ray Tune -> one Parquet dataset (the driver side; what runs
inside each trial is :mod:`ablate.runner.trainable`).

Ray Tune is the scheduler (local Ray started in-process, or ``--address`` of an existing cluster);
the results of record are our Parquet files, written by the driver from the rows each trial reports
(:mod:`ablate.runner.recorder`). Resume is ours too: trials whose final row is in the results are
skipped, everything else runs again, and a trial with a checkpoint (from a retry in this run or
from an earlier, interrupted run) continues from it (:mod:`ablate.runner.checkpoints`).

Storage (``--storage`` / the sweep's ``storage:``) is a path or a pyarrow filesystem URI; results,
Ray's trial folders, checkpoints and weights all live under ``<storage>/<sweep>/``
(:mod:`ablate.results.layout`). On a cluster of several nodes it must be visible from every node.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import pandas as pd

from ablate.results.io import Expect, ResultsStore, move_aside, scan
from ablate.results.layout import SweepDir
from ablate.results.lock import ObjectLock, RunLock, run_lock
from ablate.runner.checkpoints import ray_storage
from ablate.runner.data_parallel import DRIVER_RESOURCES, ddp_trainable
from ablate.runner.live_file import LiveFile
from ablate.runner.progress import ProgressView
from ablate.runner.readouts import Readouts
from ablate.runner.recorder import (
    DISK_FULL,
    Recording,
    RunSummary,
    recorder,
    stopper,
    storage_cause,
    storage_failure,
    written_name,
)
from ablate.runner.resources import (
    check_data_parallel,
    check_feasible,
    check_storage,
    fitting_trials,
    trial_resources,
)
from ablate.runner.session import alive_nodes, init_ray, shutdown_ray, silent_reporter, skip_callback_telemetry
from ablate.runner.trackers import tracker_callbacks
from ablate.runner.trainable import trainable, trial_id_of
from ablate.runner.tune_params import tune_params
from ablate.sweep.expand import Trial
from ablate.sweep.members import membership
from ablate.sweep.plugins import keep, packaged
from ablate.sweep.validated import Sweep


def save_sweep(sweep: Sweep, folder: SweepDir) -> None:
    """Keep the sweep file as run (and its --set overrides) beside the results, so ``status`` and
    ``table`` on the results folder rebuild exactly the same trials."""
    folder.sweep_file.write_text(sweep.text)
    folder.overrides_file.write_text(json.dumps(sweep.overrides, sort_keys=True))
    keep(sweep.plugins, folder.plugins)


def _take_lock(folder: SweepDir, restart: bool, stream: IO[str]) -> tuple[RunLock | ObjectLock, SweepDir | None]:
    """The run lock, held while ``--restart`` moves the old folder to ``<name>.old-<time>`` (never
    deleted; a run that starts meanwhile refuses), then taken again where the lock now goes."""
    lock = run_lock(folder, stream)
    lock.acquire()
    if not restart:
        return lock, None
    backup = move_aside(folder)
    lock.release()
    lock = run_lock(folder, stream)
    lock.acquire()
    return lock, backup


@dataclass(frozen=True)
class RunOptions:
    """How to run a sweep (the flags of ``ablate run``). ``shared_storage_ok``: trust that storage is
    shared on a multi-node cluster (:func:`ablate.runner.resources.check_storage`); ``log``: experiment
    trackers (``--log``; default the sweep's ``logging:``, see :mod:`ablate.runner.trackers`);
    ``tracking_uri``: MLflow's tracking URI."""

    address: str | None = None
    max_concurrent: int | None = None
    restart: bool = False
    stream: IO[str] | None = None
    shared_storage_ok: bool = False
    log: Sequence[str] | str | None = None
    tracking_uri: str | None = None


def run_sweep(sweep: Sweep, folder: SweepDir, **options: Any) -> RunSummary:
    """Run every trial of ``sweep`` that is not finished yet into ``folder`` (``options``: :class:`RunOptions`);
    return what happened. A full disk stops the run with one line (finished trials stay; it resumes)."""
    opts = RunOptions(**options)
    stream = opts.stream or sys.stdout
    lock, backup = _take_lock(folder, opts.restart, stream)
    try:
        save_sweep(sweep, folder)
        check_data_parallel(sweep)
        store = ResultsStore(folder, Expect(sweep.name, sweep.trial_kind.schema, membership(sweep)))
        # the identity columns and the sweep's metric: "best so far" starts from the finished trials'
        held = scan(folder, store.expect, columns=[*HELD_COLUMNS, sweep.metric.name])
        for line in [*store.set_aside(held.skipped), *held.notes(folder.display())[: 1 if held.others else 0]]:
            print(line, file=stream)
        done = held.finished(stopped_count=sweep.stop_collapsed > 0)  # with stopping off, stopped trials run on
        backup_at = backup.display() if backup else None
        summary = RunSummary(folder.display(), sweep, *_counts(sweep, done), backup=backup_at, restart=opts.restart)
        if backup:
            print(f"moved old results to {backup}", file=stream)
        if summary.total == summary.skipped:
            print(
                f"all {summary.total} trials of {sweep.name} are already in {folder}; nothing to run "
                "(--restart starts over)",
                file=stream,
            )
            return summary
        if summary.skipped:
            print(
                f"resuming: {summary.skipped} of {summary.total} trials already done in {folder.display()}; "
                f"running {summary.total - summary.skipped}",
                file=stream,
            )
        names = opts.log if opts.log is not None else sweep.logging
        # a missing tracker package fails before Ray starts
        trackers = tracker_callbacks(names, sweep, folder, opts.tracking_uri, stream=stream) if names else []
        todo = [t for t in sweep.trials if t.trial_id not in done]
        readouts = Readouts.plan(store, sweep.trial_kind, sweep.trials, done)  # trials read from longer runs
        recording = Recording(store, _view(sweep, folder, summary, held.rows, done, todo, stream), summary, readouts)
        lock.watch(lambda lost: setattr(recording, "failure", recording.failure or lost))  # stops the run
        if sum(recording.read_out(tid, ended=True) for tid in readouts.pending_from(done)):
            print("read trials from the rows of finished longer trials (derived_from); their weights were not kept")
        runs = [t for t in todo if t.derived_from is None]  # the others are read from these runs
        with packaged(sweep.plugins) as py_modules:  # the sweep's plugins, for Ray to ship to its workers
            if runs or sweep.search:  # a search samples its trials as it runs
                summary.interrupted = _on_ray(sweep, folder, runs, recording, trackers, opts, py_modules)
        summary.ran = len(recording.view.status) - len(done)
        return summary
    except OSError as e:  # a full disk before Tune ran (the sweep file, a set-aside move)
        if e.errno not in DISK_FULL:
            raise
        raise storage_failure(folder.display(), written_name(folder, e), e) from None
    finally:
        lock.release()


HELD_COLUMNS = ["trial_id", "is_final", "status", "epoch"]


def _view(
    sweep: Sweep,
    folder: SweepDir,
    summary: RunSummary,
    rows: pd.DataFrame,
    done: set[str],
    todo: list[Trial],
    stream: IO[str],
) -> ProgressView:
    """The progress view of this run: finished trials counted (their best metric included), the
    epochs of the trials to run, and ``_<sweep>/progress.json`` written at once (every trial pending)."""
    view = ProgressView(summary.total, sweep.metric.name, sweep.metric.mode, summary.skipped, stream)
    view.status.update({tid: "ok" for tid in done})
    view.best = _best(rows, done, sweep.metric.name, sweep.metric.mode)
    # a trial read from a longer trial's run trains no epochs of its own
    view.planned = {t.trial_id: 0 if t.derived_from else sweep.trial_kind.epochs(t.config) for t in todo}
    view.live = LiveFile(folder.progress_file)
    view.live.publish(view.snapshot(), force=True)
    return view


def _best(rows: pd.DataFrame, done: set[str], metric: str, mode: str) -> float | None:
    """The best ``metric`` of any row of the finished trials (None if there is none)."""
    if rows.empty or metric not in rows:
        return None
    values = pd.to_numeric(rows.loc[rows["trial_id"].isin(done), metric], errors="coerce").dropna()
    if values.empty:
        return None
    return float(values.max() if mode == "max" else values.min())


def _on_ray(
    sweep: Sweep,
    folder: SweepDir,
    todo: list[Trial],
    recording: Recording,
    trackers: list[Any],
    opts: RunOptions,
    py_modules: list[str],
) -> bool:
    """Start (or attach to) Ray, refuse what it could never run, run the trials; whether it was stopped."""
    # ray.init retries an unresponsive address for minutes and does not stop on SIGTERM by itself
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        started = init_ray(opts.address, folder.logs, py_modules)
    except KeyboardInterrupt:
        recording.view.close()
        return True
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        need = trial_resources(sweep)
        check_feasible(need)
        check_storage(folder.loc, opts.address, opts.shared_storage_ok)
        n_new = recording.view.total - recording.view.skipped
        concurrent = opts.max_concurrent or sweep.max_concurrent or None
        callbacks = [recorder(recording), *trackers]
        stop, readouts = stopper(recording, sweep.stop_collapsed), recording.readouts
        return _fit(_tuner(sweep, folder, todo, n_new, need, concurrent, callbacks, stop, readouts), recording)
    finally:
        recording.view.close()
        if started:
            shutdown_ray()


def _counts(sweep: Sweep, done: set[str]) -> tuple[int, int, int]:
    """(trials in the sweep, already finished, run now): a search counts its samples."""
    total = sweep.search.num_samples if sweep.search else len(sweep.trials)
    skipped = min(len(done), total) if sweep.search else sum(t.trial_id in done for t in sweep.trials)
    return total, skipped, 0


def _fit(tuner: Any, recording: Recording) -> bool:
    """Run the Tuner to the end; SIGTERM (a SLURM preemption) stops it as Ctrl-C does. Whether it was
    stopped; a results write that failed (:attr:`Recording.failure`) is raised once Tune has stopped."""
    skip_callback_telemetry()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    stopped = False
    try:
        tuner.fit()
    except KeyboardInterrupt:
        stopped = True
    except Exception as e:
        cause = storage_cause(e)
        if cause is None and recording.failure is None:
            raise
        where = recording.store.dir
        recording.failure = recording.failure or storage_failure(where.display(), written_name(where, cause), cause)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if recording.failure is not None:
        raise recording.failure
    return stopped


def _tuner(
    sweep: Sweep,
    folder: SweepDir,
    todo: list[Trial],
    n_new: int,
    need: dict[str, float],
    concurrent: int | None,
    callbacks: list[Any],
    stop: Any,
    readouts: Readouts | None = None,
) -> Any:
    """The Tuner of the trials still to run: a grid of their configs, or Optuna sampling ``n_new``;
    ``stop`` ends the whole run early (a failed results write); ``readouts``: the shorter trials read
    from those runs."""
    from ray import tune

    r, ck = sweep.resources, sweep.checkpoint
    if r.workers > 1:  # data-parallel drivers hold no CPU: cap them at what the workers fit into
        fits = max(1, fitting_trials(need, alive_nodes()))
        concurrent = min(concurrent or fits, fits)
        fn = tune.with_resources(ddp_trainable, DRIVER_RESOURCES)
    else:
        fn = tune.with_resources(trainable, {"cpu": r.cpu, "gpu": r.gpu})
    # Reusing a worker process between trials saves Ray's actor start-up (seconds per trial on a
    # small machine); every trial reseeds and rebuilds everything it uses, so nothing leaks.
    tune_cfg: dict[str, Any] = {
        "max_concurrent_trials": concurrent,
        "reuse_actors": r.workers <= 1,
        "trial_dirname_creator": lambda t: trial_id_of(t.config["trial"]),
    }
    params = tune_params(sweep, folder, todo, need, readouts)
    if sweep.search:
        tune_cfg.update(_search(sweep, n_new))
        params["sampled"] = {k: _distribution(tune, d) for k, d in sweep.search.space.items()}
        param_space = {"trial": params}
    else:
        param_space = {"trial": tune.grid_search([{**params, **trial} for trial in params.pop("grid")])}
    return tune.Tuner(
        fn,
        param_space=param_space,
        tune_config=tune.TuneConfig(**tune_cfg),
        run_config=tune.RunConfig(
            name=folder.name,
            **ray_storage(folder.ray_dir),
            verbose=0,
            progress_reporter=silent_reporter(),
            callbacks=callbacks,
            stop=stop,
            log_to_file=True,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=ck.keep),
            failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
        ),
    )


def _search(sweep: Sweep, n_new: int) -> dict[str, Any]:
    """The TuneConfig of an Optuna search that samples ``n_new`` trials."""
    from ray.tune.search.optuna import OptunaSearch

    s = sweep.search
    return {
        "search_alg": OptunaSearch(metric=s.metric, mode=s.mode, seed=s.seed),
        "num_samples": n_new,
        "metric": s.metric,
        "mode": s.mode,
    }


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _distribution(tune: Any, spec: Any) -> Any:
    """A search-space entry ({uniform|loguniform: [lo, hi]} or {choice: [...]}) as a Tune distribution."""
    name, args = spec.kind, spec.values
    if name == "choice":
        return tune.choice(list(args))
    return getattr(tune, name)(*args)
