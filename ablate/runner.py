"""``ablate run``: an expanded sweep -> Ray Tune -> one Parquet dataset (the driver side; what runs
inside each trial is :mod:`ablate.worker`).

Ray is imported here, in :mod:`ablate.checkpoints` and in :mod:`ablate.distributed` only (lazily).
Ray Tune is the scheduler (local Ray started in-process, or ``--address`` of an existing cluster);
the results of record are our Parquet files, written by the driver from the rows each trial reports
(one writer, so no two processes ever touch a file). Resume is ours too: trials whose final row is
in the results are skipped, everything else runs again, and a trial with a checkpoint (from a retry
in this run or from an earlier, interrupted run) continues from it (:mod:`ablate.checkpoints`).

Storage (``--storage`` / the sweep's ``storage:``) is a path or a pyarrow filesystem URI; results,
Ray's trial folders, checkpoints and weights all live under ``<storage>/<sweep>/``. On a cluster of
several nodes it must be visible from every node (:func:`ablate.store.storage_problem`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

from ablate.configtree import merge, to_dict
from ablate.errors import UserError
from ablate.expand import Trial, expand
from ablate.kinds import KINDS, build_config
from ablate.progress import ProgressView
from ablate.results import schema_for
from ablate.rows import failed_row
from ablate.store import FINISHED, NODE_LOCAL_HINT, Location, ResultsStore, log_dir, storage_problem
from ablate.worker import ROW_KEY, resolve, trainable, trial_key

os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # relative data paths resolve like on the CLI
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C is ours: stop, keep results, exit
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # diverged rows carry no metric
# No usage telemetry from a local Ray (compute nodes are often offline; the SLURM script's
# `ray start --disable-usage-stats` says the same); RAY_USAGE_STATS_ENABLED=1 turns it back on.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    results_dir: Path | str
    total: int
    skipped: int
    ran: int
    failed: dict[str, str] = field(default_factory=dict)  # trial_id -> error
    interrupted: bool = False
    backup: Path | str | None = None

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)


def save_sweep(sweep: Any, store: ResultsStore) -> None:
    """Keep the sweep file as run (and its --set overrides) beside the results, so ``status`` and
    ``table`` on the results folder rebuild exactly the same trials."""
    store.write_text("_sweep.yaml", sweep.text)
    store.write_text("_overrides.json", json.dumps(sweep.overrides, sort_keys=True))


def results_location(sweep: Any, storage: str | None = None) -> Location:
    """``<storage>/<sweep name>``: ``--storage``, else the sweep's ``storage:``, else ``results/``."""
    root = storage or getattr(sweep, "storage", None) or "results"
    return Location.parse(root) / sweep.name


def results_dir(sweep: Any, storage: str | None = None) -> Path | str:
    """The results folder as a Path (local storage) or a URI string (remote storage)."""
    return results_location(sweep, storage).display()


# ---------------------------------------------------------------- worker side
def packed(tree: dict[str, Any], sweep: Any) -> dict[str, Any]:
    """A trial that gets a fraction of a GPU (``resources.gpu`` < 1) caps its own allocator at that
    share (95% of it, for the CUDA context), unless the config sets ``train.gpu_memory_fraction``:
    packed trials then cannot starve each other. The key is not part of the trial id."""
    gpu = sweep.resources.gpu
    train = tree.get("train", {}) if isinstance(tree.get("train", {}), dict) else {}
    if sweep.kind != "ssl" or not 0 < gpu < 1 or train.get("gpu_memory_fraction"):
        return tree
    return merge(tree, {"train.gpu_memory_fraction": round(0.95 * gpu, 4)})


