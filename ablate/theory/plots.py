"""Figures of ``linear_dynamics`` sweeps (PNG + PDF, matplotlib's object API, no pyplot state).

Every function takes the results DataFrame of a sweep (``ablate.results.read_results``: one row per
trial and report, config leaves as columns under their dotted names) and an output path (its suffix
is replaced by .png and .pdf); it returns the files written.
  :func:`phase_portrait`    s_j vs p_j trajectories of each mode with the parabola s = p^2 / alpha_p and
                            the fixed points p*_- (saddle, basin boundary) and p*_+ (Figs. 3 and 5);
  :func:`collapse_map`      surviving modes over (eta, tau) with the bound eta = tau^2 / (4 (1 + sigma^2));
  :func:`commutator_decay`, :func:`balance_decay`, :func:`norm_decay`, :func:`parabola_decay`,
  :func:`final_summary`     curves over time and final values (:mod:`ablate.theory.curves`);
  :func:`plot_theory`       the figures for a sweep's table metric, into one folder (``ablate plot``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ablate.results.io import final_rows
from ablate.results.location import Location
from ablate.theory.curves import (
    balance_decay,
    commutator_decay,
    final_summary,
    metric_decay,
    norm_decay,
    parabola_decay,
)
from ablate.theory.dynamics import basin_boundary, collapse_bound
from ablate.theory.plotkit import (
    FIGURE_FORMATS,
    as_list,
    config_label,
    config_value,
    legend_outside,
    ok_rows,
    save,
    show_value,
    trial_frames,
    varying_keys,
)

__all__ = [
    "FIGURES_FOR_METRIC",
    "balance_decay",
    "collapse_map",
    "commutator_decay",
    "final_summary",
    "metric_decay",
    "norm_decay",
    "parabola_decay",
    "phase_portrait",
    "plot_theory",
]


# ---------------------------------------------------------------- phase portrait (Figs. 3, 5)
def _mode_paths(trial: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(p, s) arrays of shape (reports, modes): data-basis modes for init: modes, else F's eigenmodes."""
    fixed = config_value(trial, "init", "random") == "modes"
    s_col, p_col = ("s_modes", "p_modes") if fixed else ("f_eigs", "wp_eigs")
    s = np.array([np.asarray(v, float) for v in trial[s_col]])
    p = np.array([np.asarray(v, float) for v in trial[p_col]])
    if fixed:  # only the modes the config started (others stay at 0)
        n = len(as_list(config_value(trial, "s0"))) or s.shape[1]
        s, p = s[:, :n], p[:, :n]
    return p, s


def _fixed_points(trial: pd.DataFrame) -> tuple[float, float] | None:
    """(p*_-, p*_+) where Sec. 4's per-mode analysis holds (X = I, X' = sigma^2 I, trained W_p)."""
    if config_value(trial, "predictor") not in ("linear", "symmetric"):
        return None
    if (
        any(as_list(config_value(trial, k)) for k in ("x_eigs", "xp_eigs"))
        or config_value(trial, "x_scale", 1.0) != 1.0
    ):
        return None
    tau = (
        float(config_value(trial, "tau", 1.0)) if config_value(trial, "target", "simsiam") == "simsiam" else 1.0
    )  # EMA: W_a -> W
    return basin_boundary(tau, float(config_value(trial, "sigma2", 0.0)), float(config_value(trial, "eta", 0.0)))


