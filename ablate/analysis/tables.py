"""Paper-shaped tables from a sweep's results.

A sweep file's ``table:`` block (:class:`ablate.sweep.schema.TableSpec`) names the config keys whose values form the
rows and the columns and the metric that fills the cells. :func:`build_table` turns the results
(one row per trial and evaluated epoch, see :mod:`ablate.results.schema`) into a :class:`Table`: one cell per
combination of row and column values with mean +- sample std over seeds of the final epoch's
metric, the number of seeds, flags (missing, diverged, collapsed, failed) and, optionally, the
paper's number (:mod:`ablate.analysis.paper`) and the difference; :mod:`ablate.analysis.render` prints
it for the terminal, Markdown, LaTeX, CSV or HTML.

Which probe number of a trial fills a cell (``--protocol``) is :mod:`ablate.analysis.protocols`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ablate.analysis.cells import axis_label, check_labels, check_one_config, fill_caption, schema_columns
from ablate.analysis.metrics import check_measure
from ablate.analysis.paper import PaperCell, PaperRef, canon, value_rank
from ablate.analysis.protocols import PROTOCOLS, over_epochs_text, trial_value_row
from ablate.config.tree import flatten, to_dict
from ablate.errors import UserError
from ablate.results.io import final_mask
from ablate.results.schema import COLLAPSED_STOPPED, finite
from ablate.sweep.table_block import TableSpec
from ablate.sweep.validated import Sweep

EPOCH = "epoch"  # the one table axis that is a results column, not a config key (Table 8)
ENDED_AT = "_ended_at"  # a trial that ended before a shown epoch counts there; this keeps the epoch it ended at


# ---------------------------------------------------------------- the table
@dataclass(frozen=True)
class TableCell:
    """One (row, column) of a table: statistics over the seeds of the final (or chosen) epoch."""

    row: tuple[str, ...]  # canonical values of spec.rows
    col: tuple[str, ...]  # canonical values of spec.cols
    mean: float | None
    std: float | None  # sample std (ddof 1); None with fewer than 2 seeds
    n: int  # seeds that went into the mean
    expected: int | None  # trials of the sweep's expansion in this cell (None: unknown)
    flags: frozenset[str]  # subset of {missing, diverged, collapsed, failed, stopped}
    top5: float | None = None
    paper: PaperCell | None = None
    trial_ids: tuple[str, ...] = ()
    stopped_at: tuple[int, ...] = ()  # epochs at which stop_collapsed ended seeds of this cell (not in the mean)

    @property
    def diff(self) -> float | None:
        """Ours minus the paper's (display units)."""
        if self.mean is None or self.paper is None:
            return None
        return self.mean - self.paper.mean

    @property
    def diff_top5(self) -> float | None:
        if self.top5 is None or self.paper is None or self.paper.top5 is None:
            return None
        return self.top5 - self.paper.top5


@dataclass(frozen=True)
class Table:
    spec: TableSpec
    row_values: list[tuple[str, ...]]
    col_values: list[tuple[str, ...]]
    cells: dict[tuple[tuple[str, ...], tuple[str, ...]], TableCell]  # only cells the sweep has
    caption: str
    sweep: str
    seeds: tuple[int, ...]
    with_paper: bool = False

    def row_label(self, row: tuple[str, ...]) -> str:
        return axis_label(self.spec.rows, row, self.spec.labels)

    def rows_title(self) -> str:
        """Header of the row-label column: the row keys' display names."""
        return " / ".join(str(self.spec.labels.get(k, k.rsplit(".", 1)[-1])) for k in self.spec.rows)

    def col_label(self, col: tuple[str, ...]) -> str:
        return axis_label(self.spec.cols, col, self.spec.labels) or _metric_name(self.spec)

    def get(self, row_label: str, col_label: str) -> TableCell:
        """The cell under the displayed labels (for tests and scripts)."""
        rows, cols = {}, {}
        for r in self.row_values:
            rows.setdefault(self.row_label(r), r)
        for c in self.col_values:
            cols.setdefault(self.col_label(c), c)
        there = f"rows: {', '.join(map(repr, rows)) or 'none'}; columns: {', '.join(map(repr, cols)) or 'none'}"
        for label, known, what in ((row_label, rows, "row"), (col_label, cols, "column")):
            if label not in known:
                raise UserError(f"table cell ({row_label!r}, {col_label!r}): no {what} {label!r}; {there}")
        cell = self.cells.get((rows[row_label], cols[col_label]))
        if cell is None:
            raise UserError(f"table cell ({row_label!r}, {col_label!r}): the sweep has no trial there; {there}")
        return cell

    @property
    def flags(self) -> set[str]:
        return {f for c in self.cells.values() for f in c.flags}


