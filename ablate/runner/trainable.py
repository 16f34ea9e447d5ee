"""The worker side of ``ablate run``: what runs inside each Ray Tune trial.

A trial's Tune parameters carry its kind and config (grid trials, with their trial_id) or the base
and the sampled values (search trials). :func:`resolve` builds the config once per trial; the rows
it reports go back to the driver as JSON in Tune results (``ROW_KEY``), where
:mod:`ablate.runner.recorder` writes them to Parquet; per-epoch heartbeats (``PROGRESS_KEY``, no row)
feed the live progress view. Each kind's record (:mod:`ablate.kinds`) holds the function that runs it.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.config.tree import merge
from ablate.kinds.registry import TrialKind, get_kind
from ablate.results.io import ArtifactStore
from ablate.results.layout import SweepDir
from ablate.results.schema import Report, finite
from ablate.runner.checkpoints import TuneCheckpointer, heartbeat
from ablate.sweep.plugins import import_shipped
from ablate.train.loop import Artifacts, Checkpointer, Progress

ROW_KEY = "row_json"
PROGRESS_KEY = "progress_json"  # a heartbeat's {"epoch", "epochs", "images_per_s", "resumed_from"}
HEARTBEAT_S = 1.0  # at most one heartbeat a second per trial: each costs a round trip to the driver


@dataclass(frozen=True)
class ResolvedTrial:
    """A Tune trial's parameters with its config built: kind, config, trial_id, the sweep's columns."""

    params: dict[str, Any]
    kind: TrialKind
    config: Any
    trial_id: str

    @property
    def columns(self) -> dict[str, Any]:
        """The columns the sweep adds to every row (its name, what produced the trial)."""
        return {"sweep": self.params["sweep"], "search": self.params["search"]}

    @property
    def metrics(self) -> list[str]:
        """The metrics every Tune result carries: the sweep's metric and a search's (Optuna reads its
        metric from every result, heartbeats included)."""
        return list(self.params["metrics"])

    @property
    def sweep_dir(self) -> SweepDir:
        return SweepDir.at(self.params["run"]["results"])


def resolve(params: dict[str, Any]) -> ResolvedTrial:
    """Build the trial's config from its Tune parameters: the whole resolved config of a grid trial,
    or the base merged with the sampled values of a search trial."""
    import_shipped(params.get("plugins", ()))  # before the kind: its records may be a plugin's
    kind = get_kind(params["kind"])
    tree = params["config"] if "config" in params else merge(params["base"], params["sampled"])
    config = kind.build(tree)
    return ResolvedTrial(params, kind, config, params.get("trial_id") or kind.trial_id(config))


def trial_id_of(params: dict[str, Any]) -> str:
    """OUR trial_id of a Tune trial's parameters (Tune's trial folders are named by it, so a later run
    of the same sweep finds the checkpoints of the same trial). Grid trials carry it; a search
    trial's comes from its sampled config."""
    return params.get("trial_id") or resolve(params).trial_id


def row_reporter(trial: ResolvedTrial, send: Callable[[dict[str, Any]], None]) -> Report:
    """``report(row)`` for a trial: the full row (identity, config, provenance, metrics) as JSON
    plus the metrics Tune and its searcher look at (NaN where missing), handed to ``send``
    (``tune.report`` / ``ray.train.report``).

    Kinds that report many rows per second (``TrialKind.batch_rows_s``, the theory kind) send them
    in batches, one ``send`` per interval and always at the final row: each ``send`` costs Ray
    milliseconds and the driver one Parquet write."""
    base = {**trial.kind.columns(trial.config), **trial.columns}
    pending: list[dict[str, Any]] = []
    last = [time.monotonic()]

    def report(row: dict[str, Any]) -> None:
        row = {**base, **row, **trial.columns}
        pending.append(row)
        final = bool(row.get("is_final")) or row.get("status") != "ok"
        if not final and time.monotonic() - last[0] < trial.kind.batch_rows_s:
            return
        values = {m: row.get(m) if finite(row.get(m)) else math.nan for m in trial.metrics}
        payload = pending[0] if len(pending) == 1 else list(pending)
        send({ROW_KEY: json.dumps(payload, default=_jsonable), **values, "is_final": bool(row.get("is_final"))})
        pending.clear()
        last[0] = time.monotonic()

    return report


def progress_reporter(trial: ResolvedTrial, send: Callable[[dict[str, Any]], None]) -> Progress:
    """The loop's per-epoch ``progress(info)`` for a trial: a heartbeat without a row (Tune's metrics
    as NaN, :func:`ablate.runner.checkpoints.heartbeat`) carrying ``info`` as JSON, handed to ``send``
    (``tune.report``); the first at once, then at most every :data:`HEARTBEAT_S` seconds."""
    beat = heartbeat(trial.metrics)
    last: list[float] = []

    def progress(info: dict[str, Any]) -> None:
        now = time.monotonic()
        if last and now - last[0] < HEARTBEAT_S:
            return
        send({**beat, PROGRESS_KEY: json.dumps(info, default=_jsonable)})
        last[:] = [now]

    return progress


def failed_result(trial: ResolvedTrial, error: str) -> dict[str, Any]:
    """The Tune result that records a trial as failed with ``error``."""
    row = trial.kind.failed_row(trial.config, error) | trial.columns
    return {ROW_KEY: json.dumps(row, default=_jsonable), **{m: math.nan for m in trial.metrics}, "is_final": True}


def run_resolved(
    trial: ResolvedTrial,
    report: Report,
    checkpointer: Checkpointer | None = None,
    artifacts: Artifacts | None = None,
    progress: Progress | None = None,
) -> None:
    """Run the trial with its kind's run function."""
    trial.kind.run(trial.config, report, checkpointer, artifacts, progress)


def trial_artifacts(trial: ResolvedTrial) -> ArtifactStore:
    """The trial's weights folder, with those of the shorter trials read from its run and their lengths
    (the ``readouts`` of its parameters, :mod:`ablate.runner.readouts`)."""
    folder = trial.sweep_dir
    readouts = tuple((int(end), ArtifactStore(folder.weights(tid))) for end, tid in trial.params.get("readouts", ()))
    return ArtifactStore(folder.weights(trial.trial_id), readouts)


def trainable(params: dict[str, Any]) -> None:
    """What every single-process Tune trial runs: its kind's run function with a report that
    forwards full rows, a checkpointer on Tune's checkpoints, the trial's weights folder and a
    per-epoch heartbeat."""
    from ray import tune

    trial = resolve(params["trial"])
    run, folder = trial.params["run"], trial.sweep_dir
    checkpointer = None
    if run["every"]:
        checkpointer = TuneCheckpointer(
            run["every"], trial.trial_id, folder.checkpoint_roots(trial.trial_id), heartbeat(trial.metrics)
        )
    try:
        artifacts = trial_artifacts(trial)
        run_resolved(
            trial, row_reporter(trial, tune.report), checkpointer, artifacts, progress_reporter(trial, tune.report)
        )
    except Exception as e:
        tune.report(failed_result(trial, error_text(e)))
        raise


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def exception_line(text: str) -> str | None:
    """The exception line of a rendered traceback (``ValueError: ...``, the last one), else its last line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln.split(":")[0] or "Exception" in ln.split(":")[0]]
    return (errors or lines or [None])[-1]


def error_text(e: BaseException) -> str:
    """``Type: message (at file:line)`` of an exception, one line."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(e).__name__}: {e}{where}"
