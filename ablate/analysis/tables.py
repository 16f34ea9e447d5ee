"""Paper-shaped tables from a sweep's results.

A sweep file's ``table:`` block (:class:`ablate.sweep.schema.TableSpec`) names the config keys whose values form the
rows and the columns and the metric that fills the cells. :func:`build_table` turns the results
(one row per trial and evaluated epoch, see :mod:`ablate.results.schema`) into a :class:`Table`: one cell per
combination of row and column values with mean +- sample std over seeds of the final epoch's
metric, the number of seeds, flags (missing, diverged, collapsed, failed) and, optionally, the
paper's number (:mod:`ablate.analysis.paper`) and the difference; :mod:`ablate.analysis.render` prints
it for the terminal, Markdown, LaTeX, CSV or HTML.

Protocol: the paper reports the best linear-probe accuracy over the 50 probe epochs
(``probe_top1_best``, the default metric); ``probe_top1`` is the accuracy after the last probe
epoch. :func:`with_protocol` switches between the two.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from ablate.analysis.paper import PaperCell, PaperRef, canon, parse_value
from ablate.config.tree import flatten, to_dict
from ablate.errors import UserError
from ablate.results.schema import finite
from ablate.sweep.schema import TableSpec
from ablate.sweep.validated import Sweep

PROTOCOLS = {"probe_top1_best": "best of probe epochs (paper)", "probe_top1": "final probe epoch"}
EPOCH = "epoch"  # the one table axis that is a results column, not a config key (Table 8)


def with_protocol(spec: TableSpec, protocol: Literal["best", "final"] | None) -> TableSpec:
    """The spec with its probe metric switched to the best-of-probe-epochs or final-probe-epoch protocol."""
    if protocol is None:
        return spec
    pairs = {"best": ("probe_top1", "probe_top1_best"), "final": ("probe_top1_best", "probe_top1")}
    if protocol not in pairs:
        raise UserError(f"--protocol {protocol!r}: choose best (the paper's best of probe epochs) or final")
    old, new = pairs[protocol]
    if spec.metric not in pairs["best"]:
        raise UserError(f"--protocol applies to probe metrics; this table shows {spec.metric!r}")
    return dataclasses.replace(spec, metric=new) if spec.metric == old else spec


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
    flags: frozenset[str]  # subset of {missing, diverged, collapsed, failed}
    top5: float | None = None
    paper: PaperCell | None = None
    trial_ids: tuple[str, ...] = ()

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
        r = next(r for r in self.row_values if self.row_label(r) == row_label)
        c = next(c for c in self.col_values if self.col_label(c) == col_label)
        return self.cells[(r, c)]

    @property
    def flags(self) -> set[str]:
        return {f for c in self.cells.values() for f in c.flags}


def _metric_name(spec: TableSpec) -> str:
    return f"{spec.metric} / {spec.top5}" if spec.top5 else spec.metric


def axis_label(keys: Sequence[str], values: Sequence[str], labels: Mapping[str, Any]) -> str:
    """Display text of one row (or column): labelled combinations first, then ``key=value`` parts.

    ``labels`` maps ``"k=v"`` (or ``"k1=v1;k2=v2"``, a combination) to display text and a bare key
    to its display name. Values are canonical (:func:`ablate.analysis.paper.canon`); a null value (a key
    that does not apply to this arm, e.g. ``predictor.freq`` of a linear predictor) is left out."""
    combos: list[tuple[dict[str, str], str]] = []
    for k, text in labels.items():
        if "=" in str(k):
            pairs = [p.split("=", 1) for p in str(k).split(";")]
            combos.append(({a.strip(): canon(parse_value(b)) for a, b in pairs}, str(text)))
    combos.sort(key=lambda c: -len(c[0]))  # stable: longest combinations win, then written order
    pos = {k: i for i, k in enumerate(keys)}
    used: set[int] = set()
    parts: list[tuple[int, str]] = []
    for combo, text in combos:
        idx = [pos.get(k) for k in combo]
        if None in idx or used & set(idx) or any(values[pos[k]] != v for k, v in combo.items()):
            continue
        used |= set(idx)
        parts.append((min(idx), text))
    for i, k in enumerate(keys):
        if i not in used and values[i] != "null":
            parts.append((i, f"{labels.get(k, k.rsplit('.', 1)[-1])}={values[i]}"))
    return ", ".join(t for _, t in sorted(parts) if t)


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
    out: list[dict[str, Any]] = []
    by_epoch = EPOCH in (*spec.rows, *spec.cols)
    targets = list(spec.epochs) or sorted(int(e) for e in df.loc[df.status == "ok", "epoch"].dropna().unique())
    for _, rows in df.groupby("trial_id", sort=False):
        rows = rows.sort_values("epoch", na_position="last")
        final = rows[rows.is_final.fillna(False).astype(bool)]
        last = final.iloc[-1].to_dict() if len(final) else None
        if not by_epoch:
            if last is not None:
                out.append(last)
            continue
        for t in targets:
            at = rows[(rows.epoch == t) & (rows.status == "ok")]
            if len(at):
                out.append(at.iloc[-1].to_dict())
            elif last is not None and last["status"] != "ok" and (pd.isna(last["epoch"]) or last["epoch"] <= t):
                out.append({**last, EPOCH: t})
    return out


def _rank(value: str) -> tuple:
    num = parse_value(value)
    if isinstance(num, (int, float)) and not isinstance(num, bool):
        return (0, float(num), "")
    return (1 if value != "null" else 2, 0.0, value)


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
    return sorted(tuples, key=lambda t: tuple((ranks[i].get(v, len(ranks[i])), _rank(v)) for i, v in enumerate(t)))


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
    tables = [t.strip() for t in (spec.paper or "").split(",") if t.strip()] or (paper.tables() if paper else [])
    cells = {}
    for rc in design:
        rs, planned = groups.get(rc, []), exp_groups.get(rc, [])
        cell = _cell(rc, rs, spec, len(planned) if expected is not None else None)
        cells[rc] = dataclasses.replace(cell, paper=paper.find(tables, rs + planned)) if paper else cell
    seeds = sorted({int(r["seed"]) for r in [*recs, *exp] if finite(r.get("seed"))})
    name = sweep or next((str(r["sweep"]) for r in recs if isinstance(r.get("sweep"), str) and r["sweep"]), "results")
    caption = _caption(spec, name, seeds, by_epoch)
    return Table(spec, row_values, col_values, cells, caption, name, tuple(seeds), paper is not None)


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
    if any(r.get("collapsed") is True or r.get("collapsed") == 1 for r in ok):
        flags.add("collapsed")
    if not vals:
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
    )


def _caption(spec: TableSpec, sweep: str, seeds: list[int], by_epoch: bool) -> str:
    title = f"{spec.caption} ({sweep})" if spec.caption else sweep
    protocol = PROTOCOLS.get(spec.metric, spec.metric)
    scale = f" x{spec.scale:g}" if spec.scale != 1 else ""
    what = f"{_metric_name(spec)}{scale}" + (f", {protocol}" if spec.metric in PROTOCOLS else "")
    at = "at the shown epochs" if by_epoch else "at the final epoch"
    paper = f"; paper: {spec.paper}" if spec.paper else ""
    n = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
    return f"{title}. {what}; mean ± std over {n} {at}, n = seeds per cell{paper}."


# ---------------------------------------------------------------- the sweep as a whole
def expected_configs(sweep: Sweep | None) -> list[dict[str, Any]] | None:
    """The flat config of every trial of a loaded sweep's expansion (None for search sweeps, or no sweep)."""
    if sweep is None or sweep.search:
        return None
    return [flatten(to_dict(t.config)) for t in sweep.trials]
