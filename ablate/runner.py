"""``ablate run``: an expanded sweep -> Ray Tune -> one Parquet dataset. The only module that imports Ray.

Ray Tune is the scheduler (local Ray started in-process, or ``--address`` of an existing cluster);
the results of record are our Parquet files, written by the driver from the rows each trial reports
(one writer, so no two processes ever touch a file). Resume is ours too: trials whose final row is
in the results are skipped, everything else runs again; Ray's own experiment state is not needed.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ablate.configtree import merge, to_dict
from ablate.errors import UserError
from ablate.expand import Trial, expand
from ablate.kinds import KINDS, build_config, run_callable
from ablate.progress import ProgressView
from ablate.results import schema_for
from ablate.rows import failed_row, trial_columns
from ablate.store import ResultsStore

os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # relative data paths resolve like on the CLI
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C is ours: stop, keep results, exit
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # diverged rows carry no metric

ROW_KEY = "row_json"


@dataclass
class RunSummary:
    results_dir: Path
    total: int
    skipped: int
    ran: int
    failed: dict[str, str] = field(default_factory=dict)  # trial_id -> error
    interrupted: bool = False
    backup: Path | None = None

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)


def save_sweep(sweep: Any, root: Path) -> None:
    """Keep the sweep file as run (and its --set overrides) beside the results, so ``status`` and
    ``table`` on the results folder rebuild exactly the same trials."""
    (root / "_sweep.yaml").write_text(sweep.text)
    (root / "_overrides.json").write_text(json.dumps(sweep.overrides, sort_keys=True))


def results_dir(sweep: Any, storage: str | None = None) -> Path:
    root = storage or getattr(sweep, "storage", None) or "results"
    return Path(root) / sweep.name


# ---------------------------------------------------------------- worker side
def resolve(params: dict[str, Any]) -> tuple[Any, Any, str, dict[str, Any]]:
    """Trial parameters (as Tune passes them) -> (kind, config, search, extra columns).

    Grid trials carry their whole resolved config; search trials carry the base and the sampled
    overrides, merged here (the same code runs in the driver and the worker, so both agree on the
    trial_id)."""
    kind = KINDS[params["kind"]]
    tree = params["config"] if "config" in params else merge(params["base"], params["sampled"])
    cfg = build_config(kind, tree, None)
    return kind, cfg, params["search"], {"sweep": params["sweep"], "search": params["search"]}


def trainable(params: dict[str, Any]) -> None:
    """What every Tune trial runs: the kind's run function with a report that forwards full rows."""
    from ray import tune

    params = params["trial"]
    kind, cfg, _, extra = resolve(params)
    base = {**trial_columns(cfg, kind.name, "unknown"), **extra}
    metric = params["metric"]

    def report(row: dict[str, Any]) -> None:
        row = {**base, **row, **extra}
        value = row.get(metric)
        tune.report({ROW_KEY: json.dumps(row, default=_jsonable), metric: value if _finite(value) else math.nan,
                     "is_final": bool(row.get("is_final"))})

    try:
        run_callable(kind)(cfg, report)
    except Exception as e:
        report(failed_row(cfg, kind.name, _error_text(e)) | extra)
        raise


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def _error_text(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


# ---------------------------------------------------------------- driver side
def _callback_class():
    from ray.tune import Callback

    class Recorder(Callback):
        """Writes every reported row to the results store and drives the progress view."""

        def __init__(self, store: ResultsStore, view: ProgressView, summary: RunSummary) -> None:
            self.store, self.view, self.summary = store, view, summary
            self.ids: dict[str, str] = {}  # Ray trial id -> our trial_id

        def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001 - Ray's signature
            self.view.start(self._id(trial))

        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
            if ROW_KEY not in result:
                return
            row = json.loads(result[ROW_KEY])
            self.ids[trial.trial_id] = row["trial_id"]
            self.store.add(row)
            if row.get("status") == "failed":
                self.summary.failed[row["trial_id"]] = row.get("error") or "failed"
            self.view.result(row)

        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
            tid = self._id(trial)
            if self.view.status.get(tid) is None:
                self.view.finish(tid, "ok")

        def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
            tid = self._id(trial)
            if tid not in self.summary.failed:  # died before it could report (e.g. a lost node)
                kind, cfg, _, extra = resolve(trial.config["trial"])
                error = _last_error_line(trial)
                self.store.add(failed_row(cfg, kind.name, error) | extra)
                self.summary.failed[tid] = error
            self.view.finish(tid, "failed")

        def _id(self, trial) -> str:  # noqa: ANN001
            if trial.trial_id not in self.ids:
                _, cfg, _, _ = resolve(trial.config["trial"])
                from ablate.config import config_hash

                self.ids[trial.trial_id] = config_hash(cfg)
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


def _init_ray(address: str | None, log_dir: Path) -> bool:
    """Start a local Ray (or attach to ``address``); Ray's chatter goes to ``_logs/ray.log``."""
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
    if address:
        kwargs["address"] = address
    ray.init(**{k: v for k, v in kwargs.items() if v is not None})
    return True


def check_feasible(resources: dict[str, float]) -> None:
    """Refuse a trial no node can hold (Ray would leave it PENDING forever)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    need = {k: v for k, v in resources.items() if v}
    if any(all(node.get(k, 0) >= v for k, v in need.items()) for node in nodes):
        return
    have = "; ".join(f"CPU {n.get('CPU', 0):g}, GPU {n.get('GPU', 0):g}" for n in nodes) or "no nodes"
    raise UserError(f"resources per trial {need} fit on no node of the Ray cluster ({have}); "
                    "lower resources.cpu / resources.gpu in the sweep file or add bigger nodes")


def trial_resources(sweep: Any) -> dict[str, float]:
    r = sweep.resources
    return {"CPU": r.cpu, "GPU": r.gpu}


def run_sweep(sweep: Any, *, address: str | None = None, max_concurrent: int | None = None,
              restart: bool = False, storage: str | None = None, stream: IO[str] | None = None) -> RunSummary:
    """Run every trial of ``sweep`` that is not finished yet; return what happened."""
    from ray import tune

    stream = stream or sys.stdout
    kind = KINDS[sweep.kind]
    store = ResultsStore(results_dir(sweep, storage), schema_for(kind.config_cls, kind.metrics))
    backup = store.move_aside() if restart else None
    store.lock.acquire()
    started_ray = False
    summary = RunSummary(store.root, 0, 0, 0, backup=backup)
    try:
        save_sweep(sweep, store.root)
        search = getattr(sweep, "search", None)
        trials: list[Trial] = [] if search else expand(sweep)
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
        started_ray = _init_ray(address, store.root / "_logs")
        check_feasible(trial_resources(sweep))
        view = ProgressView(total=summary.total, metric=sweep.metric.name, mode=sweep.metric.mode,
                            skipped=summary.skipped, stream=stream)
        view.status.update({tid: "ok" for tid in done})
        common = {"kind": sweep.kind, "sweep": sweep.name, "metric": sweep.metric.name}
        tune_cfg: dict[str, Any] = {"max_concurrent_trials": max_concurrent or sweep.max_concurrent or None}
        if search:
            from ray.tune.search.optuna import OptunaSearch

            space = {k: _distribution(tune, d) for k, d in search.space.items()}
            params = {"trial": {**common, "search": "optuna", "base": sweep.search_base, "sampled": space}}
            tune_cfg.update(search_alg=OptunaSearch(metric=search.metric, mode=search.mode,
                                                    seed=getattr(search, "seed", 0)),
                            num_samples=n_new, metric=search.metric, mode=search.mode)
        else:
            params = {"trial": tune.grid_search([{**common, "search": t.search, "config": to_dict(t.config)}
                                                 for t in todo])}
        recorder = _callback_class()(store, view, summary)
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": sweep.resources.cpu, "gpu": sweep.resources.gpu}),
            param_space=params,
            tune_config=tune.TuneConfig(**tune_cfg, trial_dirname_creator=lambda t: t.trial_id),
            run_config=tune.RunConfig(name=sweep.name, storage_path=str((store.root / "_ray").resolve()),
                                      verbose=0, callbacks=[recorder], log_to_file=True,
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
        store.lock.release()
        if started_ray:
            import ray

            ray.shutdown()


def _raise_interrupt(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt


def _distribution(tune: Any, spec: Any) -> Any:
    """A search-space entry ({uniform|loguniform: [lo, hi]} or {choice: [...]}) as a Tune distribution."""
    name, args = spec.kind, spec.values
    if name == "choice":
        return tune.choice(list(args))
    return getattr(tune, name)(*args)
