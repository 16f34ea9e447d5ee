"""The report's "Probe protocols" section: every cell of a probe table under each ``--protocol`` side
by side (best, final, max, top5; :mod:`ablate.analysis.protocols`), so a reader comparing with the
paper sees how much the choice of the probe number moves each cell."""

from __future__ import annotations

import pandas as pd

from ablate.analysis.protocols import PROTOCOLS, with_protocol
from ablate.analysis.render import stat_text
from ablate.analysis.report_blocks import Block, Grid
from ablate.analysis.tables import build_table
from ablate.sweep.table_block import TableSpec

SHOWN = ("best", "final", "max", "top5")
ABOUT = (
    "The same cells under each probe protocol: best, the best of the probe epochs at the final pretraining epoch "
    "(the paper's text, and what --paper compares); final, the last probe epoch; max, the best over every evaluated "
    "pretraining epoch; top5, the mean of the 5 best (the authors' analysis tool's default when the paper appeared)."
)


def protocol_grid(df: pd.DataFrame, spec: TableSpec, name: str) -> Grid | None:
    """Rows: the table's cells; columns: the protocols of :data:`SHOWN`; None for a table of no probe metric."""
    if df.empty or spec.metric not in PROTOCOLS:
        return None
    tables = [build_table(df, with_protocol(spec, p), None, None, name) for p in SHOWN]
    first = tables[0]
    rows = []
    for r in first.row_values:
        for c in first.col_values:
            if (r, c) not in first.cells:
                continue
            label = " / ".join(x for x in (first.row_label(r), first.col_label(c) if spec.cols else "") if x)
            rows.append((label or name, *(stat_text(t.cells[r, c], spec.digits) for t in tables)))
    return Grid(("cell", *SHOWN), tuple(rows))


def protocol_blocks(df: pd.DataFrame, spec: TableSpec, name: str) -> list[Block]:
    """The section (heading, what the columns are, the grid), or nothing for a table of no probe metric."""
    grid = protocol_grid(df, spec, name)
    return [("h2", "Probe protocols"), ("p", ABOUT), ("grid", grid)] if grid is not None and grid.rows else []
