"""Paper-shaped tables from a sweep's results.

A sweep file's ``table:`` block (:class:`TableSpec`) names the config keys whose values form the
rows and the columns and the metric that fills the cells. :func:`build_table` turns the results
(one row per trial and evaluated epoch, see ``ablate.results``) into a :class:`Table`: one cell per
combination of row and column values with mean +- sample std over seeds of the final epoch's
metric, the number of seeds, flags (missing, diverged, collapsed, failed) and, optionally, the
paper's number (``ablate.paper``) and the difference. :func:`render` prints it for the terminal,
Markdown, LaTeX, CSV or HTML.

Protocol: the paper reports the best linear-probe accuracy over the 50 probe epochs
(``probe_top1_best``, the default metric); ``probe_top1`` is the accuracy after the last probe
epoch. :func:`with_protocol` switches between the two.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Optional, Sequence

import pandas as pd

from ablate.errors import UserError
from ablate.paper import PaperCell, PaperRef, canon, load_paper, parse_value

__all__ = ["TableSpec", "Cell", "Table", "build_table", "render", "with_protocol", "print_table",
           "expected_configs", "axis_label", "PaperRef", "PaperCell", "load_paper", "FORMATS"]

FORMATS = ("terminal", "markdown", "latex", "csv", "html")
PROTOCOLS = {"probe_top1_best": "best of probe epochs (paper)", "probe_top1": "final probe epoch"}
EPOCH = "epoch"  # the one table axis that is a results column, not a config key (Table 8)


@dataclass(frozen=True)
class TableSpec:
    """The ``table:`` block of a sweep file: which config keys form rows / columns, which metric fills cells."""

    rows: tuple[str, ...] = field(default=(), metadata={"doc": "config keys (dotted) whose values form the table's rows"})
    cols: tuple[str, ...] = field(default=(), metadata={"doc": "config keys (dotted) whose values form the table's columns"})
    metric: str = field(default="probe_top1_best", metadata={"doc": "result column that fills the cells"})
    paper: Optional[str] = field(default=None, metadata={"doc": "id of the paper table in results/paper/ (e.g. table6); several: 'table5,table3' (first match wins)"})
    caption: str = field(default="", metadata={"doc": "caption text"})
    labels: dict = field(default_factory=dict, metadata={"doc": "display names: {'ema.tau=0.0': 'no EMA', 'ema.tau': 'EMA'}; 'k1=v1;k2=v2' labels a combination"})
    scale: float = field(default=100.0, metadata={"doc": "multiply the metric for display (accuracy -> percent)"})
    top5: Optional[str] = field(default=None, metadata={"doc": "second metric shown as Top-1 / Top-5 in each cell (Table 9: probe_top5)"})
    epochs: tuple[int, ...] = field(default=(), metadata={"doc": "with 'epoch' as a row/col axis: the epochs to show (Table 8 from one long run per seed)"})
    digits: int = field(default=2, metadata={"doc": "decimals shown", "min": 0, "max": 6})


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
class Cell:
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
    cells: dict[tuple[tuple[str, ...], tuple[str, ...]], Cell]  # only cells the sweep has
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

    def get(self, row_label: str, col_label: str) -> Cell:
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
    to its display name. Values are canonical (:func:`ablate.paper.canon`); a null value (a key
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
            raise UserError(f"table: {k!r} is not a column of the results; use a dotted config key "
                            f"(e.g. predictor.rho) or a metric column (e.g. probe_top1_best)")
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


def order_tuples(tuples: Iterable[tuple[str, ...]], first_seen: list[tuple[str, ...]], n_keys: int
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


def _finite(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def build_table(df: pd.DataFrame, spec: TableSpec, paper: PaperRef | None = None,
                expected: Sequence[Mapping[str, Any]] | None = None, sweep: str | None = None) -> Table:
    """Cells of ``spec`` from the results ``df`` (``ablate.results.read_results``).

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
    key = lambda r: (tuple(canon(r.get(k)) for k in spec.rows), tuple(canon(r.get(k)) for k in spec.cols))  # noqa: E731
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        groups.setdefault(key(r), []).append(r)
    exp_groups: dict[tuple, list[dict]] = {}
    for r in exp:
        exp_groups.setdefault(key(r), []).append(r)
    seen = [key(r) for r in exp]
    row_values = order_tuples([k[0] for k in [*seen, *groups]], [k[0] for k in seen], len(spec.rows))
    col_values = order_tuples([k[1] for k in [*seen, *groups]], [k[1] for k in seen], len(spec.cols))
    design = set(exp_groups) | set(groups) if expected is not None else {(r, c) for r in row_values for c in col_values}
    tables = [t.strip() for t in (spec.paper or "").split(",") if t.strip()] or (paper.tables() if paper else [])
    cells = {}
    for rc in design:
        rs = groups.get(rc, [])
        ok = [r for r in rs if r.get("status") == "ok" and _finite(r.get(spec.metric))]
        vals = [float(r[spec.metric]) * spec.scale for r in ok]
        top5 = [float(r[spec.top5]) * spec.scale for r in ok if spec.top5 and _finite(r.get(spec.top5))]
        flags = {s for s in ("diverged", "failed") if any(r.get("status") == s for r in rs)}
        if any(r.get("collapsed") is True or r.get("collapsed") == 1 for r in ok):
            flags.add("collapsed")
        if not vals:
            flags.add("missing")
        mean = sum(vals) / len(vals) if vals else None
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
        contexts = rs + exp_groups.get(rc, [])
        cells[rc] = Cell(rc[0], rc[1], mean, std, len(vals), len(exp_groups.get(rc, [])) if expected is not None else None,
                         frozenset(flags), sum(top5) / len(top5) if top5 else None,
                         paper.find(tables, contexts) if paper else None,
                         tuple(sorted({str(r["trial_id"]) for r in rs if r.get("trial_id")})))
    seeds = sorted({int(r["seed"]) for r in [*recs, *exp] if _finite(r.get("seed"))})
    name = sweep or next((str(r["sweep"]) for r in recs if isinstance(r.get("sweep"), str) and r["sweep"]), "results")
    return Table(spec, row_values, col_values, cells, _caption(spec, name, seeds, by_epoch), name,
                 tuple(seeds), paper is not None)


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
def expected_configs(sweep: Any) -> list[dict[str, Any]] | None:
    """The flat config of every trial of a loaded sweep's expansion (None for search sweeps)."""
    if getattr(sweep, "search", None):
        return None
    from ablate.configtree import flatten, to_dict
    from ablate.expand import expand

    return [flatten(to_dict(t.config)) for t in expand(sweep)]


def print_table(results_dir: str | Path, sweep: Any, *, fmt: str = "terminal", paper: bool | str | Path = False,
                protocol: Literal["best", "final"] | None = None) -> str:
    """``ablate table``: the sweep's table from its results folder, rendered in ``fmt``.

    ``paper``: True for the shipped reference file, or the path of another one."""
    from ablate.results import read_results

    spec = getattr(sweep, "table", None)
    if spec is None:
        raise UserError(f"sweep {sweep.name!r} has no table: block; add one (rows, cols, metric) to the sweep file")
    spec = with_protocol(spec, protocol)
    root = Path(results_dir)
    df = read_results(root) if root.exists() else pd.DataFrame()
    ref = None if paper is False else load_paper(None if paper is True else paper)
    return render(build_table(df, spec, ref, expected_configs(sweep), sweep.name), fmt)


def render(table: Table, fmt: str = "terminal") -> str:
    """The table as text: terminal (default), markdown, latex, csv or html."""
    from ablate import render as r

    fn = {"terminal": r.terminal, "markdown": r.markdown, "latex": r.latex, "csv": r.csv_text, "html": r.html}.get(fmt)
    if fn is None:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fn(table)
