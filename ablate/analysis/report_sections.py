"""The parts of ``ablate report`` computed from the rows besides the table and the figures, and the page model.

- :func:`config_summary`: the sweep's configuration at a glance, from the trials themselves: what varies
  (with its values), what is set in some trials only (a variant's own settings, e.g. DirectPred's ``rho``),
  and what is fixed;
- :func:`trial_grid`: one row per trial: the config values that vary, its final metrics, status, epochs
  and wall time;
- :func:`aligned_notes`: what a reader must know to read the eigen-alignment right (why DirectPred's
  is 1 by construction).

A page is a list of :data:`Block` s, rendered to HTML or Markdown by :func:`render_blocks`, so both
formats show the same content.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ablate.analysis.tables import EPOCH
from ablate.kinds.registry import kinds_in
from ablate.results.schema import COMMON_COLUMNS, config_columns, finite


# ---------------------------------------------------------------- the page model
@dataclass(frozen=True)
class Grid:
    """A small table of text: a header and rows of cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


# (kind, content): h1/h2/p/note: text; pre: (language, text); raw: (html, markdown);
# grid: Grid; kv: [(key, value)]; details: (summary, open, Block); figure: (name, src, caption)
Block = tuple[str, Any]


def _html_grid(g: Grid) -> str:
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in g.header) + "</tr>"
    body = ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in g.rows]
    return "\n".join(["<table>", head, *body, "</table>"])


def _md_cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def _md_grid(g: Grid) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in g.header) + " |", "|" + ":---|" * len(g.header)]
    return "\n".join(lines + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in g.rows])


def _html_figure(x: tuple[str, str, str]) -> str:
    name, b64, caption = (html.escape(s) for s in x)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{b64}"><figcaption>{caption}</figcaption></figure>'


def _html_kv(pairs: Sequence[tuple[str, str]]) -> str:
    e = html.escape
    return "\n".join(["<table>", *(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in pairs), "</table>"])


HTML_BLOCKS: dict[str, Callable[[Any], str]] = {
    "h1": lambda x: f"<h1>{html.escape(x)}</h1>",
    "h2": lambda x: f"<h2>{html.escape(x)}</h2>",
    "p": lambda x: f"<p>{html.escape(x)}</p>",
    "note": lambda x: f"<p class='legend'>{html.escape(x)}</p>",
    "pre": lambda x: f"<pre>{html.escape(x[1])}</pre>",
    "raw": lambda x: x[0],
    "grid": _html_grid,
    "kv": _html_kv,
    "details": lambda x: (
        f"<details{' open' if x[1] else ''}><summary>{html.escape(x[0])}</summary>\n"
        + render_blocks([x[2]], "html")
        + "\n</details>"
    ),
    "figure": _html_figure,
}
MARKDOWN_BLOCKS: dict[str, Callable[[Any], str]] = {
    "h1": lambda x: f"# {x}",
    "h2": lambda x: f"## {x}",
    "p": str,
    "note": lambda x: f"> {x}",
    "pre": lambda x: f"```{x[0]}\n{x[1].rstrip()}\n```",
    "raw": lambda x: x[1],
    "grid": _md_grid,
    "kv": lambda x: "\n".join(["| | |", "|:---|:---|"] + [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in x]),
    "details": lambda x: f"{x[0]}:\n\n" + render_blocks([x[2]], "markdown"),
    "figure": lambda x: f"![{x[0]}]({x[1]})\n\n{x[2]}",
}
RENDERERS = {"html": (HTML_BLOCKS, "\n"), "markdown": (MARKDOWN_BLOCKS, "\n\n")}


def render_blocks(blocks: Sequence[Block], fmt: str) -> str:
    """``blocks`` as HTML (one element a line) or Markdown (a blank line between blocks)."""
    renderers, sep = RENDERERS[fmt]
    return sep.join(renderers[kind](content) for kind, content in blocks)


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
    final = df["is_final"].fillna(False).astype(bool) if "is_final" in df.columns else False
    epoch = df[EPOCH].fillna(-1) if EPOCH in df.columns else 0
    order = df.assign(_final=final, _epoch=epoch).sort_values(["_final", "_epoch"], kind="stable")
    last = order.groupby("trial_id", sort=False).tail(1).drop(columns=["_final", "_epoch"])
    first_seen = {t: i for i, t in enumerate(dict.fromkeys(df["trial_id"]))}
    return last.sort_values("trial_id", key=lambda s: s.map(first_seen), kind="stable")


