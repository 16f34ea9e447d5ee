"""The parts of ``ablate report`` computed from the rows besides the table and the figures.

- :func:`provenance_summary`, :func:`status_counts`: where the rows came from, and how the trials ended;
- :func:`config_summary`: the sweep's configuration at a glance, from the trials themselves: what the
  sweep varies (with its values), what only some trials set or what follows from a variant (e.g.
  DirectPred's ``rho``, the MLP predictor's ``bias`` default), and what is fixed;
- :func:`trial_grid`: one row per trial: the config values that vary, its final metrics, status, epochs
  and wall and device time;
- :func:`aligned_notes`: what a reader must know to read the eigen-alignment right (why DirectPred's
  is 1 by construction).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ablate.analysis.metrics import config_keys
from ablate.analysis.paper import parse_value
from ablate.analysis.report_blocks import Grid
from ablate.analysis.tables import EPOCH
from ablate.results.io import final_mask
from ablate.results.schema import COLLAPSED_STOPPED, finite


# ---------------------------------------------------------------- values
def show(v: Any) -> str:
    """A config or metric value as the report shows it: 0.996, true, [1, 2], — for none."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(show(x) for x in v) + "]"
    if v is None or pd.isna(v):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


def last_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial, in order of first appearance: its final row, else (unfinished) its latest."""
    if df.empty or "trial_id" not in df.columns:
        return df.iloc[:0]
    final = final_mask(df)
    epoch = df[EPOCH].fillna(-1) if EPOCH in df.columns else 0
    order = df.assign(_final=final, _epoch=epoch).sort_values(["_final", "_epoch"], kind="stable")
    last = order.groupby("trial_id", sort=False).tail(1).drop(columns=["_final", "_epoch"])
    first_seen = {t: i for i, t in enumerate(dict.fromkeys(df["trial_id"]))}
    return last.sort_values("trial_id", key=lambda s: s.map(first_seen), kind="stable")


# ---------------------------------------------------------------- where the rows came from, how the trials ended
def provenance_summary(df: pd.DataFrame) -> dict[str, str]:
    """Where the rows came from, summarised over the sweep's trials."""
    if df.empty:
        return {}

    def values(col: str) -> str:
        if col not in df.columns:
            return "unknown"
        counts = df.drop_duplicates("trial_id")[col].dropna().astype(str).value_counts()
        return "; ".join(f"{v} ({n} trials)" if len(counts) > 1 else v for v, n in counts.items()) or "unknown"

    last = df.groupby("trial_id")["wall_s"].max() if "wall_s" in df.columns else pd.Series(dtype=float)
    started = df["started_at"].dropna().astype(str) if "started_at" in df.columns else pd.Series(dtype=str)
    dirty = (
        df.drop_duplicates("trial_id")["git_dirty"].fillna(False).astype(bool) if "git_dirty" in df.columns else None
    )
    total, longest = durations([last.sum(), last.max()])[0] if len(last) else ("unknown", "unknown")
    versions = "unknown"
    if "versions" in df.columns and df["versions"].notna().any():
        vs = [json.loads(v) for v in df["versions"].dropna().unique()]
        versions = "; ".join(", ".join(f"{k} {v}" for k, v in sorted(x.items())) for x in vs)
    return {
        "git commit": values("git_sha"),
        "uncommitted changes": "unknown"
        if dirty is None
        else (f"yes ({int(dirty.sum())} trials)" if dirty.any() else "no"),
        "versions": versions,
        "device": values("device"),
        "first trial started": started.min() if len(started) else "unknown",
        "last trial started": started.max() if len(started) else "unknown",
        "total wall time (sum over trials)": total,
        "longest trial": longest,
    }


STATES = {"ok": "ok", "diverged": "diverged", "failed": "failed", COLLAPSED_STOPPED: "stopped"}  # final status -> count


def status_counts(df: pd.DataFrame) -> dict[str, int]:
    """Trials by state: ok, diverged, failed, stopped (ended at collapse by the sweep's stop_collapsed),
    by their final row; collapsed (ok but z_std < 0.1); unfinished (no final row)."""
    if df.empty:
        return {}
    out = {"trials": int(df.trial_id.nunique()), "collapsed": 0, "unfinished": 0, **dict.fromkeys(STATES.values(), 0)}
    for _, rows in df.groupby("trial_id"):
        final = rows[final_mask(rows)]
        if final.empty:
            out["unfinished"] += 1
            continue
        last = final.iloc[-1]
        state = STATES.get(str(last.status), str(last.status))
        out[state] = out.get(state, 0) + 1
        if last.status == "ok" and last.get("collapsed") in (True, 1):  # None / NaN: not recorded
            out["collapsed"] += 1
    return out