# ---------------------------------------------------------------- driver side
def _callback_class():
    from ray.tune import Callback

    class Recorder(Callback):
        """Writes every reported row to the results store and drives the progress view.

        Results without a row (checkpoint heartbeats) are ignored. A failed row is replaced by the
        rows of a successful retry, and the trial then no longer counts as failed."""

        def __init__(self, store: ResultsStore, view: ProgressView, summary: RunSummary, sweep_name: str) -> None:
            self.store, self.view, self.summary, self.sweep_name = store, view, summary, sweep_name
            self.ids: dict[str, str] = {}  # Ray trial id -> our trial_id
            self.final: dict[str, str] = {}  # our trial_id -> status of its final row

        def __getstate__(self) -> dict:
            # Tune pickles its callbacks into tuner.pkl (for Tuner.restore, which ablate never uses);
            # the store, the view and its stream (a terminal, pytest's capture) need not go along.
            return {}

        def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001 - Ray's signature
            self.view.start(self._id(trial))

        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
            if ROW_KEY not in result:
                return
            payload = json.loads(result[ROW_KEY])
            rows = payload if isinstance(payload, list) else [payload]  # a batch ends with its newest row
            row = rows[-1]
            tid = self.ids[trial.trial_id] = row["trial_id"]
            self.store.add_many(rows)
            if row.get("status") == "failed":
                self.summary.failed[tid] = row.get("error") or "failed"
            else:
                self.summary.failed.pop(tid, None)  # a retry got further
            if row.get("is_final"):
                self.final[tid] = row.get("status") or "ok"
            self.view.result(row)

        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
            tid = self._id(trial)
            if self.view.status.get(tid) is None:
                self.view.finish(tid, "ok")
            if self.final.get(tid) in FINISHED:
                self._drop_checkpoints(tid)

        def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
            tid = self._id(trial)
            if tid not in self.summary.failed:  # died before it could report (e.g. a lost node)
                kind, cfg, _, extra = resolve(trial.config["trial"])
                error = _last_error_line(trial)
                self.store.add(failed_row(cfg, kind.name, error) | extra)
                self.summary.failed[tid] = error
            self.view.finish(tid, "failed")

        def _drop_checkpoints(self, tid: str) -> None:
            """A finished trial needs no checkpoints (its final weights are in ``_weights/``)."""
            from ablate.checkpoints import checkpoint_roots, delete_checkpoints

            try:
                delete_checkpoints(checkpoint_roots(self.store.loc, self.sweep_name, tid))
            except OSError as e:  # never fail a sweep over housekeeping
                log.warning("could not delete the checkpoints of finished trial %s: %s", tid, e)

        def _id(self, trial) -> str:  # noqa: ANN001
            if trial.trial_id not in self.ids:
                self.ids[trial.trial_id] = trial_key(trial.config["trial"])
            return self.ids[trial.trial_id]

    return Recorder


def _last_error_line(trial) -> str:  # noqa: ANN001 - a Ray Trial
    """The exception line of a trial Ray recorded as errored (e.g. its worker died)."""
    path = getattr(trial, "error_file", None)
    try:
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()] if path else []
    except OSError:
        lines = []
    errors = [ln for ln in lines if "Error" in ln.split(":")[0] or "Exception" in ln.split(":")[0]]
    return (errors or lines or ["trial process died"])[-1]


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send the process's file descriptor 2 (C++ and Python writes alike) to ``path`` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _init_ray(address: str | None, log_dir: Path) -> bool:
    """Start a local Ray (or attach to ``address``); Ray's chatter goes to ``_logs/ray.log``.
    Returns whether this call connected (and so should shut down again)."""
    import ray

    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "ray.log")
    for name in ("ray", "ray.tune", "ray.train"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.propagate = False
    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in ("RAY_CHDIR_TO_TRIAL_DIR", "PYTHONPATH") if k in os.environ}
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                                  runtime_env={"env_vars": env, "working_dir": None} if address else None)
    # "local": a new Ray of our own, never whatever `ray start` left in /tmp/ray/ray_current_cluster
    # (plain ray.init() would attach to that); RAY_ADDRESS in the environment still wins, as in Ray.
    kwargs["address"] = address or "local"
    try:
        with _stderr_to(log_dir / "ray.log"):  # Ray prints start-up notices on fd 2; the user sees our progress line
            ray.init(**{k: v for k, v in kwargs.items() if v is not None})
    except ConnectionError as e:
        raise UserError(f"--address {address}: no Ray cluster answers there ({e}); start one with "
                        "`ray start --head` or check the address (auto = the cluster this node belongs to)") from None
    return True


def _skip_callback_telemetry() -> None:
    """Skip Ray Tune's callback census while usage stats are off.

    To tag its telemetry with the kinds of callbacks passed, ``tune.run`` imports Ray's MLflow,
    W&B, Comet and Aim integrations, and so mlflow itself where installed: 1.6 s of every sweep
    (measured, 2 cores), more than Tune's whole cost per trial. With usage stats off the tag is
    never sent, so not computing it changes nothing. A private Ray function: if it moves, Ray's
    own census simply runs.
    """
    try:
        from ray._common.usage.usage_lib import usage_stats_enabled
        from ray.air._internal import usage
    except ImportError:
        return
    census = getattr(usage, "tag_callbacks", None)
    if census is None or getattr(census, "ablate_wrapped", False):
        return

    def tag_callbacks(callbacks: Any) -> Any:
        return census(callbacks) if usage_stats_enabled() else False

    tag_callbacks.ablate_wrapped = True  # type: ignore[attr-defined]
    usage.tag_callbacks = tag_callbacks


# ---------------------------------------------------------------- resources and storage checks
def trial_resources(sweep: Any) -> dict[str, float]:
    """What one trial needs on the cluster: ``CPU``/``GPU`` of ONE worker bundle, and ``workers``
    bundles (1 for a single-process trial, whose bundle is the whole trial)."""
    r = sweep.resources
    if r.workers > 1:
        from ablate.distributed import worker_resources

        return {**worker_resources(r), "workers": r.workers}
    return {"CPU": r.cpu, "GPU": r.gpu, "workers": 1}