# ---------------------------------------------------------------- the configuration at a glance
@dataclass(frozen=True)
class ConfigSummary:
    """``varies``: (key, its values in order of appearance); ``partly``: (key, value, where it is set)
    for a setting that only some trials have; ``fixed``: (key, value) the same in every trial."""

    varies: tuple[tuple[str, tuple[str, ...]], ...]
    partly: tuple[tuple[str, str, str], ...]
    fixed: tuple[tuple[str, str], ...]


def config_keys(df: pd.DataFrame) -> list[str]:
    """The config leaves (dotted keys, and ``seed``) among ``df``'s columns, for the trial kinds it holds."""
    kinds = kinds_in(df)
    taken = {n for n, *_ in COMMON_COLUMNS} | {n for k in kinds for n, *_ in k.metrics}
    keys = dict.fromkeys(k for kind in kinds for k in config_columns(kind.Config))
    return ["seed"] * ("seed" in df.columns) + [k for k in keys if k in df.columns and k not in taken]


def config_summary(df: pd.DataFrame) -> ConfigSummary:
    """What varies across the trials of ``df`` (values in the order of its rows), what only some of them
    set, and what is fixed."""
    trials = last_rows(df)
    varies, partly, fixed = [], [], []
    shown = {k: trials[k].map(show) for k in config_keys(trials)}
    for key, values in shown.items():
        distinct = tuple(dict.fromkeys(v for v in values if v != "—"))  # in the order of the rows: the table's
        if len(distinct) > 1:
            varies.append((key, distinct))
        elif distinct and (values == "—").any():
            partly.append((key, distinct[0]))
        elif distinct:
            fixed.append((key, distinct[0]))
    varying = [k for k, _ in varies]
    partly_where = tuple((k, v, _where(shown, k, varying)) for k, v in partly)
    return ConfigSummary(tuple(varies), partly_where, tuple(fixed))


def _where(shown: dict[str, pd.Series], key: str, varying: Sequence[str]) -> str:
    """Where ``key`` is set, in terms of a varying key whose values tell the trials that set it apart
    (``predictor.name=directpred``), else as a count of trials."""
    is_set = shown[key] != "—"
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


def _wall(seconds: Any) -> str:
    if not finite(seconds):
        return "—"
    return f"{float(seconds):.1f} s" if seconds < 60 else str(dt.timedelta(seconds=round(float(seconds))))


def _status(row: pd.Series) -> str:
    if not bool(row.get("is_final")):
        return "unfinished"
    collapsed = row.get("collapsed") in (True, 1) and row.get("status") == "ok"
    return str(row.get("status")) + (" (collapsed)" if collapsed else "")


def trial_grid(df: pd.DataFrame, keys: Sequence[str], metric: str, scale: float) -> Grid:
    """One row per trial (``df``'s order): its id, the values of ``keys``, its final metrics (the table's
    ``metric`` first, scaled by ``scale``), status, epochs done and wall time."""
    trials = last_rows(df)
    extra = [] if any(metric == m for m, *_ in TRIAL_METRICS) else [(metric, metric, scale, ".4g")]
    metrics = [m for m in (*extra, *TRIAL_METRICS) if m[0] in trials.columns and trials[m[0]].notna().any()]
    header = ("trial", *keys, *(h for _, h, _, _ in metrics), "status", "epochs", "wall time", "device time")
    rows = []
    for _, r in trials.iterrows():
        rows.append(
            (
                str(r["trial_id"])[:8],
                *(show(r.get(k)) for k in keys),
                *(_number(r.get(m), s, f) for m, _, s, f in metrics),
                _status(r),
                show(r.get(EPOCH)),
                _wall(r.get("wall_s")),
                _wall(r.get("device_s")),
            )
        )
    return Grid(header, tuple(rows))


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