def phase_portrait(
    df: pd.DataFrame, out_path: str | Path, *, max_panels: int = 6, formats: Sequence[str] = FIGURE_FORMATS
) -> list[Path]:
    """s_j (eigenvalue of F) vs p_j (eigenvalue of W_p) over time, one panel per configuration (first
    seed), one line per mode, with the invariant parabola s = p^2 / alpha_p and the fixed points."""
    trials = trial_frames(df)
    if not trials:
        return []
    keys = varying_keys(pd.concat([t.iloc[:1] for t in trials]))
    keys_no_seed = [k for k in keys if k != "seed"]
    panels: dict[str, pd.DataFrame] = {}
    for t in trials:
        panels.setdefault(config_label(t.iloc[0], keys_no_seed), t)
    items = list(panels.items())
    if len(items) > max_panels:  # spread the shown panels over the sweep's configurations
        items = [items[int(round(i))] for i in np.linspace(0, len(items) - 1, max_panels)]
    ncol = min(3, len(items))
    nrow = math.ceil(len(items) / ncol)
    fig = Figure(figsize=(4.3 * ncol + 2.6, 3.9 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False).ravel())
    for ax, (label, trial) in zip(axes, items):
        _portrait_panel(ax, trial, label)
    for ax in axes[len(items) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=colormaps["viridis"](0.5), lw=1.4),
        Line2D([], [], ls="", marker="o", mfc="white", mec="0.3"),
        Line2D([], [], ls="", marker="o", color="0.3"),
        Line2D([], [], color="k", ls="--", lw=1),
        Line2D([], [], ls="", marker="*", ms=11, mec="crimson", mfc="white"),
        Line2D([], [], ls="", marker="*", ms=11, color="crimson"),
    ]
    labels = [
        "mode trajectory (colour: mode j)",
        "start",
        "end",
        "parabola $s = p^2/\\alpha_p$",
        "$p^*_-$ (saddle: basin boundary)",
        "$p^*_+$ (stable)",
    ]
    legend_outside(fig, handles, labels)
    fig.suptitle("Per-mode dynamics: trajectories approach the parabola when $\\eta > 0$ (Figs. 3, 5)", fontsize=10)
    return save(fig, out_path, formats)


def _portrait_panel(ax: Any, trial: pd.DataFrame, label: str) -> None:
    """One configuration: each mode's (p_j, s_j) path, start and end, the parabola, the fixed points."""
    cmap = colormaps["viridis"]
    p, s = _mode_paths(trial)
    alpha_p = float(config_value(trial, "alpha_p", 1.0))
    norm = Normalize(0, max(p.shape[1] - 1, 1))
    for j in range(p.shape[1]):
        c = cmap(norm(j))
        ax.plot(p[:, j], s[:, j], color=c, lw=1.4)
        ax.plot(p[0, j], s[0, j], "o", mfc="white", mec=c, ms=5)
        ax.plot(p[-1, j], s[-1, j], "o", color=c, ms=5)
    lo, hi = min(0.0, float(np.nanmin(p))), float(np.nanmax(p)) * 1.08 + 1e-9
    grid = np.linspace(lo, hi, 200)
    ax.plot(grid, grid**2 / alpha_p, "k--", lw=1)
    fp = _fixed_points(trial)
    for pstar, filled in zip(fp or (), (False, True)):
        ax.plot(pstar, pstar**2 / alpha_p, "*", ms=13, mec="crimson", mfc="crimson" if filled else "white", mew=1.3)
    ax.set_ylim(bottom=min(0.0, float(np.nanmin(s))) - 0.02 * float(np.nanmax(s)))
    ax.set_xlabel("$p_j$ (eigenvalue of $W_p$)")
    ax.set_ylabel("$s_j$ (eigenvalue of $F = W X W^T$)")
    ax.set_title(label, fontsize=9)
    ax.grid(alpha=0.3)


