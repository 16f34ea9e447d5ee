"""The one reader and the one writer of results, for a local path or a URI alike.

:func:`read_rows` reads a results folder (or one trial file) into a DataFrame; :func:`final_rows`
keeps each trial's final row; :class:`ResultsStore` is what ``ablate run``'s driver writes rows
through (every file replaced atomically, :meth:`ablate.results.location.Location.write_bytes`, so a
reader never sees half a file); :class:`ArtifactStore` keeps a trial's weights.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ablate.results.layout import BENCH_DIR, TRIAL_SUFFIX, SweepDir, is_trial_file
from ablate.results.location import Location
from ablate.results.schema import COLLAPSED_STOPPED, to_table

FINISHED = ("ok", "diverged")  # a final row with these statuses means: do not run again


@dataclass(frozen=True)
class Expect:
    """What every trial file of one sweep's folder must be: rows of ``sweep`` in ``schema``, and one of
    the expansion's trials (``belongs(trial_id, row)``, :func:`ablate.sweep.expand.membership`)."""

    sweep: str
    schema: pa.Schema
    belongs: Callable[[str, Mapping[str, Any]], bool] = lambda trial_id, row: True


@dataclass(frozen=True)
class Skipped:
    """A trial file no reader uses: damaged, or another sweep's / trial's rows (``why`` says which)."""

    name: str
    why: str


@dataclass(frozen=True)
class Holdings:
    """What a results folder holds: the rows of the expected trials, the trial ids of the sweep's
    other runs (other ``--set`` overrides) that the folder also holds, and the files skipped."""

    rows: pd.DataFrame
    others: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    def notes(self, where: Any) -> list[str]:
        """One line per thing a reader of ``where`` should know it is not seeing."""
        lines = []
        if self.others:
            n = len(self.others)
            lines.append(
                f"{where}: also holds {n} trial{'s' if n > 1 else ''} of this sweep run with other "
                "settings (other --set overrides); not counted here"
            )
        for s in self.skipped[:5]:
            lines.append(f"{where}: skipped {s.name}: {s.why}")
        if len(self.skipped) > 5:
            lines.append(f"{where}: skipped {len(self.skipped) - 5} more files like these")
        return lines

    def finished(self, stopped_count: bool = False) -> set[str]:
        """Trials whose final row has status ok or diverged (with ``stopped_count``, also trials the
        sweep's stop_collapsed ended): a run does not run them again."""
        final = final_rows(self.rows)
        statuses = (*FINISHED, COLLAPSED_STOPPED) if stopped_count else FINISHED
        return set(final.loc[final["status"].isin(statuses), "trial_id"]) if not final.empty else set()


def scan(
    where: str | Path | Location | SweepDir, expect: Expect | None = None, columns: list[str] | None = None
) -> Holdings:
    """Read a results folder (or one ``.parquet`` file) file by file, keeping what ``expect`` allows.

    Each file is read in ONE open (bytes, then parsed): the run replaces files by rename, so a reader
    gets the old file or the new one whole, never a mix (a plain ``pyarrow.parquet.read_table(path)``
    opens the file twice, footer then pages, and can straddle a rename). A file that is not Parquet,
    lacks the identity columns, holds rows of another trial or sweep, or cannot take ``expect``'s
    schema is skipped and named in :attr:`Holdings.skipped`, never read into a cell."""
    loc = where.loc if isinstance(where, SweepDir) else Location.parse(where)
    files = [loc] if loc.is_file() else [c for c in loc.children() if is_trial_file(c.name)]
    tables, others, skipped = [], [], []
    for f in files:
        try:
            table = _trial_table(f, expect)
        except _Foreign as e:
            skipped.append(Skipped(f.name, str(e)))
            continue
        trial_id = f.name.removesuffix(TRIAL_SUFFIX)
        if expect is not None and table.num_rows and not expect.belongs(trial_id, table.slice(0, 1).to_pylist()[0]):
            others.append(trial_id)
            continue
        tables.append(table)
    if not tables:
        return Holdings(pd.DataFrame(), tuple(others), tuple(skipped))
    table = pa.concat_tables(tables, promote_options="permissive")
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return Holdings(table.to_pandas(), tuple(others), tuple(skipped))


class _Foreign(Exception):
    """A trial file that is not one of the expected sweep's trial files (the message says why)."""


IDENTITY = ("trial_id", "status", "is_final")  # what any trial file has, whatever its kind


