"""The one reader and the one writer of results, for a local path or a URI alike.

:func:`read_rows` reads a results folder (or one trial file) into a DataFrame; :func:`final_rows`
keeps each trial's final row; :class:`ResultsStore` is what ``ablate run``'s driver writes rows
through (every file replaced atomically, :meth:`ablate.results.location.Location.write_bytes`, so a
reader never sees half a file); :class:`ArtifactStore` keeps a trial's weights.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ablate.results.layout import SweepDir, is_trial_file
from ablate.results.location import Location
from ablate.results.schema import to_table

FINISHED = ("ok", "diverged")  # a final row with these statuses means: do not run again


def read_rows(where: "str | Path | Location | SweepDir", schema: pa.Schema | None = None,
              columns: list[str] | None = None) -> pd.DataFrame:
    """All rows of a results folder, or of one ``.parquet`` file, as a DataFrame; empty if there are none.

    With ``schema``, files written before a column was added read with that column null."""
    loc = where.loc if isinstance(where, SweepDir) else Location.parse(where)
    files = [loc] if loc.is_file() else [c for c in loc.children() if is_trial_file(c.name)]
    if not files:
        return pd.DataFrame()
    dataset = pads.dataset([f.path for f in files], filesystem=loc.fs, format="parquet", schema=schema)
    return dataset.to_table(columns=columns).to_pandas()


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Each trial's final row (``is_final``), once per trial even where a resumed trial wrote two."""
    if df.empty:
        return df
    final = df[df["is_final"].fillna(False).astype(bool)]
    return final.drop_duplicates("trial_id", keep="last") if "trial_id" in final.columns else final


def write_table(loc: Location, table: pa.Table) -> None:
    """``table`` as a Parquet file at ``loc``, atomically."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    loc.write_bytes(buf.getvalue())


def move_aside(folder: SweepDir) -> SweepDir | None:
    """``--restart``: move the folder to ``<name>.old-<time>`` beside it (never delete it); None when
    there is nothing to move."""
    if not folder.loc.exists():
        return None
    backup = folder.backup()
    folder.loc.move_to(backup.loc)
    return backup


@dataclass
class ResultsStore:
    """Reads and writes the trial files of one sweep's results folder."""

    dir: SweepDir
    schema: pa.Schema
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def finished_ids(self) -> set[str]:
        """Trials whose final row is in the results with status ok or diverged."""
        final = final_rows(read_rows(self.dir, columns=["trial_id", "is_final", "status"]))
        return set(final.loc[final["status"].isin(FINISHED), "trial_id"]) if not final.empty else set()

    def load_rows(self, trial_id: str) -> list[dict[str, Any]]:
        if trial_id not in self.rows:
            f = self.dir.trial_file(trial_id)
            # Arrow, not pandas: keeps nulls as None (pandas would turn a null string into NaN). Columns
            # of an older schema that the current one dropped are left out, so old rows still write.
            names = set(self.schema.names)
            rows = pq.read_table(f.path, filesystem=f.fs).to_pylist() if f.exists() else []
            self.rows[trial_id] = [{k: v for k, v in r.items() if k in names} for r in rows]
        return self.rows[trial_id]

    def add(self, row: dict[str, Any]) -> None:
        """Record a row of a trial and rewrite its file atomically."""
        self.add_many([row])

    def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Record rows (in order) and rewrite each touched trial's file once, atomically."""
        touched = [self._merge(row) for row in rows]
        for tid in dict.fromkeys(touched):
            write_table(self.dir.trial_file(tid), to_table(self.rows[tid], self.schema))

    def _merge(self, row: dict[str, Any]) -> str:
        """Fold one row into its trial's rows in memory; return the trial id.

        A row replaces earlier rows of the same or a later epoch (a trial resumed from a checkpoint
        reports those epochs again) and any earlier ``failed`` row (a retry that gets further)."""
        tid = row["trial_id"]
        epoch = row.get("epoch")
        kept = [r for r in self.load_rows(tid) if r.get("status") != "failed"
                and not (epoch is not None and r.get("epoch") is not None and r["epoch"] >= epoch)]
        if row.get("status") == "failed":  # keep the epochs reached before the failure
            kept = [r for r in self.load_rows(tid) if r.get("status") != "failed"]
            for r in kept:
                r["is_final"] = False
        kept.append(row)
        self.rows[tid] = kept
        return tid


@dataclass(frozen=True)
class ArtifactStore:
    """Files a trial leaves besides its rows, under one folder (``<results>/_weights/<trial_id>/``).

    ``save(name, obj)`` writes ``torch.save(obj)`` atomically (a half-written weights file never
    appears under its final name) and returns where it went."""

    loc: Location

    def save(self, name: str, obj: Any) -> str:
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        target = self.loc / name
        target.write_bytes(buf.getvalue())
        return str(target)
