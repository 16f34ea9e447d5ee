"""Which trials a comparison counts (``ablate compare``): the rows with given config values
(:func:`select`, the ``--a`` / ``--b`` / ``--where`` of the command) and the rows a metric under a
probe protocol counts, one per trial (:func:`rows_under`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ablate.analysis.metrics import check_measure, kinds_of, numeric_metrics
from ablate.analysis.paper import canon, value_rank
from ablate.analysis.protocols import metric_under, protocol_rows
from ablate.config.tree import did_you_mean
from ablate.errors import UserError
from ablate.sweep.expand import axes_label


def rows_under(
    df: pd.DataFrame, metric: str, protocol: str | None, where: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, str]:
    """(the rows a comparison of ``metric`` under ``protocol`` counts, one per trial where the protocol
    takes each trial's best epoch; the metric compared), of the trials with the config values ``where``.
    The metric is checked first: a protocol picks a probe number, which not every trial kind has."""
    measured, over = metric_under(metric, protocol)
    if protocol is not None and measured not in df.columns:
        raise UserError(
            f"compare --protocol {protocol}: it picks a linear-probe number ({measured}), which these "
            f"{'/'.join(kinds_of(df))} trials do not have; leave --protocol out and give --metric "
            f"(one of {', '.join(numeric_metrics(df))})"
        )
    check_measure(df, measured, "compare --metric")
    return protocol_rows(select(df, where) if where else df, measured, over), measured


def select(df: pd.DataFrame, where: Mapping[str, Any], flag: str = "--where") -> pd.DataFrame:
    """Rows whose config columns equal ``where`` (dotted key -> value; 0.0 == 0, "0.996" == 0.996).

    A key that is not a column, a value no trial has, or values no trial has together are mistakes
    (``flag`` names where they were given): an empty arm would read as "too few seeds"."""
    mask = pd.Series(True, index=df.index)
    for key, value in where.items():
        if key not in df.columns:
            raise UserError(
                f"compare {flag} {key}={value}: {key!r} is not a column of the results"
                f"{did_you_mean(key, list(df.columns)) or ''}; keys that vary here: {', '.join(_varying(df)) or 'none'}"
            )
        have = df[key].map(canon)
        if not (have == canon(value)).any():
            seen = sorted(dict.fromkeys(have), key=value_rank)
            values = ", ".join(seen[:12]) + (f" ... ({len(seen)} values)" if len(seen) > 12 else "")
            raise UserError(f"compare {flag} {key}={value}: no trial has this value; {key} values here: {values}")
        mask &= have == canon(value)
    if not mask.any():
        raise UserError(f"compare {flag} {arm_label(where)}: no trial has all of these values; pick values of one arm")
    return df[mask]


def _varying(df: pd.DataFrame) -> list[str]:
    """The config columns (dotted keys) with two or more values (nulls aside): the sweep's axes, roughly."""
    dotted = [c for c in df.columns if "." in c]
    return [c for c in dotted if df[c].dropna().map(canon).nunique() > 1][:12]


def arm_label(where: Mapping[str, Any]) -> str:
    """An arm as a comparison names it: ``predictor.name=directpred``, or ``all``."""
    return axes_label(where) if where else "all"
