"""What the analysis commands read: the rows (and the sweep, when known) that a source names.

A source is a results DataFrame, a results folder (a path or a URI, which keeps its sweep file), one
trial's ``.parquet`` file, a sweep file or a loaded Sweep; every read goes through the one reader,
:func:`ablate.results.io.read_rows`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ablate.errors import UserError
from ablate.results.io import read_rows
from ablate.results.location import Location
from ablate.sweep.load import is_sweep_source, locate
from ablate.sweep.validated import Sweep


def read_source(source: Any, sweep: Any = None, storage: Any = None) -> tuple[pd.DataFrame, Sweep | None]:
    """(the rows of ``source``, its sweep if known); ``sweep`` names the sweep of a bare DataFrame or file."""
    known = locate(sweep)[0] if sweep is not None else None
    if isinstance(source, pd.DataFrame):
        return source, known
    if is_sweep_source(source):
        found, folder = locate(source, storage)
        return read_rows(folder), known or found
    loc = Location.parse(source)
    if not loc.exists():
        raise UserError(f"{source}: no such results folder, Parquet file or sweep file")
    return read_rows(loc), known


def rows_to_compare(source: Any) -> pd.DataFrame:
    """The rows of a compared source; a folder with none is a mistake (nothing to compare yet)."""
    df, _ = read_source(source)
    if df.empty:
        raise UserError(f"{source}: has no results yet; run the sweep first (ablate run)")
    return df
