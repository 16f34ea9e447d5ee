"""Shared pieces of the figures: results-frame access, labels, and :func:`save` (matplotlib object API),
which the sweep figures of :mod:`ablate.analysis.plots` use too."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ablate.config.dynamics import DynamicsConfig
from ablate.results.location import Location
from ablate.results.schema import config_columns

FIGURE_FORMATS = ("png", "pdf")
FLOOR = 1e-17  # plotted in place of exact zeros on log axes (float64 round-off is ~1e-16)
CONFIG_KEYS = [k for k in config_columns(DynamicsConfig) if k not in ("kind", "seed")]
# keys preferred for colour / line style / panels, in this order, when they vary across trials
PREFERRED = ("predictor", "stop_gradient", "eta", "tau", "alpha_p", "target", "beta", "sigma2", "directpred_norm")


# ---------------------------------------------------------------- helpers
def save(
    fig: Figure, stem: str | Path | Location, formats: Sequence[str] = FIGURE_FORMATS, **savefig: Any
) -> list[Path | str]:
    """Write ``fig`` as ``<stem>.<fmt>`` for each of ``formats`` (a path or a URI; a figure suffix of
    ``stem`` such as ``.png`` is replaced), each file whole; return them (Paths where local).
    ``savefig``: matplotlib's options (default: dpi 130, tight bounding box)."""
    loc = Location.parse(stem)
    base, dot, suffix = loc.name.rpartition(".")
    base = base if dot and suffix in ("png", "pdf", "svg") else loc.name
    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, **({"dpi": 130, "bbox_inches": "tight"} | savefig))
        target = loc.parent / f"{base}.{fmt}"
        target.write_bytes(buf.getvalue())
        paths.append(target.display())
    return paths


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of trials that ran fine (status ok)."""
    return df[df["status"] == "ok"] if "status" in df.columns else df


def varying_keys(df: pd.DataFrame) -> list[str]:
    """Config keys (dotted) with more than one value across the trials of ``df``, preferred ones first."""
    keys = [k for k in CONFIG_KEYS if k in df.columns and df[k].map(hashable).nunique(dropna=False) > 1]
    return sorted(keys, key=lambda k: PREFERRED.index(k) if k in PREFERRED else len(PREFERRED))


def hashable(v: Any) -> Any:
    """Lists (Parquet: arrays) as tuples, so they can be counted and grouped."""
    return tuple(v) if isinstance(v, (list, np.ndarray)) else v


def as_list(v: Any) -> list:
    """A list-valued cell as a list (Parquet gives numpy arrays, rows built in memory give lists or None)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    return list(v)


def show_value(v: Any) -> str:
    """A config value as shown in labels: 0.04, [1, 2], linear."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(show_value(x) for x in v) + "]"
    return str(v)


def config_label(row: pd.Series | dict, keys: Sequence[str]) -> str:
    """``k1=v1, k2=v2`` of a trial's config values."""
    return ", ".join(f"{k}={show_value(row[k])}" for k in keys) or "all trials"


def trial_frames(df: pd.DataFrame) -> list[pd.DataFrame]:
    """Each trial's ok rows in time order, trials in order of first appearance."""
    ok = ok_rows(df)
    return [g.sort_values("step") for _, g in ok.groupby("trial_id", sort=False)] if len(ok) else []


def config_value(trial: pd.DataFrame, key: str, default: Any = None) -> Any:
    """A trial's (constant) config value, or ``default`` when the column is absent."""
    return trial[key].iloc[0] if key in trial.columns else default


def legend_outside(fig: Figure, handles: list, labels: list[str], title: str | None = None) -> None:
    """One legend for the figure, right of the axes (never over the data)."""
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False, title=title, title_fontsize=8)