def _alive_nodes() -> list[dict[str, float]]:
    import ray

    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def _bundles_per_node(node: dict[str, float], need: dict[str, float]) -> int:
    if not need:
        return 1 << 30
    return min(int(node.get(k, 0) // v + 1e-9) if v else 1 << 30 for k, v in need.items())


def fitting_trials(resources: dict[str, float], nodes: list[dict[str, float]]) -> int:
    """How many such trials the nodes hold at once (bundles are placed node by node)."""
    workers = int(resources.get("workers", 1))
    need = {k: v for k, v in resources.items() if k != "workers" and v}
    return sum(_bundles_per_node(n, need) for n in nodes) // workers


def check_feasible(resources: dict[str, float]) -> None:
    """Refuse a trial no node (or, data-parallel, no set of nodes) can hold: Ray would leave it
    PENDING forever."""
    nodes = _alive_nodes()
    if fitting_trials(resources, nodes) >= 1:
        return
    workers = int(resources.get("workers", 1))
    need = {k: v for k, v in resources.items() if k != "workers" and v}
    have = "; ".join(f"CPU {n.get('CPU', 0):g}, GPU {n.get('GPU', 0):g}" for n in nodes) or "no nodes"
    what = f"resources per trial {need}" if workers == 1 else f"{workers} data-parallel workers of {need} each"
    raise UserError(f"{what} fit on no node of the Ray cluster ({have}); lower resources.cpu / resources.gpu"
                    f"{' / resources.workers' if workers > 1 else ''} in the sweep file or add bigger nodes")


def check_storage(location: Location, address: str | None, shared_ok: bool) -> None:
    """Refuse a multi-node cluster whose storage not every node sees: trials on other nodes would
    write their checkpoints where no retry (and no later run) finds them."""
    nodes = len(_alive_nodes())
    if nodes <= 1 or shared_ok:
        return
    problem = storage_problem(location)
    if problem:
        raise UserError(f"the Ray cluster{f' at {address}' if address else ''} has {nodes} nodes but storage "
                        f"{location} is not shared ({problem}); {NODE_LOCAL_HINT}, or pass --shared-storage-ok "
                        "if every node mounts this path")


def check_data_parallel(sweep: Any, trials: list[Trial]) -> None:
    """Every trial's global batch must split into ``resources.workers`` equal shards."""
    workers = sweep.resources.workers
    if workers <= 1:
        return
    from ablate.distributed import check_batch

    configs = [t.config for t in trials] or [build_config(sweep.kind, sweep.search_base, None)]
    for cfg in configs:
        problem = check_batch(getattr(getattr(cfg, "train", None), "batch_size", workers), workers)
        if problem:
            raise UserError(f"{sweep.path}: resources.workers: {problem}")


# ---------------------------------------------------------------- the run
def run_sweep(sweep: Any, *, address: str | None = None, max_concurrent: int | None = None,
              restart: bool = False, storage: str | None = None, stream: IO[str] | None = None,
              shared_storage_ok: bool = False, log: Sequence[str] | str | None = None,
              tracking_uri: str | None = None) -> RunSummary:
    """Run every trial of ``sweep`` that is not finished yet; return what happened.

    ``storage``: a path or pyarrow URI (else the sweep's ``storage:``, else ``results``).
    ``shared_storage_ok``: trust that storage is shared on a multi-node cluster (see :func:`check_storage`).
    ``log``: experiment trackers (``--log``; default the sweep's ``logging:``), see :mod:`ablate.trackers`;
    ``tracking_uri``: MLflow's tracking URI."""
    from ray import tune

    stream = stream or sys.stdout
    kind = KINDS[sweep.kind]
    store = ResultsStore(results_location(sweep, storage), schema_for(kind.config_cls, kind.metrics))
    lock = store.lock
    lock.acquire()  # before --restart moves anything: never move a running sweep's folder
    backup = None
    if restart:
        lock.release()
        backup = store.move_aside()
        lock = store.lock
        lock.acquire()
    started_ray = False
    summary = RunSummary(store.root, 0, 0, 0, backup=backup)
    try:
        save_sweep(sweep, store)
        search = getattr(sweep, "search", None)
        trials: list[Trial] = [] if search else expand(sweep)
        check_data_parallel(sweep, trials)
        done = store.finished_ids()
        todo = [t for t in trials if t.trial_id not in done]
        if search:
            summary.total = search.num_samples
            summary.skipped = min(len(done), search.num_samples)
            n_new = search.num_samples - summary.skipped
        else:
            summary.total, summary.skipped, n_new = len(trials), len(trials) - len(todo), len(todo)
        if backup:
            print(f"moved old results to {backup}", file=stream)
        if n_new == 0:
            print(f"all {summary.total} trials of {sweep.name} are already in {store.root}; nothing to run "
                  "(--restart starts over)", file=stream)
            return summary
        trackers = _trackers(sweep, store, log, tracking_uri, stream)  # a missing package fails before Ray starts
        started_ray = _init_ray(address, log_dir(store.loc, sweep.name))
        _skip_callback_telemetry()
        need = trial_resources(sweep)
        check_feasible(need)
        check_storage(store.loc, address, shared_storage_ok)
        view = ProgressView(total=summary.total, metric=sweep.metric.name, mode=sweep.metric.mode,
                            skipped=summary.skipped, stream=stream)
        view.status.update({tid: "ok" for tid in done})
        r, ck = sweep.resources, sweep.checkpoint
        run = {"results": str(store.loc), "every": ck.every, "keep": ck.keep, "max_failures": sweep.max_failures,
               "workers": r.workers, "worker_resources": {k: v for k, v in need.items() if k != "workers"},
               "train_storage": str(store.loc / "_ray" / "_train")}
        metrics = sorted({sweep.metric.name, *([search.metric] if search else [])})
        common = {"kind": sweep.kind, "sweep": sweep.name, "metrics": metrics, "run": run}
        concurrent = max_concurrent or sweep.max_concurrent or None
        if r.workers > 1:  # data-parallel drivers hold no CPU: cap them at what the workers fit into
            fits = max(1, fitting_trials(need, _alive_nodes()))
            concurrent = min(concurrent or fits, fits)
        # Reusing a worker process between trials saves Ray's actor start-up (seconds per trial on a
        # small machine); every trial reseeds and rebuilds everything it uses, so nothing leaks.
        tune_cfg: dict[str, Any] = {"max_concurrent_trials": concurrent,
                                    "reuse_actors": sweep.resources.workers <= 1}
        if search:
            from ray.tune.search.optuna import OptunaSearch

            space = {k: _distribution(tune, d) for k, d in search.space.items()}
            base = packed(sweep.search_base, sweep)
            params = {"trial": {**common, "search": "optuna", "base": base, "sampled": space}}
            tune_cfg.update(search_alg=OptunaSearch(metric=search.metric, mode=search.mode,
                                                    seed=getattr(search, "seed", 0)),
                            num_samples=n_new, metric=search.metric, mode=search.mode)
        else:
            params = {"trial": tune.grid_search([{**common, "search": t.search, "config": packed(to_dict(t.config), sweep)}
                                                 for t in todo])}
        recorder = _callback_class()(store, view, summary, sweep.name)
        if r.workers > 1:
            from ablate.distributed import DRIVER_RESOURCES

            fn = tune.with_resources(trainable, DRIVER_RESOURCES)
        else:
            fn = tune.with_resources(trainable, {"cpu": r.cpu, "gpu": r.gpu})
        tuner = tune.Tuner(
            fn, param_space=params,
            tune_config=tune.TuneConfig(**tune_cfg, trial_dirname_creator=lambda t: trial_key(t.config["trial"])),
            run_config=tune.RunConfig(
                name=sweep.name, storage_path=(store.loc / "_ray").ray_storage(), verbose=0,
                callbacks=[recorder, *trackers], log_to_file=True,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=ck.keep),
                failure_config=tune.FailureConfig(max_failures=sweep.max_failures)),
        )
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # SLURM preemption = Ctrl-C
        try:
            tuner.fit()
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            signal.signal(signal.SIGTERM, previous)
            view.close()
        summary.ran = len(view.status) - len(done)
        return summary
    finally:
        lock.release()
        if started_ray:
            import ray

            ray.shutdown()


def _trackers(sweep: Any, store: ResultsStore, log: Sequence[str] | str | None, tracking_uri: str | None,
              stream: IO[str]) -> list[Any]:
    """Ray Tune logger callbacks of the sweep's ``logging:`` (or ``log``), writing under the results
    folder (a local folder beside Ray's logs when the results are on a remote URI)."""
    names = log if log is not None else getattr(sweep, "logging", ())
    if not names:
        return []
    from ablate.trackers import tracker_callbacks

    local = store.loc.local if store.loc.local is not None else log_dir(store.loc, sweep.name).parent
    return tracker_callbacks(names, sweep, local, tracking_uri, stream=stream)


def _raise_interrupt(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt


def _distribution(tune: Any, spec: Any) -> Any:
    """A search-space entry ({uniform|loguniform: [lo, hi]} or {choice: [...]}) as a Tune distribution."""
    name, args = spec.kind, spec.values
    if name == "choice":
        return tune.choice(list(args))
    return getattr(tune, name)(*args)
