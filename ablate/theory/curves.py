"""Curves of ``linear_dynamics`` trials over time (log axes) and a summary of final values.

:func:`metric_decay`      any metric vs t, one line per trial (panels / colour / line style by config keys);
:func:`commutator_decay`  ||[F, W_p]|| / (||F|| ||W_p||), Theorem 3 / Fig. 9;
:func:`balance_decay`     Theorem 1's balance residual;
:func:`norm_decay`        ||W||, Theorem 2;
:func:`parabola_decay`    distance to the parabola s = p^2 / alpha_p (Sec. 4);
:func:`final_summary`     a final metric vs one config key (Table 4's EMA / alpha_p observations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ablate.results.io import final_mask
from ablate.theory.plotkit import (
    FIGURE_FORMATS,
    FLOOR,
    config_label,
    hashable,
    legend_outside,
    save,
    show_value,
    trial_frames,
    varying_keys,
)


# ---------------------------------------------------------------- decays over time (Theorems 1, 3)
def _facets(firsts: pd.DataFrame, keys: list[str], max_panels: int = 4) -> list[str]:
    """Panel keys: predictor and stop_gradient (the arms of Theorem 2) while they give <= max_panels panels."""
    facet = [k for k in ("predictor", "stop_gradient") if k in keys]
    while facet and len(firsts[facet].drop_duplicates()) > max_panels:
        facet.pop()
    return facet


def metric_decay(
    df: pd.DataFrame,
    out_path: str | Path,
    metric: str,
    ylabel: str,
    title: str,
    *,
    log: bool = True,
    facet: Sequence[str] | None = None,
    hue: str | None = None,
    style: str | None = None,
    formats: Sequence[str] = FIGURE_FORMATS,
) -> list[Path]:
    """``metric`` vs t (log axis unless ``log=False``), one line per trial. Panels by the ``facet`` keys,
    colour by ``hue``, line style by ``style``; by default predictor / stop_gradient make the panels and
    the varying keys with the most values the colour and the style. Keys left over (and seeds) share a
    line's look; the legend says which."""
    trials = [t for t in trial_frames(df) if metric in t.columns and t[metric].notna().any()]
    if not trials:
        return []
    firsts = pd.concat([t.iloc[:1] for t in trials])
    facet, hue, style, hidden = _encodings(firsts, facet, hue, style)
    panel_ids = list(dict.fromkeys(config_label(r, facet) for _, r in firsts.iterrows())) if facet else [""]
    hues = list(dict.fromkeys(firsts[hue])) if hue else [None]
    styles = list(dict.fromkeys(firsts[style])) if style else [None]
    colour = _colours(firsts, hue, hues)
    ncol = min(len(panel_ids), 4)
    nrow = math.ceil(len(panel_ids) / ncol)
    fig = Figure(figsize=(4.4 * ncol + 2.6, 3.6 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False, sharey=True).ravel())
    for t in trials:
        first = t.iloc[0]
        ax = axes[panel_ids.index(config_label(first, facet)) if facet else 0]
        y = t[metric].astype(float).to_numpy()
        ax.plot(
            t["t"],
            np.maximum(y, FLOOR) if log else y,
            color=colour[first[hue]] if hue else "C0",
            ls=DASHES[styles.index(first[style]) % len(DASHES)] if style else "-",
            lw=1.3,
            alpha=0.9,
        )
    for ax, pid in zip(axes, panel_ids):
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("time t (flow units, steps x dt)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, lw=0.5)
        ax.set_title(pid, fontsize=9)
    for ax in axes[len(panel_ids) :]:
        ax.set_visible(False)
    _legend(fig, hue, hues, colour, style, styles, hidden)
    fig.suptitle(title, fontsize=10)
    return save(fig, out_path, formats)


DASHES = ["-", "--", ":", "-."]


def _encodings(
    firsts: pd.DataFrame, facet: Sequence[str] | None, hue: str | None, style: str | None
) -> tuple[list[str], str | None, str | None, list[str]]:
    """(panel keys, colour key, line-style key, keys left over): by default predictor / stop_gradient
    make the panels and the varying keys with the most values the colour and the style."""
    keys = [k for k in varying_keys(firsts) if k != "seed"]
    facet = list(facet) if facet is not None else _facets(firsts, keys)
    rest = sorted([k for k in keys if k not in facet], key=lambda k: -firsts[k].map(hashable).nunique())
    if hue is None and style is None:
        hue, style = (rest + [None, None])[:2]
        if style is not None and firsts[style].nunique() > 4:
            style = None
    return facet, hue, style, [k for k in keys if k not in (*facet, hue, style)]


def _colours(firsts: pd.DataFrame, hue: str | None, hues: list) -> dict:
    """A colour per value of ``hue``: a sequential map for many numbers, categorical colours otherwise."""
    numeric = (
        hue is not None and pd.api.types.is_numeric_dtype(firsts[hue]) and not pd.api.types.is_bool_dtype(firsts[hue])
    )
    cmap = colormaps["viridis" if numeric and len(hues) > 3 else "tab10"]
    return {
        v: cmap(0.9 * i / max(len(hues) - 1, 1)) if cmap.name == "viridis" else cmap(i % 10) for i, v in enumerate(hues)
    }


def _legend(
    fig: Figure, hue: str | None, hues: list, colour: dict, style: str | None, styles: list, hidden: list[str]
) -> None:
    handles, labels = [], []
    if hue:
        handles += [Line2D([], [], color=colour[v], lw=1.6) for v in hues]
        labels += [f"{hue}={show_value(v)}" for v in hues]
    if style:
        handles += [Line2D([], [], color="0.3", ls=DASHES[i % len(DASHES)], lw=1.3) for i in range(len(styles))]
        labels += [f"{style}={show_value(v)}" for v in styles]
    note = "one line per trial" + (f"; not told apart: {', '.join(hidden)}, seed" if hidden else "; seeds share a look")
    if handles:
        legend_outside(fig, handles, labels, title=note)


def commutator_decay(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FIGURE_FORMATS) -> list[Path]:
    """Theorem 3 / Fig. 9: the normalised commutator ||[F, W_p]||_F / (||F|| ||W_p||) over time, log y."""
    return metric_decay(
        df,
        out_path,
        "commutator",
        "$\\|[F, W_p]\\|_F \\,/\\, (\\|F\\|_F \\|W_p\\|_F)$",
        "Eigenspace alignment: the commutator decays (Theorem 3); ~1e-16 is float64 round-off",
        formats=formats,
    )


def balance_decay(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FIGURE_FORMATS) -> list[Path]:
    """Theorem 1: relative deviation of W W^T - W_p^T W_p / alpha_p from e^{-2 eta t} times its start."""
    return metric_decay(
        df,
        out_path,
        "balance_residual",
        "balance residual (relative)",
        "Theorem 1: $WW^T - W_p^TW_p/\\alpha_p = e^{-2\\eta t}C$ (residual = integration error)",
        formats=formats,
    )


# ---------------------------------------------------------------- more curves and a summary
def norm_decay(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FIGURE_FORMATS) -> list[Path]:
    """Theorem 2: ||W||_F over time, log y (-> 0 without stop-gradient or without a predictor)."""
    return metric_decay(
        df,
        out_path,
        "w_norm",
        "$\\|W\\|_F$",
        "Collapse: without stop-gradient or predictor $W \\to 0$ (Theorem 2)",
        formats=formats,
    )


def parabola_decay(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FIGURE_FORMATS) -> list[Path]:
    """Sec. 4's invariant: max_j |s_j - p_j^2 / alpha_p| over time, log y (e^{-2 eta t} when eta > 0)."""
    return metric_decay(
        df,
        out_path,
        "parabola_gap",
        "$\\max_j |s_j - p_j^2/\\alpha_p|$",
        "Distance to the parabola decays as $e^{-2\\eta t}$ (Figs. 3, 5)",
        formats=formats,
    )


def final_summary(
    df: pd.DataFrame,
    out_path: str | Path,
    metric: str,
    x: str | None = None,
    *,
    formats: Sequence[str] = FIGURE_FORMATS,
) -> list[Path]:
    """Final ``metric`` vs the config key ``x`` (default: the last numeric varying key), one line per
    combination of the other varying keys, mean over seeds with a min-max band. With an EMA target a
    second panel shows min over time of tau_eff = <W_a, W> / ||W||^2 (how far W_a lags W)."""
    trials = trial_frames(df)
    if not trials or metric not in df.columns:
        return []
    firsts = pd.concat([t.iloc[:1] for t in trials])
    keys = [k for k in varying_keys(firsts) if k != "seed"]
    numeric = [
        k for k in keys if pd.api.types.is_numeric_dtype(firsts[k]) and not pd.api.types.is_bool_dtype(firsts[k])
    ]
    x = x or (numeric[-1] if numeric else None)
    if x is None:
        return []
    others = [k for k in keys if k != x]
    recs = [
        {
            **{k: t.iloc[0][k] for k in (x, *others)},
            "y": float(t[metric].iloc[-1]),
            "lag": float(t["tau_eff"].min()) if "tau_eff" in t.columns and t["tau_eff"].notna().any() else np.nan,
        }
        for t in trials
        if final_mask(t).iloc[-1]
    ]
    tab = pd.DataFrame(recs)
    panels = [("y", f"final {metric}")]
    if "target" in tab.columns and (firsts.get("target") == "ema").any():
        panels.append(("lag", "$\\min_t\\,\\tau_{eff}$ = min $\\langle W_a, W\\rangle/\\|W\\|^2$"))
    fig = Figure(figsize=(4.6 * len(panels) + 2.8, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False).ravel())
    groups = list(tab.groupby(others, sort=False)) if others else [((), tab)]
    for i, (name, g) in enumerate(groups):
        stats = g.groupby(x)[["y", "lag"]].agg(["mean", "min", "max"])
        label = config_label(dict(zip(others, name if isinstance(name, tuple) else (name,))), others)
        for ax, (col, _) in zip(axes, panels):
            ax.plot(stats.index, stats[(col, "mean")], marker="o", ms=4, color=f"C{i % 10}", label=label)
            ax.fill_between(stats.index, stats[(col, "min")], stats[(col, "max")], color=f"C{i % 10}", alpha=0.15, lw=0)
    values = sorted(tab[x].unique())
    for ax, (_, ylabel) in zip(axes, panels):
        if len(values) > 2 and min(values) > 0 and max(values) / min(values) >= 20:
            ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    legend_outside(fig, handles, labels, title="mean over seeds (band: min-max)")
    fig.suptitle(f"{metric} at the end of each trial vs {x}", fontsize=10)
    return save(fig, out_path, formats)
