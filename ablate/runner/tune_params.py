"""What every Tune trial of ``ablate run`` gets as its parameters, made on the driver
(:func:`ablate.runner.trainable.resolve` reads them in the worker)."""

from __future__ import annotations

from typing import Any

from ablate.config.tree import to_dict
from ablate.results.layout import SweepDir
from ablate.runner.readouts import Readouts
from ablate.runner.resources import with_gpu_share
from ablate.sweep.expand import Trial
from ablate.sweep.validated import Sweep


def tune_params(
    sweep: Sweep, folder: SweepDir, todo: list[Trial], need: dict[str, float], readouts: Readouts | None = None
) -> dict[str, Any]:
    """What every Tune trial gets (:func:`ablate.runner.trainable.resolve` reads it): the sweep's
    columns, the metrics Tune watches, where the results are, and the trials (``grid``, each with the
    shorter trials whose weights its run keeps) or the base a search samples into."""
    ck = sweep.checkpoint
    run = {
        "results": str(folder),
        "every": ck.every,
        "keep": ck.keep,
        "max_failures": sweep.max_failures,
        "workers": sweep.resources.workers,
        "worker_resources": {k: v for k, v in need.items() if k != "workers"},
    }
    metrics = sorted({sweep.metric.name, *([sweep.search.metric] if sweep.search else [])})
    params: dict[str, Any] = {
        "kind": sweep.kind,
        "sweep": sweep.name,
        "metrics": metrics,
        "run": run,
        "plugins": [p.to_params() for p in sweep.plugins],
    }
    if sweep.search:
        return {**params, "search": "optuna", "base": with_gpu_share(sweep.search_base, sweep)}
    grid = [
        {
            "search": t.search,
            "trial_id": t.trial_id,
            "config": with_gpu_share(to_dict(t.config), sweep),
            "readouts": readouts.params(t.trial_id) if readouts else [],
        }
        for t in todo
    ]
    return {**params, "grid": grid}