def counts_text(counts: Mapping[str, int]) -> str:
    """``8 trials: 6 ok (2 of them collapsed), 0 diverged, 0 failed, 0 unfinished``; stopped trials, and
    any other final status, are named where there are some: every trial is counted once."""
    if not counts:
        return "no results yet"
    said = {"trials", "ok", "collapsed", "diverged", "failed", "unfinished"}
    others = "".join(
        f", {n} {'stopped at collapse' if k == 'stopped' else k}" for k, n in counts.items() if n and k not in said
    )
    return (
        f"{counts['trials']} trials: {counts['ok']} ok ({counts['collapsed']} of them collapsed), "
        f"{counts['diverged']} diverged, {counts['failed']} failed{others}, {counts['unfinished']} unfinished"
    )


# ---------------------------------------------------------------- the configuration at a glance
@dataclass(frozen=True)
class ConfigSummary:
    """``varies``: (key, its values in order of appearance), the settings the sweep varies; ``partly``:
    (key, value, where it holds) for a setting that only some trials have or that follows from a
    variant the sweep picks (its default differs between variants); ``fixed``: (key, value) the same
    in every trial."""

    varies: tuple[tuple[str, tuple[str, ...]], ...]
    partly: tuple[tuple[str, str, str], ...]
    fixed: tuple[tuple[str, str], ...]


def config_summary(df: pd.DataFrame, chosen: Collection[str] | None = None) -> ConfigSummary:
    """What varies across the trials of ``df`` (values in the order of its rows), what only some of them
    set or follows from a variant, and what is fixed.

    ``chosen``: the keys the sweep's grid or cases set (:func:`chosen_keys`); only those count as
    varied, a key that differs without being chosen is a variant's default. Without it (no sweep
    known), a key whose value follows from another varying key's (and not the other way round)
    counts as that variant's default."""
    trials = last_rows(df)
    shown = {k: trials[k].map(show) for k in config_keys(trials)}
    distinct = {k: tuple(dict.fromkeys(v for v in values if v != "—")) for k, values in shown.items()}
    differ = [k for k, d in distinct.items() if len(d) > 1]
    if chosen is None:
        varying = [k for k in differ if not any(_follows(shown[k], shown[j]) for j in differ if j != k)]
    else:
        varying = [k for k in differ if k in chosen]
    partly, fixed = [], []
    for key, values in distinct.items():
        if key in varying or not values:
            continue
        if len(values) == 1 and not (shown[key] == "—").any():
            fixed.append((key, values[0]))
            continue
        partly += [(key, v, _where(shown, shown[key] == v, varying)) for v in values]
    return ConfigSummary(tuple((k, distinct[k]) for k in varying), tuple(partly), tuple(fixed))


