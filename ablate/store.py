"""A sweep's results folder: rows per trial, what is done, the run lock, restart backups.

Layout of ``<storage>/<sweep>/``:
  ``<trial_id>.parquet``  that trial's rows (atomic replace on every new row)
  ``_sweep.yaml``         the sweep file as it was run (``ablate status`` / ``table`` read it)
  ``_lock``               held by the running ``ablate run`` (pid inside)
  ``_logs/``              Ray's and Tune's logs
Names starting with ``_`` are skipped by Arrow's dataset discovery, so the folder itself stays a
clean Parquet dataset.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ablate.errors import UserError
from ablate.results import read_results, trial_path, write_trial

FINISHED = ("ok", "diverged")  # a final row with these statuses means: do not run again


@dataclass
class RunLock:
    """An exclusive flock on ``_lock``: a second ``ablate run`` of the same sweep refuses to start."""

    path: Path
    _fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"{self.path.parent}: another `ablate run` of this sweep is running ({holder}); "
                            "wait for it to finish or stop it, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {dt.datetime.now().isoformat(timespec='seconds')}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@dataclass
class ResultsStore:
    """Reads and writes one sweep's results folder."""

    root: Path
    schema: pa.Schema
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def lock(self) -> RunLock:
        return RunLock(self.root / "_lock")

    def move_aside(self) -> Path | None:
        """``--restart``: rename the old folder to ``<name>.old-<timestamp>`` (never delete it)."""
        if not self.root.exists():
            return None
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        backup = self.root.with_name(f"{self.root.name}.old-{stamp}")
        self.root.rename(backup)
        return backup

    def finished_ids(self) -> set[str]:
        """Trials whose final row is in the results with status ok or diverged."""
        df = read_results(self.root) if self.root.exists() else pd.DataFrame()
        if df.empty:
            return set()
        final = df[df["is_final"].fillna(False) & df["status"].isin(FINISHED)]
        return set(final["trial_id"])

    def load_rows(self, trial_id: str) -> list[dict[str, Any]]:
        path = trial_path(self.root, trial_id)
        if trial_id not in self.rows:
            # Arrow, not pandas: keeps nulls as None (pandas would turn a null string into NaN)
            self.rows[trial_id] = pq.read_table(path).to_pylist() if path.exists() else []
        return self.rows[trial_id]

    def add(self, row: dict[str, Any]) -> None:
        """Record a row of a trial and rewrite its file atomically.

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
        write_trial(self.root, tid, kept, self.schema)
