"""Figures of ``linear_dynamics`` sweeps (PNG + PDF, matplotlib's object API, no pyplot state).

Every function takes the results DataFrame of a sweep (``ablate.results.read_results``: one row per
trial and report, config leaves as columns under their dotted names) and an output path (its suffix
is replaced by .png and .pdf); it returns the files written.
  :func:`phase_portrait`    s_j vs p_j trajectories of each mode with the parabola s = p^2 / alpha_p and
                            the fixed points p*_- (saddle, basin boundary) and p*_+ (Figs. 3 and 5);
  :func:`commutator_decay`  ||[F, W_p]|| / (||F|| ||W_p||) over time, log axis (Theorem 3, Fig. 9);
  :func:`balance_decay`     Theorem 1's balance residual over time, log axis;
  :func:`collapse_map`      surviving modes over (eta, tau) with the bound eta = tau^2 / (4 (1 + sigma^2));
  :func:`plot_theory`       all of the above that the sweep's columns support, into one folder.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ablate.results import config_columns  # noqa: E402
from ablate.theory.config import DynamicsConfig, basin_boundary, collapse_bound  # noqa: E402

FORMATS = ("png", "pdf")
FLOOR = 1e-17  # plotted in place of exact zeros on log axes (float64 round-off is ~1e-16)
CONFIG_KEYS = [k for k in config_columns(DynamicsConfig) if k not in ("kind", "seed")]
# keys preferred for colour / line style / panels, in this order, when they vary across trials
PREFERRED = ("predictor", "stop_gradient", "eta", "tau", "alpha_p", "target", "beta", "sigma2", "directpred_norm")


# ---------------------------------------------------------------- helpers
def _save(fig: Figure, out_path: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        p = out.with_suffix(f".{fmt}")
        fig.savefig(p, dpi=130, bbox_inches="tight")
        paths.append(p)
    return paths


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"] if "status" in df.columns else df


def varying_keys(df: pd.DataFrame) -> list[str]:
    """Config keys (dotted) with more than one value across the trials of ``df``, preferred ones first."""
    keys = [k for k in CONFIG_KEYS if k in df.columns and df[k].map(_hashable).nunique(dropna=False) > 1]
    return sorted(keys, key=lambda k: PREFERRED.index(k) if k in PREFERRED else len(PREFERRED))


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, (list, np.ndarray)) else v


def _seq(v: Any) -> list:
    """A list-valued cell as a list (Parquet gives numpy arrays, rows built in memory give lists or None)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    return list(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _label(row: pd.Series | dict, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={_fmt(row[k])}" for k in keys) or "all trials"


def _trials(df: pd.DataFrame) -> list[pd.DataFrame]:
    """Each trial's ok rows in time order, trials in order of first appearance."""
    ok = _ok(df)
    return [g.sort_values("step") for _, g in ok.groupby("trial_id", sort=False)] if len(ok) else []


def _first(trial: pd.DataFrame, key: str, default: Any = None) -> Any:
    return trial[key].iloc[0] if key in trial.columns else default


def _legend_outside(fig: Figure, handles: list, labels: list[str], title: str | None = None) -> None:
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False, title=title, title_fontsize=8)


# ---------------------------------------------------------------- phase portrait (Figs. 3, 5)
def _mode_paths(trial: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(p, s) arrays of shape (reports, modes): data-basis modes for init: modes, else F's eigenmodes."""
    fixed = _first(trial, "init", "random") == "modes"
    s_col, p_col = ("s_modes", "p_modes") if fixed else ("f_eigs", "wp_eigs")
    s = np.array([np.asarray(v, float) for v in trial[s_col]])
    p = np.array([np.asarray(v, float) for v in trial[p_col]])
    if fixed:  # only the modes the config started (others stay at 0)
        n = len(_seq(_first(trial, "s0"))) or s.shape[1]
        s, p = s[:, :n], p[:, :n]
    return p, s


def _fixed_points(trial: pd.DataFrame) -> tuple[float, float] | None:
    """(p*_-, p*_+) where Sec. 4's per-mode analysis holds (X = I, X' = sigma^2 I, trained W_p)."""
    if _first(trial, "predictor") not in ("linear", "symmetric"):
        return None
    if any(_seq(_first(trial, k)) for k in ("x_eigs", "xp_eigs")) or _first(trial, "x_scale", 1.0) != 1.0:
        return None
    tau = float(_first(trial, "tau", 1.0)) if _first(trial, "target", "simsiam") == "simsiam" else 1.0  # EMA: W_a -> W
    return basin_boundary(tau, float(_first(trial, "sigma2", 0.0)), float(_first(trial, "eta", 0.0)))


def phase_portrait(df: pd.DataFrame, out_path: str | Path, *, max_panels: int = 6,
                   formats: Sequence[str] = FORMATS) -> list[Path]:
    """s_j (eigenvalue of F) vs p_j (eigenvalue of W_p) over time, one panel per configuration (first
    seed), one line per mode, with the invariant parabola s = p^2 / alpha_p and the fixed points."""
    trials = _trials(df)
    if not trials:
        return []
    keys = varying_keys(pd.concat([t.iloc[:1] for t in trials]))
    keys_no_seed = [k for k in keys if k != "seed"]
    panels: dict[str, pd.DataFrame] = {}
    for t in trials:
        panels.setdefault(_label(t.iloc[0], keys_no_seed), t)
    items = list(panels.items())
    if len(items) > max_panels:  # spread the shown panels over the sweep's configurations
        items = [items[int(round(i))] for i in np.linspace(0, len(items) - 1, max_panels)]
    ncol = min(3, len(items))
    nrow = math.ceil(len(items) / ncol)
    fig = Figure(figsize=(4.3 * ncol + 2.6, 3.9 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False).ravel())
    cmap = colormaps["viridis"]
    for ax, (label, trial) in zip(axes, items):
        p, s = _mode_paths(trial)
        alpha_p = float(_first(trial, "alpha_p", 1.0))
        norm = Normalize(0, max(p.shape[1] - 1, 1))
        for j in range(p.shape[1]):
            c = cmap(norm(j))
            ax.plot(p[:, j], s[:, j], color=c, lw=1.4)
            ax.plot(p[0, j], s[0, j], "o", mfc="white", mec=c, ms=5)
            ax.plot(p[-1, j], s[-1, j], "o", color=c, ms=5)
        lo, hi = min(0.0, float(np.nanmin(p))), float(np.nanmax(p)) * 1.08 + 1e-9
        grid = np.linspace(lo, hi, 200)
        ax.plot(grid, grid ** 2 / alpha_p, "k--", lw=1)
        fp = _fixed_points(trial)
        if fp is not None:
            for pstar, filled in zip(fp, (False, True)):
                ax.plot(pstar, pstar ** 2 / alpha_p, "*", ms=13, mec="crimson", mfc="crimson" if filled else "white", mew=1.3)
        ax.set_ylim(bottom=min(0.0, float(np.nanmin(s))) - 0.02 * float(np.nanmax(s)))
        ax.set_xlabel("$p_j$ (eigenvalue of $W_p$)")
        ax.set_ylabel("$s_j$ (eigenvalue of $F = W X W^T$)")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[len(items):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=cmap(0.5), lw=1.4), Line2D([], [], ls="", marker="o", mfc="white", mec="0.3"),
               Line2D([], [], ls="", marker="o", color="0.3"), Line2D([], [], color="k", ls="--", lw=1),
               Line2D([], [], ls="", marker="*", ms=11, mec="crimson", mfc="white"),
               Line2D([], [], ls="", marker="*", ms=11, color="crimson")]
    labels = ["mode trajectory (colour: mode j)", "start", "end", "parabola $s = p^2/\\alpha_p$",
              "$p^*_-$ (saddle: basin boundary)", "$p^*_+$ (stable)"]
    _legend_outside(fig, handles, labels)
    fig.suptitle("Per-mode dynamics: trajectories approach the parabola when $\\eta > 0$ (Figs. 3, 5)", fontsize=10)
    return _save(fig, out_path, formats)


# ---------------------------------------------------------------- decays over time (Theorems 1, 3)
def _facets(firsts: pd.DataFrame, keys: list[str], max_panels: int = 4) -> list[str]:
    """Panel keys: predictor and stop_gradient (the arms of Theorem 2) while they give <= max_panels panels."""
    facet = [k for k in ("predictor", "stop_gradient") if k in keys]
    while facet and len(firsts[facet].drop_duplicates()) > max_panels:
        facet.pop()
    return facet


def metric_decay(df: pd.DataFrame, out_path: str | Path, metric: str, ylabel: str, title: str, *,
                 log: bool = True, facet: Sequence[str] | None = None, hue: str | None = None,
                 style: str | None = None, formats: Sequence[str] = FORMATS) -> list[Path]:
    """``metric`` vs t (log axis unless ``log=False``), one line per trial. Panels by the ``facet`` keys,
    colour by ``hue``, line style by ``style``; by default predictor / stop_gradient make the panels and
    the varying keys with the most values the colour and the style. Keys left over (and seeds) share a
    line's look; the legend says which."""
    trials = [t for t in _trials(df) if metric in t.columns and t[metric].notna().any()]
    if not trials:
        return []
    firsts = pd.concat([t.iloc[:1] for t in trials])
    keys = [k for k in varying_keys(firsts) if k != "seed"]
    facet = list(facet) if facet is not None else _facets(firsts, keys)
    rest = sorted([k for k in keys if k not in facet], key=lambda k: -firsts[k].map(_hashable).nunique())
    if hue is None and style is None:
        hue, style = (rest + [None, None])[:2]
        if style is not None and firsts[style].nunique() > 4:
            style = None
    hidden = [k for k in keys if k not in (*facet, hue, style)]
    panel_ids = list(dict.fromkeys(_label(r, facet) for _, r in firsts.iterrows())) if facet else [""]
    hues = list(dict.fromkeys(firsts[hue])) if hue else [None]
    styles = list(dict.fromkeys(firsts[style])) if style else [None]
    numeric_hue = hue is not None and pd.api.types.is_numeric_dtype(firsts[hue]) and not pd.api.types.is_bool_dtype(firsts[hue])
    cmap = colormaps["viridis" if numeric_hue and len(hues) > 3 else "tab10"]
    colour = {v: cmap(0.9 * i / max(len(hues) - 1, 1)) if cmap.name == "viridis" else cmap(i % 10) for i, v in enumerate(hues)}
    dashes = ["-", "--", ":", "-."]
    ncol = min(len(panel_ids), 4)
    nrow = math.ceil(len(panel_ids) / ncol)
    fig = Figure(figsize=(4.4 * ncol + 2.6, 3.6 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False, sharey=True).ravel())
    for t in trials:
        first = t.iloc[0]
        ax = axes[panel_ids.index(_label(first, facet)) if facet else 0]
        y = t[metric].astype(float).to_numpy()
        ax.plot(t["t"], np.maximum(y, FLOOR) if log else y, color=colour[first[hue]] if hue else "C0",
                ls=dashes[styles.index(first[style]) % len(dashes)] if style else "-", lw=1.3, alpha=0.9)
    for ax, pid in zip(axes, panel_ids):
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("time t (flow units, steps x dt)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, lw=0.5)
        ax.set_title(pid, fontsize=9)
    for ax in axes[len(panel_ids):]:
        ax.set_visible(False)
    handles, labels = [], []
    if hue:
        handles += [Line2D([], [], color=colour[v], lw=1.6) for v in hues]
        labels += [f"{hue}={_fmt(v)}" for v in hues]
    if style:
        handles += [Line2D([], [], color="0.3", ls=dashes[i % len(dashes)], lw=1.3) for i in range(len(styles))]
        labels += [f"{style}={_fmt(v)}" for v in styles]
    note = "one line per trial" + (f"; not told apart: {', '.join(hidden)}, seed" if hidden else "; seeds share a look")
    if handles:
        _legend_outside(fig, handles, labels, title=note)
    fig.suptitle(title, fontsize=10)
    return _save(fig, out_path, formats)


def commutator_decay(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Theorem 3 / Fig. 9: the normalised commutator ||[F, W_p]||_F / (||F|| ||W_p||) over time, log y."""
    return metric_decay(df, out_path, "commutator", "$\\|[F, W_p]\\|_F \\,/\\, (\\|F\\|_F \\|W_p\\|_F)$",
                        "Eigenspace alignment: the commutator decays (Theorem 3); ~1e-16 is float64 round-off",
                        formats=formats)


def balance_decay(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Theorem 1: relative deviation of W W^T - W_p^T W_p / alpha_p from e^{-2 eta t} times its start."""
    return metric_decay(df, out_path, "balance_residual", "balance residual (relative)",
                        "Theorem 1: $WW^T - W_p^TW_p/\\alpha_p = e^{-2\\eta t}C$ (residual = integration error)",
                        formats=formats)


# ---------------------------------------------------------------- collapse map (threshold)
def collapse_map(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Surviving fraction of modes at the end of each trial over (eta, tau), mean over seeds, one panel
    per sigma^2, with the bound eta = tau^2 / (4 (1 + sigma^2)) above which every mode collapses."""
    ok = _ok(df)
    final = ok[ok["is_final"].fillna(False).astype(bool)] if len(ok) else ok
    if final.empty or "eta" not in final.columns or "tau" not in final.columns:
        return []
    final = final.assign(frac=[r.n_alive / _n_modes(r) for r in final.itertuples()])
    sig = sorted(final["sigma2"].unique()) if "sigma2" in final.columns else [0.0]
    fig = Figure(figsize=(4.8 * len(sig) + 2.6, 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(sig), squeeze=False).ravel())
    cmap, norm = colormaps["viridis"], Normalize(0, 1)
    for ax, s2 in zip(axes, sig):
        part = final[final["sigma2"] == s2] if "sigma2" in final.columns else final
        cells = part.groupby(["eta", "tau"]).agg(frac=("frac", "mean"), alive=("n_alive", "mean"),
                                                 collapsed=("collapsed", "all")).reset_index()
        ax.scatter(cells["eta"], cells["tau"], c=cells["frac"], cmap=cmap, norm=norm, marker="s", s=170,
                   edgecolors="0.4", linewidths=0.5)
        dead = cells[cells["collapsed"]]
        ax.scatter(dead["eta"], dead["tau"], marker="x", color="crimson", s=45, linewidths=1.4)
        taus = np.linspace(0.0, float(cells["tau"].max()) * 1.05, 200)
        ax.plot([collapse_bound(t, float(s2)) for t in taus], taus, color="crimson", lw=1.6)
        ax.set_xlim(0, float(cells["eta"].max()) * 1.08)
        ax.set_ylim(float(cells["tau"].min()) * 0.9, float(cells["tau"].max()) * 1.05)
        ax.set_xlabel("weight decay $\\eta$")
        ax.set_ylabel("target ratio $\\tau$ ($W_a = \\tau W$)")
        ax.set_title(f"$\\sigma^2$ = {_fmt(float(s2))}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm, cmap), ax=list(axes), label="fraction of modes surviving (mean over seeds)",
                 location="right")
    handles = [Line2D([], [], color="crimson", lw=1.6), Line2D([], [], ls="", marker="x", color="crimson")]
    fig.legend(handles, ["bound $\\eta = \\tau^2/(4(1+\\sigma^2))$", "every mode collapsed"], loc="outside lower center",
               ncols=2, fontsize=8, frameon=False)
    fig.suptitle("Collapse map: above the bound every mode collapses (Sec. 4)", fontsize=10)
    return _save(fig, out_path, formats)


def _n_modes(row: Any) -> int:
    s0 = _seq(getattr(row, "s0", None))
    if getattr(row, "init", "random") == "modes" and s0:
        return len(s0)
    return int(min(row.n1, row.n2))


# ---------------------------------------------------------------- more curves and a summary
def norm_decay(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Theorem 2: ||W||_F over time, log y (-> 0 without stop-gradient or without a predictor)."""
    return metric_decay(df, out_path, "w_norm", "$\\|W\\|_F$",
                        "Collapse: without stop-gradient or predictor $W \\to 0$ (Theorem 2)", formats=formats)


def parabola_decay(df: pd.DataFrame, out_path: str | Path, *, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Sec. 4's invariant: max_j |s_j - p_j^2 / alpha_p| over time, log y (e^{-2 eta t} when eta > 0)."""
    return metric_decay(df, out_path, "parabola_gap", "$\\max_j |s_j - p_j^2/\\alpha_p|$",
                        "Distance to the parabola decays as $e^{-2\\eta t}$ (Figs. 3, 5)", formats=formats)


def final_summary(df: pd.DataFrame, out_path: str | Path, metric: str, x: str | None = None, *,
                  formats: Sequence[str] = FORMATS) -> list[Path]:
    """Final ``metric`` vs the config key ``x`` (default: the last numeric varying key), one line per
    combination of the other varying keys, mean over seeds with a min-max band. With an EMA target a
    second panel shows min over time of tau_eff = <W_a, W> / ||W||^2 (how far W_a lags W)."""
    trials = _trials(df)
    if not trials or metric not in df.columns:
        return []
    firsts = pd.concat([t.iloc[:1] for t in trials])
    keys = [k for k in varying_keys(firsts) if k != "seed"]
    numeric = [k for k in keys if pd.api.types.is_numeric_dtype(firsts[k]) and not pd.api.types.is_bool_dtype(firsts[k])]
    x = x or (numeric[-1] if numeric else None)
    if x is None:
        return []
    others = [k for k in keys if k != x]
    recs = [{**{k: t.iloc[0][k] for k in (x, *others)}, "y": float(t[metric].iloc[-1]),
             "lag": float(t["tau_eff"].min()) if "tau_eff" in t.columns and t["tau_eff"].notna().any() else np.nan}
            for t in trials if bool(t["is_final"].iloc[-1])]
    tab = pd.DataFrame(recs)
    panels = [("y", f"final {metric}")]
    if "target" in tab.columns and (firsts.get("target") == "ema").any():
        panels.append(("lag", "$\\min_t\\,\\tau_{eff}$ = min $\\langle W_a, W\\rangle/\\|W\\|^2$"))
    fig = Figure(figsize=(4.6 * len(panels) + 2.8, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False).ravel())
    groups = list(tab.groupby(others, sort=False)) if others else [((), tab)]
    for i, (name, g) in enumerate(groups):
        stats = g.groupby(x)[["y", "lag"]].agg(["mean", "min", "max"])
        label = _label(dict(zip(others, name if isinstance(name, tuple) else (name,))), others)
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
    _legend_outside(fig, handles, labels, title="mean over seeds (band: min-max)")
    fig.suptitle(f"{metric} at the end of each trial vs {x}", fontsize=10)
    return _save(fig, out_path, formats)


# ---------------------------------------------------------------- everything that applies
FIGURES_FOR_METRIC: dict[str, tuple[str, ...]] = {
    "w_norm": ("norms",), "wp_norm": ("norms",), "f_max": ("norms",), "collapsed": ("norms",),
    "balance_residual": ("balance",), "balance_log10": ("balance",),
    "commutator": ("commutator",), "commutator_log10": ("commutator",), "commutator_abs": ("commutator",),
    "eig_align": ("commutator",), "parabola_gap": ("phase_portrait", "parabola"),
    "n_alive": ("phase_portrait", "collapse_map", "summary"), "tau_eff": ("summary",),
}


def plot_theory(df: pd.DataFrame, out_dir: str | Path, metric: str | None = None, x: str | None = None, *,
                formats: Sequence[str] = FORMATS) -> list[Path]:
    """The figures for a sweep whose table shows ``metric`` (``FIGURES_FOR_METRIC``; default: all
    that apply) into ``out_dir``; ``x`` is the summary's x axis (default: the last varying number).
    A figure whose inputs are missing (e.g. a phase portrait without ``init: modes`` trials) is skipped."""
    out_dir = Path(out_dir)
    ok = _ok(df)
    if ok.empty:
        return []
    wanted = FIGURES_FOR_METRIC.get(metric or "", ("phase_portrait", "collapse_map", "norms", "commutator", "balance"))
    modes = ok[ok["init"] == "modes"] if "init" in ok.columns else ok.iloc[:0]
    keys = varying_keys(ok.drop_duplicates("trial_id"))
    makers = {
        "phase_portrait": lambda: phase_portrait(modes, out_dir / "phase_portrait", formats=formats) if len(modes) else [],
        "collapse_map": lambda: collapse_map(ok, out_dir / "collapse_map", formats=formats)
        if "eta" in keys and "tau" in keys else [],
        "norms": lambda: norm_decay(ok, out_dir / "w_norm", formats=formats),
        "commutator": lambda: commutator_decay(ok, out_dir / "commutator", formats=formats),
        "balance": lambda: balance_decay(ok, out_dir / "balance", formats=formats),
        "parabola": lambda: parabola_decay(ok, out_dir / "parabola_gap", formats=formats),
        "summary": lambda: final_summary(ok, out_dir / f"{metric or 'n_alive'}_summary", metric or "n_alive", x,
                                         formats=formats) if len(modes) < len(ok) else [],
    }
    return [p for name in wanted for p in makers[name]()]
