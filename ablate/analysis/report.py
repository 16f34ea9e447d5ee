"""``ablate report``: one self-contained HTML (or Markdown) page per sweep.

The page holds, top to bottom: the sweep's description; the table (with the paper's numbers where the
sweep names a paper table); its configuration (what varies, what only some trials set, the ``--set``
overrides, what is fixed); the status counts (and what else the results folder holds) and one row per
trial (config values that vary, final metrics, status, wall time); every figure of
:mod:`ablate.analysis.plots` with its caption; the provenance of the rows (git commit and whether the
checkout was dirty, library versions, devices, start time, total wall time); and the sweep as it was
run: its expansion (trials, axes, seeds), its ``--set`` overrides and the sweep file. HTML embeds the
figures as base64 PNGs, so the one file can be mailed or archived; Markdown links PNGs written to
``<report>_figures/`` next to it. The parts computed from the rows are in :mod:`ablate.analysis.report_sections`.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from ablate.analysis.cost import device_share, in_units
from ablate.analysis.paper import PaperRef, load_paper
from ablate.analysis.plots import LEADING, Arm, arms, plot_sweep, spectra_names
from ablate.analysis.protocol_grid import protocol_blocks
from ablate.analysis.render import render
from ablate.analysis.report_blocks import CSS, Block, Grid, render_blocks, with_contents
from ablate.analysis.report_sections import (
    WALL_TIME_NOTE,
    ConfigSummary,
    aligned_notes,
    chosen_keys,
    config_summary,
    counts_text,
    provenance_summary,
    status_counts,
    trial_grid,
)
from ablate.analysis.tables import Table, build_table
from ablate.errors import UserError
from ablate.results.io import final_rows
from ablate.results.location import Location
from ablate.results.schema import COLLAPSE_Z_STD
from ablate.sweep.describe import describe
from ablate.sweep.table_block import TableSpec
from ablate.sweep.validated import Sweep

FIGURE_NOTES = {
    "accuracy": "Linear-probe top-1 (the table's probe metric, else the best of probe epochs) and kNN top-1, in %, "
    "vs pretraining epoch; line: mean over seeds, band: min-max.",
    "loss": "Training loss (2 - 2cos per direction, summed over directions; mean over the epoch's steps) vs "
    "pretraining epoch; line: mean over seeds, band: min-max.",
    "z_std": f"Collapse monitor: std of the l2-normalised projections x sqrt(d); below {COLLAPSE_Z_STD:g} = collapsed.",
    "eigen": "Eigen-alignment of W_p with F and the normalised commutator ||[F, W_p]|| (Fig. 2, Theorem 3).",
}
SPECTRA_NOTE = (
    "Eigenvalues of F_hat (left) and of W_p in F_hat's eigenbasis (right) over training, mean over seeds (Fig. 2): "
    f"the {LEADING} largest one line each, the rest as one grey min-max band. Arm: "
)


def figure_note(stem: str, arm_labels: Mapping[str, str] | None = None) -> str:
    """The caption of the figure ``stem``; ``arm_labels``: spectra figure name -> its arm's label."""
    if stem.startswith("spectra_"):
        return SPECTRA_NOTE + (arm_labels or {}).get(stem, stem[len("spectra_") :])
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
    sweep: Sweep | None = None,
    sweep_text: str | None = None,
    fmt: Literal["html", "markdown"] = "html",
    paper: PaperRef | Path | str | bool | None = None,
    expected: Sequence[Mapping[str, Any]] | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> Path | str:
    """Write the report of the results ``df`` to ``out`` (a path or a URI); return where it went.

    ``sweep``: the sweep as it was run (its file, its ``--set`` overrides, its expansion), shown
    whole; without it ``sweep_text`` (a sweep file's text) is shown as it is. ``notes``: what else the
    results folder holds (:attr:`ablate.analysis.sources.Source.notes`).
    ``paper``: None = the shipped reference file when the spec names a paper table; False = none.
    Markdown links PNGs written to ``<out stem>_figures/`` beside it."""
    if fmt not in ("html", "markdown"):
        raise UserError(f"--format {fmt!r}: a report is html or markdown")
    out = Location.parse(out)
    name = title or (str(df["sweep"].dropna().iloc[0]) if not df.empty and df["sweep"].notna().any() else "results")
    table = build_table(df, spec, _paper(spec, paper), expected, name)
    run = as_run(sweep, sweep_text, notes)
    page = Page(name, table, df, run, tuple(arms(df, spec, expected)))
    if fmt == "html":
        with tempfile.TemporaryDirectory() as tmp:
            figs = [Path(p) for p in plot_sweep(df, spec, tmp, formats=("png",), expected=expected, title=name)]
            images = [(p.stem, base64.b64encode(p.read_bytes()).decode()) for p in figs]
        out.write_text(_html_page(page, images))
    else:
        stem = out.name.rsplit(".", 1)[0]
        fig_dir = out.parent / f"{stem}_figures"
        figs = plot_sweep(df, spec, fig_dir, formats=("png",), expected=expected, title=name)
        links = [(Path(str(p)).stem, f"{fig_dir.name}/{Path(str(p)).name}") for p in figs]
        out.write_text(render_blocks(page_blocks(page, links), "markdown") + "\n")
    return out.display()


