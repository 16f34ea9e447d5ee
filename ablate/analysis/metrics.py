"""Which columns of the results measure a trial and which describe it.

A table cell, a comparison or ``export --best`` is a statement about a measure of the trials (an
accuracy, z_std, ||W||, the seconds it ran). A config key (``optim.lr``) or an identity column
(``seed``, ``epoch``) is what the trial was, not what it measured: averaging or t-testing one gives
numbers that mean nothing, so :func:`check_measure` refuses them by name.
"""

from __future__ import annotations

import pandas as pd

from ablate.config.tree import did_you_mean
from ablate.errors import UserError
from ablate.kinds.registry import kinds_in
from ablate.results.schema import COMMON_COLUMNS, config_columns

MEASURED_COMMON = ("wall_s", "device_s")  # the common columns that are measures: the seconds a trial took


def kinds_of(df: pd.DataFrame) -> list[str]:
    """The names of the trial kinds ``df`` holds (the default kind for a frame without a ``kind`` column)."""
    return [k.name for k in kinds_in(df)]


def config_keys(df: pd.DataFrame) -> list[str]:
    """The config leaves (dotted keys, and ``seed``) among ``df``'s columns, for the trial kinds it holds."""
    kinds = kinds_in(df)
    taken = {n for n, *_ in COMMON_COLUMNS} | {n for k in kinds for n, *_ in k.metrics}
    keys = dict.fromkeys(k for kind in kinds for k in config_columns(kind.Config))
    return ["seed"] * ("seed" in df.columns) + [k for k in keys if k in df.columns and k not in taken]


def numeric_metrics(df: pd.DataFrame) -> list[str]:
    """The metric columns of the results that a best trial can be picked by: numbers, not flags or lists."""
    names = dict.fromkeys(m for kind in kinds_in(df) for m in kind.metric_names(numeric_only=True))
    return [m for m in names if m in df.columns and _numeric(df[m]) and df[m].notna().any()]


def _numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def check_measure(df: pd.DataFrame, column: str, flag: str) -> None:
    """Refuse ``column`` as the number a command is about (``flag`` names where it was given) unless it
    is a numeric measure of the trials: a metric of their kind, the seconds they took, or another
    numeric column that is neither a config key nor an identity column (a derived one, e.g. the cost
    table's ``device_cost``)."""
    choices = [*numeric_metrics(df), *(c for c in MEASURED_COMMON if c in df.columns and df[c].notna().any())]
    listed = f"choose one of {', '.join(choices)}" if choices else "these results have no numeric metric"
    kinds = "/".join(kinds_of(df))
    if column not in df.columns:
        hint = did_you_mean(column, choices) or ""
        raise UserError(f"{flag} {column}: not a column of these results ({kinds} trials){hint}; {listed}")
    identity = {n for n, *_ in COMMON_COLUMNS} - set(MEASURED_COMMON)
    if column in config_keys(df) or column in identity:
        what = "an identity column" if column in identity and column != "seed" else "a config key"
        raise UserError(f"{flag} {column}: {what}, not a measure of a trial (it says what a trial was); {listed}")
    if not _numeric(df[column]):
        raise UserError(f"{flag} {column}: not a numeric metric (a flag, a list or text); {listed}")