# ---------------------------------------------------------------- collapse map (threshold)
def collapse_map(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FIGURE_FORMATS) -> list[Path]:
    """Surviving fraction of modes at the end of each trial over (eta, tau), mean over seeds, one panel
    per sigma^2, with the bound eta = tau^2 / (4 (1 + sigma^2)) above which every mode collapses."""
    ok = ok_rows(df)
    final = final_rows(ok)
    if final.empty or "eta" not in final.columns or "tau" not in final.columns:
        return []
    final = final.assign(frac=[r.n_alive / _n_modes(r) for r in final.itertuples()])
    sig = sorted(final["sigma2"].unique()) if "sigma2" in final.columns else [0.0]
    fig = Figure(figsize=(4.8 * len(sig) + 2.6, 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(sig), squeeze=False).ravel())
    cmap, norm = colormaps["viridis"], Normalize(0, 1)
    for ax, s2 in zip(axes, sig):
        part = final[final["sigma2"] == s2] if "sigma2" in final.columns else final
        cells = (
            part.groupby(["eta", "tau"])
            .agg(frac=("frac", "mean"), alive=("n_alive", "mean"), collapsed=("collapsed", "all"))
            .reset_index()
        )
        ax.scatter(
            cells["eta"],
            cells["tau"],
            c=cells["frac"],
            cmap=cmap,
            norm=norm,
            marker="s",
            s=170,
            edgecolors="0.4",
            linewidths=0.5,
        )
        dead = cells[cells["collapsed"]]
        ax.scatter(dead["eta"], dead["tau"], marker="x", color="crimson", s=45, linewidths=1.4)
        taus = np.linspace(0.0, float(cells["tau"].max()) * 1.05, 200)
        ax.plot([collapse_bound(t, float(s2)) for t in taus], taus, color="crimson", lw=1.6)
        ax.set_xlim(0, float(cells["eta"].max()) * 1.08)
        ax.set_ylim(float(cells["tau"].min()) * 0.9, float(cells["tau"].max()) * 1.05)
        ax.set_xlabel("weight decay $\\eta$")
        ax.set_ylabel("target ratio $\\tau$ ($W_a = \\tau W$)")
        ax.set_title(f"$\\sigma^2$ = {show_value(float(s2))}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.colorbar(
        ScalarMappable(norm, cmap),
        ax=list(axes),
        label="fraction of modes surviving (mean over seeds)",
        location="right",
    )
    handles = [Line2D([], [], color="crimson", lw=1.6), Line2D([], [], ls="", marker="x", color="crimson")]
    fig.legend(
        handles,
        ["bound $\\eta = \\tau^2/(4(1+\\sigma^2))$", "every mode collapsed"],
        loc="outside lower center",
        ncols=2,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle("Collapse map: above the bound every mode collapses (Sec. 4)", fontsize=10)
    return save(fig, out_path, formats)


def _n_modes(row: Any) -> int:
    s0 = as_list(getattr(row, "s0", None))
    if getattr(row, "init", "random") == "modes" and s0:
        return len(s0)
    return int(min(row.n1, row.n2))


# ---------------------------------------------------------------- everything that applies
FIGURES_FOR_METRIC: dict[str, tuple[str, ...]] = {
    "w_norm": ("norms",),
    "wp_norm": ("norms",),
    "f_max": ("norms",),
    "collapsed": ("norms",),
    "balance_residual": ("balance",),
    "balance_log10": ("balance",),
    "commutator": ("commutator",),
    "commutator_log10": ("commutator",),
    "commutator_abs": ("commutator",),
    "eig_align": ("commutator",),
    "parabola_gap": ("phase_portrait", "parabola"),
    "n_alive": ("phase_portrait", "collapse_map", "summary"),
    "tau_eff": ("summary",),
}


def plot_theory(
    df: pd.DataFrame,
    out_dir: str | Path | Location,
    metric: str | None = None,
    x: str | None = None,
    *,
    formats: Sequence[str] = FIGURE_FORMATS,
) -> list[Path | str]:
    """The figures for a sweep whose table shows ``metric`` (``FIGURES_FOR_METRIC``; default: all
    that apply) into ``out_dir``; ``x`` is the summary's x axis (default: the last varying number).
    A figure whose inputs are missing (e.g. a phase portrait without ``init: modes`` trials) is skipped."""
    out_dir = Location.parse(out_dir)
    ok = ok_rows(df)
    if ok.empty:
        return []
    wanted = FIGURES_FOR_METRIC.get(metric or "", ("phase_portrait", "collapse_map", "norms", "commutator", "balance"))
    modes = ok[ok["init"] == "modes"] if "init" in ok.columns else ok.iloc[:0]
    keys = varying_keys(ok.drop_duplicates("trial_id"))
    makers = {
        "phase_portrait": lambda: (
            phase_portrait(modes, out_dir / "phase_portrait", formats=formats) if len(modes) else []
        ),
        "collapse_map": lambda: (
            collapse_map(ok, out_dir / "collapse_map", formats=formats) if "eta" in keys and "tau" in keys else []
        ),
        "norms": lambda: norm_decay(ok, out_dir / "w_norm", formats=formats),
        "commutator": lambda: commutator_decay(ok, out_dir / "commutator", formats=formats),
        "balance": lambda: balance_decay(ok, out_dir / "balance", formats=formats),
        "parabola": lambda: parabola_decay(ok, out_dir / "parabola_gap", formats=formats),
        "summary": lambda: (
            final_summary(ok, out_dir / f"{metric or 'n_alive'}_summary", metric or "n_alive", x, formats=formats)
            if len(modes) < len(ok)
            else []
        ),
    }
    return [p for name in wanted for p in makers[name]()]