def _metric_name(spec: TableSpec) -> str:
    """The metric as the table names it: its ``labels`` entry (a bare key), else the column name."""
    name = lambda m: str(spec.labels.get(m, m))  # noqa: E731
    return f"{name(spec.metric)} / {name(spec.top5)}" if spec.top5 else name(spec.metric)


def _records(df: pd.DataFrame, spec: TableSpec) -> list[dict[str, Any]]:
    """The rows that fill cells: each trial's final row, or with an ``epoch`` axis its row at each
    shown epoch (a trial that diverged or failed before that epoch counts there as such)."""
    if df.empty:
        return []
    for k in (*spec.rows, *spec.cols, spec.metric, *([spec.top5] if spec.top5 else [])):
        if k not in df.columns:
            raise UserError(
                f"table: {k!r} is not a column of the results; use a dotted config key "
                f"(e.g. predictor.rho) or a metric column (e.g. probe_top1_best)"
            )
    for k, flag in ((spec.metric, "table.metric"), (spec.top5, "table.top5")):
        if k:
            check_measure(df, k, flag)  # a config value averaged over seeds is no result
    out: list[dict[str, Any]] = []
    by_epoch = EPOCH in (*spec.rows, *spec.cols)
    targets = list(spec.epochs) or sorted(int(e) for e in df.loc[df.status == "ok", "epoch"].dropna().unique())
    for _, rows in df.groupby("trial_id", sort=False):
        rows = rows.sort_values("epoch", na_position="last")
        final = rows[final_mask(rows)]
        last = final.iloc[-1].to_dict() if len(final) else None
        if not by_epoch:
            if last is not None:
                out.append(trial_value_row(rows, last, spec.metric, spec.over_epochs))
            continue
        for t in targets:
            at = rows[(rows.epoch == t) & (rows.status == "ok")]
            if len(at):
                out.append(at.iloc[-1].to_dict())
            elif last is not None and last["status"] != "ok" and (pd.isna(last["epoch"]) or last["epoch"] <= t):
                out.append({**last, EPOCH: t, ENDED_AT: last["epoch"]})  # counts at t as it ended
    return out


def order_tuples(
    tuples: Iterable[tuple[str, ...]], first_seen: list[tuple[str, ...]], n_keys: int
) -> list[tuple[str, ...]]:
    """Each key's values in order of first appearance in the expansion, others sorted after them."""
    tuples = list(dict.fromkeys(tuples))
    if not tuples:
        return [] if n_keys else [()]
    ranks: list[dict[str, int]] = [{} for _ in tuples[0]]
    for t in first_seen:
        for i, v in enumerate(t):
            ranks[i].setdefault(v, len(ranks[i]))
    return sorted(tuples, key=lambda t: tuple((ranks[i].get(v, len(ranks[i])), value_rank(v)) for i, v in enumerate(t)))


def build_table(
    df: pd.DataFrame,
    spec: TableSpec,
    paper: PaperRef | None = None,
    expected: Sequence[Mapping[str, Any]] | None = None,
    sweep: str | None = None,
) -> Table:
    """Cells of ``spec`` from the results ``df`` (:func:`ablate.results.io.read_rows`).

    ``expected``: the flat config (dotted keys, incl. ``seed``) of every trial of the sweep's
    expansion (:func:`expected_configs`); it fixes the value order, marks cells with no finished
    seed as missing and gives n out of how many. Without it, missing cells are the combinations of
    seen row and column values that have no finished trial. ``paper`` adds the paper's numbers:
    a cell takes the first entry of the tables named by ``spec.paper`` whose ``match`` holds for
    every trial of the cell."""
    recs = _records(df, spec)
    by_epoch = EPOCH in (*spec.rows, *spec.cols)
    exp: list[dict[str, Any]] = []
    for cfg in expected or []:
        epochs = spec.epochs if by_epoch else [cfg.get("train.epochs")]
        exp += [{**cfg, EPOCH: e} for e in epochs]  # a finished trial's last row is its final epoch
    groups, exp_groups = _by_cell(recs, spec), _by_cell(exp, spec)
    seen = [_cell_key(r, spec) for r in exp]
    row_values = order_tuples([k[0] for k in [*seen, *groups]], [k[0] for k in seen], len(spec.rows))
    col_values = order_tuples([k[1] for k in [*seen, *groups]], [k[1] for k in seen], len(spec.cols))
    design = set(exp_groups) | set(groups) if expected is not None else {(r, c) for r in row_values for c in col_values}
    check_labels(spec, [*recs, *exp])
    check_one_config(groups, spec)
    tables = [t.strip() for t in (spec.paper or "").split(",") if t.strip()] or (paper.tables() if paper else [])
    cells = {}
    for rc in design:
        rs, planned = groups.get(rc, []), exp_groups.get(rc, [])
        cell = _cell(rc, rs, spec, len(planned) if expected is not None else None)
        cells[rc] = dataclasses.replace(cell, paper=paper.find(tables, rs + planned)) if paper else cell
    seeds = sorted({int(r["seed"]) for r in [*recs, *exp] if finite(r.get("seed"))})
    name = sweep or next((str(r["sweep"]) for r in recs if isinstance(r.get("sweep"), str) and r["sweep"]), "results")
    known = {*df.columns, *(k for c in exp for k in c), *schema_columns()}
    caption = _caption(fill_caption(spec.caption, [*recs, *exp], known), spec, name, seeds, by_epoch) + _derived_note(
        recs
    )
    return Table(spec, row_values, col_values, cells, caption, name, tuple(seeds), paper is not None)