def chosen_keys(axes: Sequence[dict[str, Any]]) -> set[str]:
    """The config keys the sweep's trials were given by its grid or cases (``Trial.axes``, whose
    mapping values replace a sub-tree: ``{"predictor": {"name": "mlp"}}`` chose ``predictor.name``)."""
    out: set[str] = set()

    def walk(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{key}.{k}", v)
        else:
            out.add(key)

    for ax in axes:
        for k, v in ax.items():
            walk(k, v)
    return out


def _follows(key: pd.Series, other: pd.Series) -> bool:
    """Whether ``key``'s value is a function of ``other``'s and not the other way round: a default that
    changes with the variant ``other`` picks (predictor.bias with predictor.name)."""
    one_way = key.groupby(other).nunique().max() == 1
    back = other.groupby(key).nunique().max() == 1
    return bool(one_way and not back)


def _where(shown: dict[str, pd.Series], is_set: pd.Series, varying: Sequence[str]) -> str:
    """Where ``is_set`` holds, in terms of a varying key whose values tell those trials apart
    (``predictor.name=directpred``), else as a count of trials."""
    for other in varying:
        inside, outside = set(shown[other][is_set]), set(shown[other][~is_set])
        if not inside & outside:
            return f"where {other}={', '.join(v for v in dict.fromkeys(shown[other][is_set]))}"
    return f"in {int(is_set.sum())} of {len(is_set)} trials"


# ---------------------------------------------------------------- one row per trial
# (column, header, scale, format): the final metrics a trial row shows, where any trial has them
TRIAL_METRICS: tuple[tuple[str, str, float, str], ...] = (
    ("probe_top1_best", "probe top-1 best (%)", 100.0, ".2f"),
    ("probe_top1", "probe top-1 final (%)", 100.0, ".2f"),
    ("knn_top1", "kNN top-1 (%)", 100.0, ".2f"),
    ("loss", "loss", 1.0, ".4g"),
    ("z_std", "z_std", 1.0, ".3g"),
    ("eig_align", "eig-align", 1.0, ".3g"),
    ("commutator", "commutator", 1.0, ".3g"),
)
WALL_TIME_NOTE = (
    "wall time: seconds from the trial's start to its last row (wall_s), data loading and waiting included; "
    "device time: the seconds it computed, training and evaluation epochs (device_s)."
)


def _number(v: Any, scale: float, fmt: str) -> str:
    return format(float(v) * scale, fmt) if finite(v) else "—"


def durations(*columns: Sequence[Any]) -> list[list[str]]:
    """Seconds as text in ONE format for all of ``columns`` (so they read down and across alike):
    ``12.3 s`` while every value is under a minute, else ``h:mm:ss``; ``—`` where there is none."""
    values = [float(v) for col in columns for v in col if finite(v)]
    short = not values or max(values) < 60

    def text(v: Any) -> str:
        if not finite(v):
            return "—"
        return f"{float(v):.1f} s" if short else str(dt.timedelta(seconds=round(float(v))))

    return [[text(v) for v in col] for col in columns]


def _status(row: pd.Series) -> str:
    if not bool(row.get("is_final")):
        return "unfinished"
    if row.get("status") == COLLAPSED_STOPPED:
        return "stopped at collapse"
    collapsed = row.get("collapsed") in (True, 1) and row.get("status") == "ok"
    return str(row.get("status")) + (" (collapsed)" if collapsed else "")


def trial_grid(df: pd.DataFrame, keys: Sequence[str], metric: str, scale: float) -> Grid:
    """One row per trial (``df``'s order): its id, the values of ``keys``, its final metrics (the table's
    ``metric`` first, scaled by ``scale``), status, epochs done and wall and device time; the metrics,
    epochs and times are the grid's right-aligned number columns."""
    trials = last_rows(df)
    extra = [] if any(metric == m for m, *_ in TRIAL_METRICS) else [(metric, metric, scale, ".4g")]
    metrics = [m for m in (*extra, *TRIAL_METRICS) if m[0] in trials.columns and trials[m[0]].notna().any()]
    header = ("trial", *keys, *(h for _, h, _, _ in metrics), "status", "epochs", "wall time", "device time")
    times = [trials[c] if c in trials.columns else [None] * len(trials) for c in ("wall_s", "device_s")]
    wall, device = durations(*times)
    rows = [
        (
            str(r["trial_id"])[:8],
            *(show(r.get(k)) for k in keys),
            *(_number(r.get(m), s, f) for m, _, s, f in metrics),
            _status(r),
            show(r.get(EPOCH)),
            wall[i],
            device[i],
        )
        for i, (_, r) in enumerate(trials.iterrows())
    ]
    first = 1 + len(keys)
    numbers = [1 + i for i, _ in enumerate(keys) if all(_is_number(r[1 + i]) for r in rows)]  # e.g. ema.tau
    right = (*numbers, *range(first, first + len(metrics)), first + len(metrics) + 1, len(header) - 2, len(header) - 1)
    return Grid(header, tuple(rows), right)


def _is_number(text: str) -> bool:
    """Whether a shown value is a number (or — for none): such a column is right-aligned."""
    value = parse_value(text)
    return text == "—" or (isinstance(value, (int, float)) and not isinstance(value, bool))


# ---------------------------------------------------------------- notes beside the figures
# predictor.name -> (its name in prose, why its eigen-alignment says nothing about Theorem 3: it holds by construction)
ALIGNED_BY_CONSTRUCTION = {
    "directpred": (
        "DirectPred",
        "DirectPred's eigen-alignment is 1 by construction: every plug-in sets W_p = U diag(p) U^T from "
        "F_hat = U diag(s) U^T's own eigenvectors, with every p_j > 0 (Eq. 18; DirectCopy's W_p = "
        "F_hat/||F_hat|| + eps I has them too, with positive eigenvalues for eps > 0), so each u_j is an "
        "eigenvector of W_p with a positive eigenvalue: cos(W_p u_j, u_j) = 1 and [F_hat, W_p] = 0 right "
        "after each plug-in. Only the SGD steps between plug-ins (predictor.freq > 1) can move it. For "
        "DirectPred, 1 shows the construction, not the alignment Theorem 3 predicts for a trained linear "
        "predictor.",
    ),
}


def aligned_notes(df: pd.DataFrame, short: bool = False) -> list[str]:
    """The notes of :data:`ALIGNED_BY_CONSTRUCTION` for the predictors ``df`` holds; ``short``: one line
    each, pointing to the whole note beside the eigen figure."""
    names = set(df["predictor.name"].dropna()) if "predictor.name" in df.columns else set()
    held = [entry for name, entry in ALIGNED_BY_CONSTRUCTION.items() if name in names]
    if short:
        return [f"{who}'s eig-align is 1 by construction: see the note under the eigen figure." for who, _ in held]
    return [note for _, note in held]
