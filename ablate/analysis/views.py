"""What the Python API hands back for a table: :class:`TableView`, and the layout it is built from."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ablate.analysis.cells import holds, label_values
from ablate.analysis.render import render
from ablate.analysis.tables import Table, TableCell
from ablate.config.tree import flatten, to_dict
from ablate.errors import UserError
from ablate.sweep.table_block import TableSpec
from ablate.sweep.validated import Sweep


@dataclass(frozen=True)
class TableView:
    """A built table (:class:`ablate.analysis.tables.Table`) that renders itself: ``str()`` /
    ``repr()`` give the terminal form, Jupyter shows the HTML form, ``render(fmt)`` any of terminal,
    markdown, latex, csv, html; ``to_frame()`` the cells as a DataFrame; ``cell(row, col)`` one cell.
    ``notes``: what the results folder held besides the table's trials (other runs, skipped files);
    ``repr()`` shows them under the table, ``render()`` leaves them out (a CSV stays a CSV)."""

    table: Table
    notes: tuple[str, ...] = ()

    def render(self, fmt: str = "terminal") -> str:
        return render(self.table, fmt)

    def __str__(self) -> str:
        return self.render("terminal")

    def __repr__(self) -> str:
        return "\n".join([self.render("terminal"), *self.notes])

    def _repr_html_(self) -> str:
        return self.render("html")

    def _repr_markdown_(self) -> str:
        return self.render("markdown")

    def cell(self, row: str, col: str | None = None) -> TableCell:
        """The cell under the displayed row and column labels (one column: ``col`` may be left out)."""
        t = self.table
        if col is None:  # the one column; a table with no cells names none (get says what there is)
            col = t.col_label(t.col_values[0]) if len(t.col_values) == 1 else ""
        return t.get(row, col)

    def to_frame(self) -> pd.DataFrame:
        """One row per cell: row and column labels, mean, std, n (seeds), expected, flags, paper, diff."""
        t = self.table
        out = []
        for r in t.row_values:
            for c in t.col_values:
                cell = t.cells.get((r, c))
                if cell is None:
                    continue
                out.append(
                    {
                        "row": t.row_label(r),
                        "col": t.col_label(c),
                        "mean": cell.mean,
                        "std": cell.std,
                        "n": cell.n,
                        "expected": cell.expected,
                        "flags": ",".join(sorted(cell.flags)),
                        "paper": cell.paper.mean if cell.paper else None,
                        "diff": cell.diff,
                    }
                )
        return pd.DataFrame(out)


def table_spec(
    sweep: Sweep | None,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    metric: str | None = None,
    fields: Mapping[str, Any] | None = None,
    *,
    required: bool = True,
) -> TableSpec:
    """The sweep's ``table:`` block (a default one when there is none), changed by ``rows`` / ``cols``
    / ``metric`` / any other :class:`TableSpec` field. ``required``: a sweep without a table block and
    nothing to lay one out is a mistake (``ablate table``), not an empty table."""
    fields = dict(fields or {})
    spec = sweep.table if sweep is not None else None
    given = any(p == "table" or p.startswith("table.labels") for p in sweep.overridden) if sweep else True
    if spec is not None and sweep.overrides and sweep.trials and not given:
        spec = dataclasses.replace(spec, labels=labels_of_run(spec.labels, sweep))
    if spec is None and required and sweep is not None and rows is None and cols is None:
        raise UserError(f"sweep {sweep.name!r} has no table: block; add one (rows, cols, metric) to the sweep file")
    changes = {k: tuple(v) for k, v in (("rows", rows), ("cols", cols)) if v is not None}
    if metric is not None:
        changes["metric"] = metric
    known = [f.name for f in dataclasses.fields(TableSpec)]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise UserError(f"table: unknown option {unknown[0]!r}; TableSpec fields are {', '.join(known)}")
    return dataclasses.replace(spec or TableSpec(), **changes, **fields)


def labels_of_run(labels: Mapping[str, Any], sweep: Sweep) -> dict[str, Any]:
    """The sweep file's ``labels`` less those of config values that no trial of this run has because a
    ``--set`` override changed where that key's values come from (a shorter grid): no mistake in the
    file. Every other label is left for :func:`ablate.analysis.cells.check_labels` to check."""
    configs = [flatten(to_dict(t.config)) for t in sweep.trials]
    kept = {}
    for label, text in labels.items():
        values = label_values(label)
        stale = set(values) <= set(configs[0]) and not any(holds(values, c) for c in configs)
        if not (stale and any(_touches(p, k) for p in sweep.overridden for k in values)):
            kept[label] = text
    return kept


def _touches(path: str, key: str) -> bool:
    """Whether overriding the sweep file's ``path`` (``grid.ema.tau``, ``base.predictor``, ``cases``)
    may change which values config ``key`` takes."""
    root, _, rest = path.partition(".")
    if root in ("cases", "cases_mode") or (root in ("grid", "base") and not rest):
        return True
    return root in ("grid", "base") and (key == rest or key.startswith(rest + ".") or rest.startswith(key + "."))
