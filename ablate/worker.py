"""The worker side of ``ablate run``: what runs inside each Ray Tune trial.

A trial's Tune parameters carry its kind and config (grid) or base + sampled values (search);
:func:`resolve` rebuilds the config the same way in the driver and the worker, so both agree on
the trial_id. Rows go back to the driver as JSON in Tune results (``ROW_KEY``), where
:mod:`ablate.runner` writes them to Parquet.
"""
from __future__ import annotations

import inspect
import json
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from ablate.configtree import merge
from ablate.kinds import KINDS, build_config, run_callable
from ablate.rows import failed_row, trial_columns
from ablate.store import Location

ROW_KEY = "row_json"


def resolve(params: dict[str, Any]) -> tuple[Any, Any, str, dict[str, Any]]:
    """Trial parameters (as Tune passes them) -> (kind, config, search, extra columns).

    Grid trials carry their whole resolved config; search trials carry the base and the sampled
    overrides, merged here (the same code runs in the driver and the worker, so both agree on the
    trial_id)."""
    kind = KINDS[params["kind"]]
    tree = params["config"] if "config" in params else merge(params["base"], params["sampled"])
    cfg = build_config(kind, tree, None)
    return kind, cfg, params["search"], {"sweep": params["sweep"], "search": params["search"]}


def trial_key(params: dict[str, Any]) -> str:
    """OUR trial_id of a Tune trial's parameters: Tune's trial folders are named by it, so a later
    run of the same sweep finds the checkpoints of the same trial."""
    from ablate.config import config_hash

    return config_hash(resolve(params)[1])


def row_reporter(params: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """``report(row)`` for a trial: the full row (identity, config, provenance, metrics) as JSON
    plus the metrics Tune and its searcher look at (NaN where missing), handed to ``send``
    (``tune.report`` / ``ray.train.report``).

    Kinds that report many rows per second (``TrialKind.batch_rows_s``, the theory kind) send them
    in batches, one ``send`` per interval and always at the final row: each ``send`` costs Ray
    milliseconds and the driver one Parquet write."""
    kind, cfg, _, extra = resolve(params)
    base = {**trial_columns(cfg, kind.name, "unknown"), **extra}
    interval = getattr(kind, "batch_rows_s", 0.0)
    pending: list[dict[str, Any]] = []
    last = [time.monotonic()]

    def report(row: dict[str, Any]) -> None:
        row = {**base, **row, **extra}
        pending.append(row)
        final = bool(row.get("is_final")) or row.get("status") != "ok"
        if not final and time.monotonic() - last[0] < interval:
            return
        values = {m: row.get(m) if _finite(row.get(m)) else math.nan for m in tune_metrics(params)}
        payload = pending[0] if len(pending) == 1 else list(pending)
        send({ROW_KEY: json.dumps(payload, default=_jsonable), **values, "is_final": bool(row.get("is_final"))})
        pending.clear()
        last[0] = time.monotonic()

    return report


def failed_report(params: dict[str, Any], error: str) -> dict[str, Any]:
    """The Tune result that records a trial as failed with ``error``."""
    kind, cfg, _, extra = resolve(params)
    return {ROW_KEY: json.dumps(failed_row(cfg, kind.name, error) | extra, default=_jsonable),
            **{m: math.nan for m in tune_metrics(params)}, "is_final": True}


def tune_metrics(params: dict[str, Any]) -> list[str]:
    """The metrics every Tune result carries: the sweep's metric and a search's (Optuna reads its
    metric from every result, heartbeats included)."""
    return list(params["metrics"])


def trial_call(params: dict[str, Any], report: Callable, checkpointer: Any = None, artifacts: Any = None) -> None:
    """Run the trial's kind with ``report``, and the checkpointer / artifact store where its run
    function takes them (the theory kind does not: it has nothing worth checkpointing)."""
    kind, cfg, _, _ = resolve(params)
    fn = run_callable(kind)
    accepted = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in (("checkpointer", checkpointer), ("artifacts", artifacts)) if k in accepted}
    fn(cfg, report, **kwargs)


def trainable(params: dict[str, Any]) -> None:
    """What every Tune trial runs: the kind's run function with a report that forwards full rows,
    a checkpointer on Tune's checkpoints, and the trial's weights folder; or, for
    ``resources.workers > 1``, a Ray Train data-parallel job of it (:mod:`ablate.distributed`)."""
    from ray import tune

    from ablate.checkpoints import TuneCheckpointer, checkpoint_roots, heartbeat
    from ablate.store import ArtifactStore, weights_location

    params = params["trial"]
    run = {**params["run"], "trial_id": trial_key(params)}
    params = {**params, "run": run}
    if run["workers"] > 1:
        from ablate.distributed import run_data_parallel

        run_data_parallel(params)
        return
    results = Location.parse(run["results"])
    checkpointer = None
    if run["every"]:
        checkpointer = TuneCheckpointer(run["every"], run["trial_id"],
                                        checkpoint_roots(results, params["sweep"], run["trial_id"]),
                                        heartbeat(tune_metrics(params)))
    try:
        trial_call(params, row_reporter(params, tune.report), checkpointer,
                   ArtifactStore(weights_location(results, run["trial_id"])))
    except Exception as e:
        tune.report(failed_report(params, _error_text(e)))
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
