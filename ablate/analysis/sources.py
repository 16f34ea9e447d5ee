"""What the analysis commands read: the rows (and the sweep, when known) that a source names.

A source is a results DataFrame, a results folder (a path or a URI, which keeps its sweep file), one
trial's ``.parquet`` file, a sweep file or a loaded Sweep. Every read goes through the one reader,
:func:`ablate.results.io.scan`; when the sweep is known only its expansion's trials are read (a
folder may also hold the trials of the same sweep run with other ``--set`` overrides), and what was
left out is said in :attr:`Source.notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.errors import UserError
from ablate.results.io import Expect, Holdings, scan
from ablate.results.layout import SweepDir
from ablate.results.location import Location
from ablate.sweep.load import is_sweep_source, locate
from ablate.sweep.members import membership
from ablate.sweep.validated import Sweep


@dataclass(frozen=True)
class Source:
    """The rows a source names, its sweep and results folder where known, and what was left out."""

    rows: pd.DataFrame
    sweep: Sweep | None = None
    folder: SweepDir | None = None
    notes: tuple[str, ...] = ()
    held: Holdings | None = field(default=None, repr=False)

    def shared_notes(self) -> tuple[str, ...]:
        """:attr:`notes` for a page that is read elsewhere (``ablate report``): the folder named by its
        name, not by where it is on this machine."""
        if self.held is None or self.folder is None:
            return self.notes
        return tuple(self.held.notes(f"results folder {self.folder.name}"))

    def require_rows(self, source: Any) -> pd.DataFrame:
        """The rows; none is a mistake for a command that shows results (there is nothing to show)."""
        if not self.rows.empty:
            return self.rows
        where = self.folder.display() if self.folder is not None else "the results"
        if isinstance(source, (str, Path)) and self.folder is None:
            where = source
        fix = f"ablate run {self.sweep.path}" if self.sweep is not None and self.sweep.path else "ablate run <sweep>"
        also = f" ({self.notes[0].split(': ', 1)[1]})" if self.notes else ""
        raise UserError(f"{where}: no results of this sweep yet{also}; run it first: {fix}")


def sweep_holdings(sweep: Sweep, folder: SweepDir) -> Holdings:
    """The rows of ``sweep``'s trials in ``folder``, the other trials there, the files skipped."""
    return scan(folder, Expect(sweep.name, sweep.trial_kind.schema, membership(sweep)))


def sweep_source(source: Any, storage: Any = None) -> Source:
    """The rows of a source that must name a sweep (a sweep file, a results folder, a Sweep)."""
    sweep, folder = locate(source, storage)
    held = sweep_holdings(sweep, folder)
    return Source(held.rows, sweep, folder, tuple(held.notes(folder.display())), held)


def read_source(source: Any, sweep: Any = None, storage: Any = None) -> Source:
    """The rows of ``source``; ``sweep`` names the sweep of a bare DataFrame or file."""
    known = locate(sweep)[0] if sweep is not None else None
    if isinstance(source, pd.DataFrame):
        return Source(source, known)
    if is_sweep_source(source):
        found = sweep_source(source, storage)
        return Source(found.rows, known or found.sweep, found.folder, found.notes)
    loc = Location.parse(source)
    if not loc.exists():
        raise UserError(f"{source}: no such results folder, Parquet file or sweep file")
    held = scan(loc)
    return Source(held.rows, known, None, tuple(held.notes(loc.display())))


def rows_to_compare(source: Any) -> pd.DataFrame:
    """The rows of a compared source; a folder with none is a mistake (nothing to compare yet)."""
    return read_source(source).require_rows(source)
