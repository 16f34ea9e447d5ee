"""``ablate report``: one self-contained HTML (or Markdown) page per sweep.

The page holds the table (with the paper's numbers where the sweep names a paper table), every
figure of :mod:`ablate.analysis.plots`, the status counts, the provenance of the rows (git commit and whether
the checkout was dirty, library versions, devices, start time, total wall time) and the sweep file
as it was run. HTML embeds the figures as base64 PNGs, so the one file can be mailed or archived;
Markdown links PNGs written to ``<report>_figures/`` next to it.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from ablate.analysis.paper import PaperRef, load_paper
from ablate.analysis.plots import plot_sweep
from ablate.analysis.render import render
from ablate.analysis.tables import build_table
from ablate.errors import UserError
from ablate.results.location import Location
from ablate.results.schema import COLLAPSE_Z_STD
from ablate.sweep.schema import TableSpec

CSS = """body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}td.missing{color:#999}
td.diverged,td.failed{background:#fde8e8}td.collapsed{background:#fff4d6}.legend{font-size:90%;color:#555}
img{max-width:100%;border:1px solid #eee;margin:6px 0}pre{background:#f6f8fa;padding:1em;overflow-x:auto}"""


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
        "total wall time (sum over trials)": _duration(float(last.sum())) if len(last) else "unknown",
        "longest trial": _duration(float(last.max())) if len(last) else "unknown",
    }


def _duration(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))


def status_counts(df: pd.DataFrame) -> dict[str, int]:
    """Trials by state: ok, diverged, failed (final row), collapsed (ok but z_std < 0.1), unfinished."""
    if df.empty:
        return {}
    out = {"trials": int(df.trial_id.nunique()), "ok": 0, "collapsed": 0, "diverged": 0, "failed": 0, "unfinished": 0}
    for _, rows in df.groupby("trial_id"):
        final = rows[rows.is_final.fillna(False).astype(bool)]
        if final.empty:
            out["unfinished"] += 1
            continue
        last = final.iloc[-1]
        out[str(last.status)] = out.get(str(last.status), 0) + 1
        if last.status == "ok" and last.get("collapsed") in (True, 1):  # None / NaN: not recorded
            out["collapsed"] += 1
    return out


def counts_text(counts: Mapping[str, int]) -> str:
    if not counts:
        return "no results yet"
    return (
        f"{counts['trials']} trials: {counts['ok']} ok ({counts['collapsed']} of them collapsed), "
        f"{counts['diverged']} diverged, {counts['failed']} failed, {counts['unfinished']} unfinished"
    )


FIGURE_NOTES = {
    "accuracy": "Linear-probe and kNN top-1 vs pretraining epoch; line: mean over seeds, band: min-max.",
    "z_std": f"Collapse monitor: std of the l2-normalised projections x sqrt(d); below {COLLAPSE_Z_STD:g} = collapsed.",
    "eigen": "Eigen-alignment of W_p with F and the normalised commutator ||[F, W_p]|| (Fig. 2, Theorem 3).",
}


def figure_note(stem: str) -> str:
    if stem.startswith("spectra_"):
        return f"Eigenvalues of F and W_p over training (Fig. 2): {stem[len('spectra_') :]}"
    return FIGURE_NOTES.get(stem, stem)


def _paper(spec: TableSpec, paper: PaperRef | Path | str | bool | None) -> PaperRef | None:
    if isinstance(paper, PaperRef):
        return paper
    if paper is False or (paper is None and not spec.paper):
        return None
    try:
        return load_paper(None if paper in (None, True) else paper)
    except UserError:
        return None  # a report without the paper's column is still a report


def write_report(
    df: pd.DataFrame,
    spec: TableSpec,
    out: str | Path | Location,
    *,
    sweep_text: str | None = None,
    fmt: Literal["html", "markdown"] = "html",
    paper: PaperRef | Path | str | bool | None = None,
    expected: Sequence[Mapping[str, Any]] | None = None,
    title: str | None = None,
) -> Path | str:
    """Write the report of the results ``df`` to ``out`` (a path or a URI); return where it went.

    ``paper``: None = the shipped reference file when the spec names a paper table; False = none.
    Markdown links PNGs written to ``<out stem>_figures/`` beside it."""
    if fmt not in ("html", "markdown"):
        raise UserError(f"--format {fmt!r}: a report is html or markdown")
    out = Location.parse(out)
    name = title or (str(df["sweep"].dropna().iloc[0]) if not df.empty and df["sweep"].notna().any() else "results")
    table = build_table(df, spec, _paper(spec, paper), expected, name)
    if fmt == "html":
        with tempfile.TemporaryDirectory() as tmp:
            figs = [Path(p) for p in plot_sweep(df, spec, tmp, formats=("png",), expected=expected, title=name)]
            images = [(p.stem, base64.b64encode(p.read_bytes()).decode()) for p in figs]
        out.write_text(_html_page(name, render(table, "html"), images, df, sweep_text))
    else:
        stem = out.name.rsplit(".", 1)[0]
        fig_dir = out.parent / f"{stem}_figures"
        figs = plot_sweep(df, spec, fig_dir, formats=("png",), expected=expected, title=name)
        links = [(Path(str(p)).stem, f"{fig_dir.name}/{Path(str(p)).name}") for p in figs]
        out.write_text(_markdown_page(name, render(table, "markdown"), links, df, sweep_text))
    return out.display()


def _html_page(
    name: str, table_html: str, images: list[tuple[str, str]], df: pd.DataFrame, sweep_text: str | None
) -> str:
    e = html.escape
    counts = status_counts(df)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>ablate report: {e(name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Sweep {e(name)}</h1>",
        "<h2>Table</h2>",
        table_html,
        "<h2>Trials</h2>",
        f"<p>{e(counts_text(counts))}</p>",
    ]
    if images:
        parts.append("<h2>Figures</h2>")
        parts += [
            f'<figure><img alt="{e(stem)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{e(figure_note(stem))}</figcaption></figure>"
            for stem, b64 in images
        ]
    parts.append("<h2>Provenance</h2><table>")
    parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in provenance_summary(df).items()]
    parts.append("</table>")
    if sweep_text:
        parts += ["<h2>Sweep file</h2>", f"<pre>{e(sweep_text)}</pre>"]
    parts.append(
        f"<p class='legend'>written by ablate report at {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}</p>"
    )
    return "\n".join(parts + ["</body></html>"]) + "\n"


def _markdown_page(
    name: str, table_md: str, images: list[tuple[str, str]], df: pd.DataFrame, sweep_text: str | None
) -> str:
    counts = status_counts(df)
    lines = [f"# Sweep {name}", "", "## Table", "", table_md, "", "## Trials", "", counts_text(counts), ""]
    if images:
        lines += ["## Figures", ""] + [f"![{stem}]({path})\n\n{figure_note(stem)}\n" for stem, path in images]
    lines += ["## Provenance", "", "| | |", "|:---|:---|"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in provenance_summary(df).items()]
    if sweep_text:
        lines += ["", "## Sweep file", "", "```yaml", sweep_text.rstrip(), "```"]
    return "\n".join(lines) + "\n"
