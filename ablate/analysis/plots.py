"""Figures of a sweep (``ablate plot``): PNG and PDF with matplotlib, one arm per line.

An arm is one combination of the table's row and column values (the seeds of a table cell).
Figures:
  ``accuracy``  linear-probe top-1 (the table's probe metric, else the paper's best-of-probe-epochs) and
                kNN top-1 vs epoch, in %: mean over seeds, min-max band;
  ``loss``      the training loss (2 - 2cos per direction, summed) vs epoch;
  ``z_std``     std of the l2-normalised projections x sqrt(d) vs epoch, log scale: ~1 healthy,
                below the dashed 0.1 line collapsed (Theorem 2; Table 3's 36.62 cell);
  ``eigen``     eigen-alignment of W_p with F (mean over F's eigenvectors u_j of cos(W_p u_j, u_j))
                and the normalised commutator ||[F, W_p]|| vs epoch, for linear-type predictors
                (Fig. 2 / Theorem 3: alignment -> 1, commutator -> 0);
  ``spectra_<arm>``  eigenvalues s_j of F and p_j of W_p over training (Fig. 2): the leading
                :data:`LEADING` as labelled lines, the rest as one grey min-max band.
File names are :func:`slug` of the arm's label: ``predictor=directpred, BYOL (EMA 0.996)`` ->
``spectra_predictor-directpred_BYOL_EMA_0.996`` (no ``=``, which shells and URLs treat specially).
Matplotlib's object API (``Figure``) is used, never pyplot: no global state, no display needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ablate.analysis.paper import canon
from ablate.analysis.tables import EPOCH, axis_label, order_tuples
from ablate.errors import UserError
from ablate.kinds.registry import kinds_in
from ablate.results.io import final_rows
from ablate.results.location import Location
from ablate.results.schema import COLLAPSE_Z_STD, COLLAPSED_STOPPED
from ablate.sweep.table_block import TableSpec
from ablate.theory.plotkit import FIGURE_FORMATS, save

METRIC_NAMES = {
    "probe_top1_best": "linear probe top-1, best of probe epochs (%)",
    "probe_top1": "linear probe top-1, final probe epoch (%)",
    "probe_top5": "linear probe top-5 (%)",
    "knn_top1": "kNN top-1 (%)",
}
PERCENT = 100.0  # accuracies are stored as fractions and plotted in %, whatever the table's scale
DEFAULT_PROBE = "probe_top1_best"  # the paper's protocol: the probe curve when the table shows no probe metric
LEADING = 8  # eigen-directions drawn one by one in the spectra figures; the rest share a band


def accuracy_metrics(spec: TableSpec) -> list[str]:
    """The accuracy figure's panels: the table's probe metric (or the paper's best-of-probe-epochs), then kNN."""
    probe = spec.metric if spec.metric.startswith("probe_") and spec.metric in METRIC_NAMES else DEFAULT_PROBE
    return [probe, "knn_top1"]


def arm_keys(spec: TableSpec) -> list[str]:
    return [k for k in (*spec.rows, *spec.cols) if k != EPOCH]


@dataclass(frozen=True)
class Arm:
    label: str
    row: str  # label of the table row (colour)
    col: str  # label of the table column (line style)
    rows: pd.DataFrame = field(repr=False)


def arms(df: pd.DataFrame, spec: TableSpec, expected: Sequence[Mapping[str, Any]] | None = None) -> list[Arm]:
    """The sweep's arms in table order (rows first, then columns), each with its results rows."""
    keys = arm_keys(spec)
    if df.empty:
        return []
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise UserError(f"table: {missing[0]!r} is not a column of the results; use a dotted config key")
    tup = df[keys].map(canon).apply(tuple, axis=1) if keys else pd.Series([()] * len(df), index=df.index)
    seen = [tuple(canon(c.get(k)) for k in keys) for c in expected or []]
    out = []
    nr = len([k for k in spec.rows if k != EPOCH])
    for t in order_tuples(tup.unique().tolist() if keys else [()], seen, len(keys)):
        rows = df[tup == t] if keys else df
        if not rows.empty:
            row, col = axis_label(keys[:nr], t[:nr], spec.labels), axis_label(keys[nr:], t[nr:], spec.labels)
            out.append(Arm(axis_label(keys, t, spec.labels) or "all", row, col, rows))
    return out


LINESTYLES = ["-", "--", ":", "-."]


def _styles(groups: list[Arm]) -> list[tuple[Any, str]]:
    """Colour by table row and line style by table column when that is unambiguous, else colours only."""
    rows, cols = list(dict.fromkeys(a.row for a in groups)), list(dict.fromkeys(a.col for a in groups))
    if 1 < len(cols) <= len(LINESTYLES) and len(rows) <= 10:
        cmap = colormaps["tab10"]
        return [(cmap(rows.index(a.row)), LINESTYLES[cols.index(a.col)]) for a in groups]
    cmap = colormaps["tab10" if len(groups) <= 10 else "tab20"]
    return [(cmap(i % cmap.N), "-") for i in range(len(groups))]


def _log_axis(ax: Any) -> None:
    """Log y with plain tick labels at 1-2-5 steps (readable, unlike 6x10^-1 minor labels)."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0,) if hi > 200 * lo else (1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _curve(rows: pd.DataFrame, col: str, scale: float = 1.0) -> pd.DataFrame:
    """Mean / min / max over seeds of ``col`` per epoch (ok rows with a value)."""
    ok = rows[(rows.status == "ok") & rows[col].notna()] if col in rows.columns else rows.iloc[:0]
    if ok.empty:
        return pd.DataFrame(columns=["mean", "min", "max", "n"])
    g = (ok[col].astype(float) * scale).groupby(ok[EPOCH])
    return pd.DataFrame({"mean": g.mean(), "min": g.min(), "max": g.max(), "n": g.count()}).sort_index()


def _suffix(rows: pd.DataFrame) -> str:
    final = final_rows(rows)  # a resumed trial that wrote two final rows counts once
    bad = {s: int((final.status == s).sum()) for s in ("diverged", "failed", COLLAPSED_STOPPED)}
    seeds = rows.trial_id.nunique()
    notes = [f"{n} {'stopped at collapse' if s == COLLAPSED_STOPPED else s}" for s, n in bad.items() if n]
    return f" ({seeds} seed{'s' if seeds != 1 else ''}" + (", " + ", ".join(notes) if notes else "") + ")"


def _lines_figure(groups: list[Arm], panels: list[tuple[str, str, float, bool]], title: str) -> Figure | None:
    """One panel per (column, y label, scale, log-y); one line + min-max band per arm; legend outside."""
    panels = [p for p in panels if any(not _curve(a.rows, p[0]).empty for a in groups)]
    if not panels:
        return None
    fig = Figure(figsize=(5.2 * len(panels) + 3.2, 4.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    styles = _styles(groups)
    for ax, (col, ylabel, scale, logy) in zip(axes, panels):
        for arm, (color, ls) in zip(groups, styles):
            c = _curve(arm.rows, col, scale)
            if c.empty:
                continue
            ax.plot(
                c.index,
                c["mean"],
                color=color,
                ls=ls,
                lw=1.6,
                marker="o" if len(c) < 12 else None,
                ms=3,
                label=arm.label + _suffix(arm.rows),
            )
            if (c["n"] > 1).any():
                ax.fill_between(c.index, c["min"], c["max"], color=color, alpha=0.18, lw=0)
        ax.set_xlabel("pretraining epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if logy:
            _log_axis(ax)
        if col == "z_std":
            ax.axhline(COLLAPSE_Z_STD, color="k", ls="--", lw=1)
            ax.text(
                ax.get_xlim()[0], COLLAPSE_Z_STD, f" collapse threshold ({COLLAPSE_Z_STD:g})", va="bottom", fontsize=8
            )
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # arms that only have data in a later panel
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(
        handles,
        labels,
        loc="outside right upper",
        fontsize=8,
        title="arm (mean, band: min-max over seeds)",
        title_fontsize=8,
        frameon=False,
    )
    fig.suptitle(title, fontsize=10)
    return fig


def _spectra_means(ok: pd.DataFrame, col: str, epochs: list) -> np.ndarray:
    """(epochs, d): the list column ``col`` averaged over seeds at each epoch."""
    per_epoch = [
        [np.asarray(v, float) for v in ok.loc[ok[EPOCH] == e, col] if v is not None and len(v)] for e in epochs
    ]
    return np.array([np.mean(np.stack(vs), axis=0) for vs in per_epoch])


def _spectra_panel(ax: Any, epochs: list, vals: np.ndarray, ylabel: str, logy: bool) -> None:
    """The leading :data:`LEADING` eigen-directions as labelled lines, the rest as one light min-max band
    (with d = 128 directions, one line each would be an unreadable colour band)."""
    d = vals.shape[1]
    k = min(LEADING, d)
    if d > k:
        rest, label = vals[:, k:], f"j = {k}..{d - 1} (min-max)"
        ax.fill_between(epochs, rest.min(axis=1), rest.max(axis=1), color="0.55", alpha=0.25, lw=0, label=label)
    cmap = colormaps["tab10"]
    for j in range(k):
        label = f"j = {j}" + (" (largest $s_j$)" if j == 0 else "")
        ax.plot(epochs, vals[:, j], color=cmap(j), lw=1.5, marker="o" if len(epochs) < 12 else None, ms=3, label=label)
    ax.set_xlabel("pretraining epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if logy and (vals > 0).all():
        _log_axis(ax)


def _spectra_figure(label: str, rows: pd.DataFrame, title: str) -> Figure | None:
    """Fig. 2 style: eigenvalues of F (left) and W_p (right) vs epoch, mean over seeds, the leading
    directions one line each (same colour for the same j in both panels)."""
    ok = rows[(rows.status == "ok")]
    ok = ok[ok["f_eigs"].map(lambda v: v is not None and len(v) > 0)] if "f_eigs" in ok.columns else ok.iloc[:0]
    if ok.empty:
        return None
    epochs = sorted(ok[EPOCH].unique())
    panels = [("eigenvalues $s_j$ of $\\hat F$", _spectra_means(ok, "f_eigs", epochs), True)]
    if "wp_eigs" in ok.columns and ok["wp_eigs"].map(lambda v: v is not None and len(v) > 0).all():
        wp = _spectra_means(ok, "wp_eigs", epochs)
        panels.append(("eigenvalues $p_j$ of $W_p$ (in $\\hat F$'s eigenbasis order)", wp, False))
    fig = Figure(figsize=(5.0 * len(panels) + 2.4, 4.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (ylabel, vals, logy) in zip(axes, panels):
        _spectra_panel(ax, epochs, vals, ylabel, logy)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside right upper",
        fontsize=8,
        title="eigen-direction j\n(0 = largest $s_j$)",
        title_fontsize=8,
        frameon=False,
    )
    fig.suptitle(f"{title}\n{label}{_suffix(rows)}, mean over seeds", fontsize=10)
    return fig


def slug(text: str) -> str:
    """A file-name stem of ``text``: ``=`` becomes ``-``, every other run of characters but letters,
    digits, ``.``, ``+`` and ``-`` one ``_`` (``predictor=directpred, BYOL (EMA 0.996)`` ->
    ``predictor-directpred_BYOL_EMA_0.996``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text.replace("=", "-")).strip("_")[:80] or "all"


def spectra_names(groups: Sequence[Arm]) -> list[str]:
    """The ``spectra_<arm>`` figure names of ``groups``, one per arm and all distinct (``_2``, ``_3`` ...
    where two labels give the same :func:`slug`)."""
    names: list[str] = []
    for a in groups:
        base = f"spectra_{slug(a.label)}"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


def sweep_figures(
    df: pd.DataFrame, spec: TableSpec, *, expected: Sequence[Mapping[str, Any]] | None = None, title: str | None = None
) -> list[tuple[str, Figure | None]]:
    """The sweep's figures by name (``accuracy``, ``loss``, ``z_std``, ``eigen``, ``spectra_<arm>``), unsaved;
    None where a figure has no data (e.g. ``eigen`` for MLP predictors)."""
    groups = arms(df, spec, expected)
    if not groups:
        return []
    sweeps = df["sweep"].dropna().unique() if "sweep" in df.columns else []
    name = title or (str(sweeps[0]) if len(sweeps) else "sweep")
    acc = [(m, METRIC_NAMES[m], PERCENT, False) for m in accuracy_metrics(spec)]
    loss = [("loss", "training loss (2 - 2cos per direction, summed)", 1.0, False)]
    z_std = [("z_std", "z_std = std of l2-normalised z x sqrt(d)", 1.0, True)]
    eigen = [
        ("eig_align", "eigen-alignment of $W_p$ with $\\hat F$", 1.0, False),
        ("commutator", "$\\|[\\hat F, W_p]\\|_F$ (normalised)", 1.0, True),
    ]
    figures: list[tuple[str, Figure | None]] = [
        ("accuracy", _lines_figure(groups, acc, f"{name}: accuracy during pretraining")),
        ("loss", _lines_figure(groups, loss, f"{name}: training loss")),
        ("z_std", _lines_figure(groups, z_std, f"{name}: collapse monitor")),
        ("eigen", _lines_figure(groups, eigen, f"{name}: predictor / correlation alignment (Fig. 2, Theorem 3)")),
    ]
    panels = {m for p in (acc, loss, z_std, eigen) for m, *_ in p}
    if spec.metric not in panels:  # the table's own metric (a plugin kind's, a theory column) over epochs
        mine = [(spec.metric, METRIC_NAMES.get(spec.metric, spec.metric), spec.scale, False)]
        figures.append((spec.metric, _lines_figure(groups, mine, f"{name}: {spec.metric} during training")))
    spectra_title = f"{name}: spectra over training (Fig. 2)"
    figures += [(n, _spectra_figure(a.label, a.rows, spectra_title)) for n, a in zip(spectra_names(groups), groups)]
    return figures


def plot_sweep(
    df: pd.DataFrame,
    spec: TableSpec,
    out: str | Path | Location,
    *,
    formats: Sequence[str] = FIGURE_FORMATS,
    expected: Sequence[Mapping[str, Any]] | None = None,
    title: str | None = None,
) -> list[Path | str]:
    """Write the sweep's figures (each as PNG and PDF) into ``out``; return the files written.
    A kind with figures of its own (its record's ``plot``: the theory kind's phase portraits,
    commutator decay and collapse map) gets those instead."""
    kind = kinds_in(df)[0]
    if kind.plot is not None:
        return kind.plot(df, spec, out, formats)
    out = Location.parse(out)
    paths: list[Path | str] = []
    for fname, fig in sweep_figures(df, spec, expected=expected, title=title):
        if fig is not None:
            # constrained layout keeps the outside legend inside the canvas: no tight bounding box
            paths += save(fig, out / fname, formats, dpi=120, bbox_inches=None)
    return paths