def _trial_table(f: Location, expect: Expect | None) -> pa.Table:
    try:
        table = pq.read_table(pa.BufferReader(f.read_bytes()))
    except (pa.ArrowException, OSError) as e:
        # pyarrow's first sentence after the source name: "Parquet magic bytes not found in footer"
        reason = str(e).splitlines()[0].split("': ", 1)[-1].split(". ")[0][:120]
        raise _Foreign(f"not a readable Parquet file ({reason})") from None
    missing = [c for c in IDENTITY if c not in table.column_names]
    if missing:
        raise _Foreign(f"not a trial file of ablate (no column {missing[0]!r})")
    if expect is None:  # a folder of Parquet files the user made: any file, any rows
        return table
    stem = f.name.removesuffix(TRIAL_SUFFIX)
    if set(table.column("trial_id").to_pylist()) - {stem}:
        raise _Foreign(f"holds rows of another trial than {stem} (a renamed or copied file)")
    names = set(table.column("sweep").to_pylist()) if "sweep" in table.column_names else {None}
    if names - {expect.sweep}:
        other = sorted(map(str, names - {expect.sweep}))[0]
        raise _Foreign(f"holds rows of sweep {other!r}, not of {expect.sweep!r} (copied from another folder?)")
    return _conform(table, expect.schema)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: columns an older schema lacked read as null, columns it no longer has are
    dropped; a column of another type (another trial kind's file) makes it foreign."""
    arrays = []
    for column in schema:
        if column.name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, column.type))
            continue
        try:
            arrays.append(table.column(column.name).cast(column.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            have = table.schema.field(column.name).type
            raise _Foreign(
                f"column {column.name!r} is {have}, not {column.type} (another kind's or version's file)"
            ) from None
    return pa.Table.from_arrays(arrays, schema=schema)


def read_rows(
    where: str | Path | Location | SweepDir, expect: Expect | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """All usable rows of a results folder, or of one ``.parquet`` file (:func:`scan`); empty if none."""
    return scan(where, expect, columns).rows


def newest_bench_row(device_type: str, section: str, what: str, bench_dir: Path | None = None) -> dict | None:
    """The figure ``what`` of ``section`` in the newest ``ablate bench`` result of ``device_type``
    (``results/bench/bench-<time>-<device>.parquet``), with the file's name as ``file``; None if none."""
    folder = Path(bench_dir) if bench_dir is not None else BENCH_DIR
    for path in sorted(folder.glob(f"bench-*-{device_type}.parquet"), reverse=True):
        try:
            df = pq.read_table(pa.BufferReader(path.read_bytes())).to_pandas()
        except (pa.ArrowException, OSError):
            continue  # a damaged file does not stop an estimate
        hit = (
            df[(df["section"] == section) & (df["what"] == what)] if {"section", "what"} <= set(df.columns) else df[:0]
        )
        if len(hit):
            return {**hit.iloc[0].to_dict(), "file": path.name}
    return None


def final_mask(df: pd.DataFrame) -> pd.Series:
    """Which rows end their trial: ``is_final`` true (a null, in rows that never said, is not final).
    The one rule every reader of final rows applies."""
    if "is_final" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["is_final"].fillna(False).astype(bool)


def final_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Each trial's final row (:func:`final_mask`), once per trial even where a resumed trial wrote two
    (the later one: the rows are in the order they were written)."""
    if df.empty:
        return df
    final = df[final_mask(df)]
    return final.drop_duplicates("trial_id", keep="last") if "trial_id" in final.columns else final


def write_table(loc: Location, table: pa.Table) -> None:
    """``table`` as a Parquet file at ``loc``, atomically."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    loc.write_bytes(buf.getvalue())


def move_aside(folder: SweepDir) -> SweepDir | None:
    """``--restart``: move the folder and its companion to ``<name>.old-<time>`` / ``_<name>.old-<time>``
    beside them (never delete them); None when there is nothing to move."""
    backup = folder.backup()
    moves = [
        (here, there)
        for here, there in ((folder.loc, backup.loc), (folder.companion, backup.companion))
        if here.exists()
    ]
    for here, there in moves:
        here.move_to(there)
    return backup if moves else None


@dataclass
class ResultsStore:
    """Reads and writes the trial files of one sweep's results folder."""

    dir: SweepDir
    expect: Expect
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def schema(self) -> pa.Schema:
        return self.expect.schema

    def holdings(self) -> Holdings:
        """The expansion's rows so far (identity columns only), the other runs' trials, the skipped files."""
        return scan(self.dir, self.expect, columns=["trial_id", "is_final", "status", "epoch"])

    def set_aside(self, skipped: tuple[Skipped, ...]) -> list[str]:
        """Move skipped files to ``_<sweep>/damaged/`` (never delete them), so their trials run again and the
        folder reads as a clean dataset; one line per file moved."""
        lines = []
        for s in skipped:
            target = self.dir.damaged / s.name
            (self.dir.loc / s.name).move_to(target)
            lines.append(f"moved {s.name} to {target} ({s.why}); if it was one of this sweep's trials, it runs again")
        return lines

    def load_rows(self, trial_id: str) -> list[dict[str, Any]]:
        if trial_id not in self.rows:
            f = self.dir.trial_file(trial_id)
            # Arrow, not pandas: keeps nulls as None (pandas would turn a null string into NaN). Columns
            # of an older schema that the current one dropped are left out, so old rows still write.
            names = set(self.schema.names)
            rows = pq.read_table(pa.BufferReader(f.read_bytes())).to_pylist() if f.exists() else []
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
        kept = [
            r
            for r in self.load_rows(tid)
            if r.get("status") != "failed"
            and not (epoch is not None and r.get("epoch") is not None and r["epoch"] >= epoch)
        ]
        if row.get("status") == "failed":  # keep the epochs reached before the failure
            kept = [r for r in self.load_rows(tid) if r.get("status") != "failed"]
            for r in kept:
                r["is_final"] = False
        kept.append(row)
        self.rows[tid] = kept
        return tid


@dataclass(frozen=True)
class ArtifactStore:
    """Files a trial leaves besides its rows, under one folder (``<storage>/_<sweep>/weights/<trial_id>/``).

    ``save(name, obj)`` writes ``torch.save(obj)`` atomically (a half-written weights file never
    appears under its final name) and returns where it went. ``readouts``: (epochs, store) of the
    shorter trials read from this trial's run, whose weights go to their own folders."""

    loc: Location
    readouts: tuple[tuple[int, ArtifactStore], ...] = ()

    def save(self, name: str, obj: Any) -> str:
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        target = self.loc / name
        target.write_bytes(buf.getvalue())
        return str(target)