@dataclass(frozen=True)
class AsRun:
    """The sweep as it was run, for the report: what it is for (its description), its expansion at a
    glance, its ``--set`` overrides, the file as written, and what else its results folder holds."""

    description: str = ""
    overrides: tuple[str, ...] = ()
    text: str | None = None
    notes: tuple[str, ...] = ()
    about: str = ""
    share: tuple[float, str] = (1.0, "CPU core")  # each trial's share of its device, and the device's name
    chosen: frozenset[str] | None = None  # the config keys the grid or cases set (None: not known)


def as_run(sweep: Sweep | None, sweep_text: str | None = None, notes: Sequence[str] = ()) -> AsRun:
    """What the report shows of ``sweep``: ``ablate check``'s description (trials, axes, seeds; not where
    the sweep file or the results are on this machine: the page is meant to be shared) and each override
    as the ``--set`` that gave it."""
    if sweep is None:
        return AsRun(text=sweep_text, notes=tuple(notes))
    lines = [line for line in describe(sweep).splitlines() if not line.startswith(("results ", "sweep "))]
    sets = tuple(
        "--set " + shlex.quote(f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}")
        for k, v in sweep.overrides.items()
    )
    chosen = frozenset(chosen_keys([t.axes for t in sweep.trials])) if sweep.trials else None
    about = sweep.description.strip()
    return AsRun("\n".join(lines), sets, sweep.text, tuple(notes), about, device_share(sweep), chosen)


@dataclass(frozen=True)
class Page:
    """What one report shows: the sweep's name, its table, its rows, the sweep as run, and its arms
    (the table's rows x columns, in table order)."""

    name: str
    table: Table
    df: pd.DataFrame
    run: AsRun
    arms: tuple[Arm, ...]

    @property
    def arm_labels(self) -> dict[str, str]:
        """Spectra figure name -> its arm's label."""
        return dict(zip(spectra_names(self.arms), (a.label for a in self.arms)))

    @cached_property
    def ordered(self) -> pd.DataFrame:
        """The rows arm by arm in table order, seeds ascending within an arm."""
        if not self.arms:
            return self.df
        return pd.concat([a.rows.sort_values("seed", kind="stable") if "seed" in a.rows else a.rows for a in self.arms])

    @cached_property
    def config(self) -> ConfigSummary:
        """What varies (values in table order), what only some trials set, what is fixed."""
        return config_summary(self.ordered, self.run.chosen)


OPEN_TRIALS = 40  # the HTML per-trial table starts unfolded up to this many trials