def _derived_note(recs: Sequence[Mapping[str, Any]]) -> str:
    """What the caption says of trials read from a longer trial's run (``derived_from``, ablate.sweep.prefix)."""
    read = {r.get("trial_id") for r in recs if isinstance(r.get("derived_from"), str)}
    n = len({r.get("trial_id") for r in recs})
    return (
        f" {len(read)} of {n} trials read from the first epochs of a longer trial's run (derived_from)." if read else ""
    )


def _cell_key(row: Mapping[str, Any], spec: TableSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(row values, column values) of a results row, canonical."""
    return tuple(canon(row.get(k)) for k in spec.rows), tuple(canon(row.get(k)) for k in spec.cols)


def _by_cell(rows: Iterable[Mapping[str, Any]], spec: TableSpec) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(_cell_key(r, spec), []).append(dict(r))
    return groups


def _cell(rc: tuple, rows: list[dict], spec: TableSpec, expected: int | None) -> TableCell:
    """Mean, sample std and flags over the ok rows of one cell (the paper's number is added after)."""
    ok = [r for r in rows if r.get("status") == "ok" and finite(r.get(spec.metric))]
    vals = [float(r[spec.metric]) * spec.scale for r in ok]
    top5 = [float(r[spec.top5]) * spec.scale for r in ok if spec.top5 and finite(r.get(spec.top5))]
    flags = {s for s in ("diverged", "failed") if any(r.get("status") == s for r in rows)}
    stopped = tuple(sorted(int(r.get(ENDED_AT, r["epoch"])) for r in rows if r.get("status") == COLLAPSED_STOPPED))
    if stopped:
        flags.add("stopped")
    if any(r.get("collapsed") is True or r.get("collapsed") == 1 for r in ok):
        flags.add("collapsed")
    if not vals and not stopped:
        flags.add("missing")
    mean = sum(vals) / len(vals) if vals else None
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    trial_ids = tuple(sorted({str(r["trial_id"]) for r in rows if r.get("trial_id")}))
    return TableCell(
        rc[0],
        rc[1],
        mean,
        std,
        len(vals),
        expected,
        frozenset(flags),
        sum(top5) / len(top5) if top5 else None,
        None,
        trial_ids,
        stopped,
    )


def _caption(text: str, spec: TableSpec, sweep: str, seeds: list[int], by_epoch: bool) -> str:
    """The sweep file's caption ``text`` (its fields filled), the sweep's name, then what the cells hold."""
    title = f"{text} ({sweep})" if text else sweep
    protocol = PROTOCOLS.get(spec.metric, spec.metric)
    scale = f" x{spec.scale:g}" if spec.scale != 1 else ""
    what = f"{_metric_name(spec)}{scale}" + (f", {protocol}" if spec.metric in PROTOCOLS else "")
    at = "at the shown epochs" if by_epoch else "at the final epoch"
    if spec.over_epochs != "final" and not by_epoch:
        at = over_epochs_text(spec.over_epochs)
    paper = f"; paper: {spec.paper}" if spec.paper else ""
    n = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
    return f"{title}. {what}; mean ± std over {n} {at}, n = seeds per cell{paper}."


# ---------------------------------------------------------------- the sweep as a whole
def expected_configs(sweep: Sweep | None) -> list[dict[str, Any]] | None:
    """The flat config of every trial of a loaded sweep's expansion (None for search sweeps, or no sweep)."""
    if sweep is None or sweep.search:
        return None
    return [flatten(to_dict(t.config)) for t in sweep.trials]
