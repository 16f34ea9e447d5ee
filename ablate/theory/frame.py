"""Run ``linear_dynamics`` trials in-process, without Ray, into a results-shaped DataFrame.

For notebooks, tests and figures: the rows are exactly what ``ablate run`` stores (the kind's
metrics plus the identity and config columns, typed by the results schema), minus provenance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from ablate.config.dynamics import DynamicsConfig
from ablate.config.tree import flatten, to_dict
from ablate.config.trial import config_hash
from ablate.results.schema import schema_for, to_table
from ablate.theory.dynamics import run_linear_dynamics

SCHEMA = schema_for("linear_dynamics")


def trial_rows(cfg: DynamicsConfig, sweep: str = "") -> list[dict[str, Any]]:
    """All rows of one trial: its reports plus the identity and config columns."""
    common = {
        **flatten(to_dict(cfg)),
        "sweep": sweep,
        "trial_id": config_hash(cfg),
        "seed": cfg.seed,
        "search": "grid",
        "device": "cpu",
    }
    rows: list[dict[str, Any]] = []
    run_linear_dynamics(cfg, lambda row: rows.append({**common, **row}))
    return rows


def results_frame(configs: Iterable[DynamicsConfig], sweep: str = "") -> pd.DataFrame:
    """Rows of every trial, checked against the results schema (an unknown column raises KeyError)."""
    rows = [r for cfg in configs for r in trial_rows(cfg, sweep)]
    return to_table(rows, SCHEMA).to_pandas()