def page_blocks(page: Page, images: Sequence[tuple[str, str]]) -> list[Block]:
    """The report, top to bottom: what the sweep is, its table, its configuration, its trials, the
    figures (``images``: (name, src) pairs), the provenance, and the sweep as run."""
    df, run = page.df, page.run
    blocks: list[Block] = [("h1", f"Sweep {page.name}")]
    blocks += [("p", run.about)] if run.about else []
    blocks += [("h2", "Table"), ("raw", (render(page.table, "html"), render(page.table, "markdown")))]
    blocks += protocol_blocks(df, page.table.spec, page.name)  # the cells under every probe protocol
    blocks += _config_blocks(page)
    blocks += _trial_blocks(page)
    if images:
        blocks.append(("h2", "Figures"))
        for stem, src in images:
            blocks.append(("figure", (stem, src, figure_note(stem, page.arm_labels))))
            blocks += [("note", n) for n in aligned_notes(df)] if stem == "eigen" else []
    blocks += [("h2", "Provenance"), ("kv", list(provenance_summary(df).items()))]
    if run.description:
        blocks += [("h2", "Sweep as run"), ("pre", ("", run.description)), ("p", _overrides_text(run))]
        blocks += [("pre", ("", " ".join(run.overrides)))] if run.overrides else []
    if run.text:
        blocks += [("h2", "Sweep file"), ("pre", ("yaml", run.text))]
    return with_contents(blocks)


def _config_blocks(page: Page) -> list[Block]:
    """What varies across the trials, what only some set, the ``--set`` overrides, and (folded) what is fixed."""
    df, run, summary = page.df, page.run, page.config
    n = df["trial_id"].nunique() if "trial_id" in df.columns else 0
    blocks: list[Block] = [("h2", "Configuration")]
    if summary.varies:
        blocks.append(("p", f"What varies across the {n} trials:"))
        blocks.append(("grid", Grid(("setting", "values"), tuple((k, ", ".join(v)) for k, v in summary.varies))))
    if summary.partly:
        own = "A variant's own settings (set in some trials only, or a default that differs by variant):"
        blocks.append(("p", own))
        blocks.append(("grid", Grid(("setting", "value", "set"), summary.partly)))
    if run.description:
        blocks.append(("p", f"--set overrides: {' '.join(run.overrides)}" if run.overrides else "No --set overrides."))
    if summary.fixed:
        fixed = f"Fixed in every trial ({len(summary.fixed)} settings)"
        blocks.append(("details", (fixed, False, ("kv", summary.fixed))))
    return blocks


def _trial_blocks(page: Page) -> list[Block]:
    """The status counts, what else the folder holds, and one row per trial: arm by arm in table order,
    seeds ascending within an arm."""
    df = page.df
    blocks: list[Block] = [("h2", "Trials"), ("p", counts_text(status_counts(df)))]
    if "device_s" in df.columns and df["device_s"].notna().any():
        share, device = page.run.share
        total = in_units(final_rows(df)["device_s"].sum() * share, device)
        blocks.append(
            (
                "p",
                f"Measured compute: {total} in all (each trial's device time x its share of the device; "
                "per trial below).",
            )
        )
    blocks += [("note", n) for n in page.run.notes]
    if not page.arms:
        return blocks
    spec = page.table.spec
    grid = trial_grid(page.ordered, [k for k, _ in page.config.varies], spec.metric, spec.scale)
    title = f"Each trial's final row ({len(grid.rows)} trials)"
    blocks.append(("details", (title, len(grid.rows) <= OPEN_TRIALS, ("grid", grid))))
    blocks.append(("note", WALL_TIME_NOTE))
    if "eig_align" in df.columns and df["eig_align"].notna().any():
        blocks += [("note", n) for n in aligned_notes(df, short=True)]
    return blocks


def _html_page(page: Page, images: Sequence[tuple[str, str]]) -> str:
    head = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>ablate report: {html.escape(page.name)}</title>",
        f"<style>{CSS}</style></head><body>",
    ]
    stamp = f"written by ablate report at {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}"
    body = render_blocks([*page_blocks(page, images), ("note", stamp)], "html")
    return "\n".join([*head, body, "</body></html>"]) + "\n"


def _overrides_text(run: AsRun) -> str:
    if not run.overrides:
        return "Run as the sweep file below says (no --set overrides)."
    return "Run with these --set overrides, which replace the sweep file's values below:"
