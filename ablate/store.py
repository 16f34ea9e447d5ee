"""A sweep's results folder: rows per trial, what is done, the run lock, restart backups, artifacts.

The folder may be a local or shared path or a pyarrow filesystem URI (``s3://bucket/prefix``,
``gs://...``, ``file:///...``): every access goes through :class:`Location`, a folder on a
``pyarrow.fs.FileSystem``. Layout of ``<storage>/<sweep>/``:
  ``<trial_id>.parquet``  that trial's rows (atomic replace on every new row)
  ``_sweep.yaml``         the sweep file as it was run (``ablate status`` / ``table`` read it)
  ``_lock``               held by the running ``ablate run`` (pid inside)
  ``_logs/``              Ray's and Tune's logs (local paths only; see :func:`log_dir`)
  ``_ray/``               Ray Tune's / Ray Train's trial folders and checkpoints (:mod:`ablate.checkpoints`)
  ``_weights/<trial_id>/`` the trial's trunk weights (``trunk_final.pt``, ``trunk_epoch{N}.pt``)
Names starting with ``_`` are skipped by Arrow's dataset discovery, so the folder itself stays a
clean Parquet dataset.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import io
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ablate.errors import UserError
from ablate.results import atomic_write, to_table

FINISHED = ("ok", "diverged")  # a final row with these statuses means: do not run again


# ---------------------------------------------------------------- where things are
@dataclass(frozen=True)
class Location:
    """A folder (or file) on a pyarrow filesystem: a plain path (local or a shared mount) or a URI.

    ``path`` is the path inside ``fs`` (no scheme); ``uri`` the URI form for a URI location, None for
    a plain path. ``file://`` URIs are local: they behave exactly like the path they name."""

    fs: pafs.FileSystem
    path: str
    uri: str | None = None

    @classmethod
    def parse(cls, where: "str | Path | Location") -> "Location":
        if isinstance(where, Location):
            return where
        text = str(where)
        if "://" not in text:
            return cls(pafs.LocalFileSystem(), os.path.abspath(text))
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
            raise UserError(f"storage {text!r} is not a filesystem URI pyarrow can open ({e}); "
                            "give a path or a URI such as s3://bucket/prefix") from None
        if isinstance(fs, pafs.LocalFileSystem):
            return cls(fs, os.path.abspath(path))
        return cls(fs, path.rstrip("/"), text.rstrip("/"))

    @property
    def local(self) -> Path | None:
        """The local path (plain paths and ``file://`` URIs), else None."""
        return Path(self.path) if isinstance(self.fs, pafs.LocalFileSystem) else None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def __truediv__(self, part: str) -> "Location":
        return Location(self.fs, f"{self.path.rstrip('/')}/{part}", f"{self.uri}/{part}" if self.uri else None)

    def __str__(self) -> str:
        return self.uri or self.path

    def display(self) -> Path | str:
        """What to print and hand to path-taking code: a Path when local, else the URI."""
        return self.local if self.local is not None else str(self)

    def ray_storage(self) -> str:
        """Ray's ``storage_path``: the URI for remote storage (Ray opens it with pyarrow), else the path."""
        return str(self)

    # -- queries
    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def children(self) -> list["Location"]:
        """Direct entries of a folder (none when it does not exist), sorted by name."""
        if not self.is_dir():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        return sorted((self / i.base_name for i in infos), key=lambda loc: loc.name)

    # -- reads and writes
    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def write_bytes(self, data: bytes) -> None:
        """Write atomically: a reader sees the old file or the whole new one, never a part.

        Local: a hidden temp file in the same folder + rename. Elsewhere: a hidden ``.tmp-*`` object
        + move (object stores write whole objects anyway; the move keeps other filesystems safe)."""
        if self.local is not None:
            self.local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.local.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.local)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return
        parent = self.path.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, self.path)
        finally:
            if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                self.fs.delete_file(tmp)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def mkdir(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def delete(self) -> None:
        """Remove a folder with its contents, or a file; nothing when it does not exist."""
        kind = self.info().type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(self.path)

    def move_to(self, other: "Location") -> None:
        self.fs.move(self.path, other.path)


def trial_file(root: Location, trial_id: str) -> Location:
    return root / f"{trial_id}.parquet"


def read_rows(root: "str | Path | Location", schema: pa.Schema | None = None,
              columns: list[str] | None = None) -> pd.DataFrame:
    """All rows of a results folder (any :class:`Location`) as a DataFrame; empty if there are none.

    With ``schema``, files written before a column was added read with that column null."""
    loc = Location.parse(root)
    files = [c for c in loc.children() if c.name.endswith(".parquet") and not c.name.startswith((".", "_"))]
    if not files:
        return pd.DataFrame()
    dataset = pads.dataset([f.path for f in files], filesystem=loc.fs, format="parquet", schema=schema)
    return dataset.to_table(columns=columns).to_pandas()


# ---------------------------------------------------------------- shared storage (one rule)
NODE_LOCAL_HINT = "point storage: (sweep file) or --storage at a filesystem every node mounts, or an s3:// / gs:// URI"


def storage_problem(storage: "str | Path | Location") -> str | None:
    """Why ``storage`` is NOT visible from every node of a cluster, or None when it is.

    The one rule for every multi-node launcher (``ablate run`` on a Ray cluster, ``ablate submit``
    on SLURM): :func:`ablate.cluster.storage.local_reason` (remote URIs are shared; paths under /tmp,
    /var/tmp, /dev/shm, /run and on local filesystem types are not). A ``file://`` URI is a path."""
    from ablate.cluster.storage import local_reason

    if isinstance(storage, Location):
        text = str(storage.local) if storage.local is not None else str(storage)
    else:  # not parsed: opening an s3:// filesystem asks the network (region lookup)
        text = str(storage)
        if text.startswith("file://"):
            text = pafs.FileSystem.from_uri(text)[1]
    return local_reason(text)


def storage_is_shared(storage: "str | Path | Location") -> bool:
    return storage_problem(storage) is None


# ---------------------------------------------------------------- the run lock
@dataclass
class RunLock:
    """An exclusive flock on ``_lock``: a second ``ablate run`` of the same sweep refuses to start.

    flock works on local paths and on shared POSIX filesystems that support it (NFSv4, Lustre, GPFS,
    BeeGFS); remote URIs use :class:`ObjectLock` instead."""

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
        os.pwrite(fd, _holder().encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {dt.datetime.now().isoformat(timespec='seconds')}"


@dataclass
class ObjectLock:
    """The run lock on a remote URI: a ``_lock`` object created if absent, deleted on release.

    Object stores have no flock, and pyarrow exposes no conditional (create-only) write, so this is
    a best-effort lock: two runs started within the same second may both get it (the second write
    wins; each re-reads the object and only the winner goes on, which narrows but does not close
    the window). A run killed without cleanup (SIGKILL, a lost node) leaves ``_lock`` behind; the
    refusal message says how to remove it."""

    loc: Location
    _token: str | None = None

    def acquire(self) -> None:
        if self.loc.exists():
            holder = self.loc.read_bytes().decode(errors="replace").split("\n")[0]
            raise UserError(f"{self.loc}: another `ablate run` of this sweep is running ({holder}); wait for it, "
                            f"or if no run is active (it was killed), delete {self.loc} and run again")
        token = f"{_holder()}\n{uuid.uuid4().hex}"
        self.loc.write_text(token)
        if self.loc.read_bytes().decode(errors="replace") != token:  # lost a race with another run
            raise UserError(f"{self.loc}: another `ablate run` of this sweep started at the same time; run again later")
        self._token = token

    def release(self) -> None:
        if self._token is not None:
            try:
                if self.loc.read_bytes().decode(errors="replace") == self._token:
                    self.loc.delete()
            except OSError:
                pass
            self._token = None


# ---------------------------------------------------------------- the results store
@dataclass
class ResultsStore:
    """Reads and writes one sweep's results folder (a path or a URI)."""

    location: Location | Path | str
    schema: pa.Schema
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loc = Location.parse(self.location)

    @property
    def root(self) -> Path | str:
        """The folder as a Path (local) or the URI (remote)."""
        return self.loc.display()

    @property
    def lock(self) -> RunLock | ObjectLock:
        if self.loc.local is not None:
            return RunLock(self.loc.local / "_lock")
        return ObjectLock(self.loc / "_lock")

    def move_aside(self) -> Path | str | None:
        """``--restart``: rename the old folder to ``<name>.old-<timestamp>`` (never delete it)."""
        if not self.loc.exists():
            return None
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        parent = self.loc.path.rstrip("/").rsplit("/", 1)[0]
        backup = Location(self.loc.fs, f"{parent}/{self.loc.name}.old-{stamp}",
                          f"{self.loc.uri.rsplit('/', 1)[0]}/{self.loc.name}.old-{stamp}" if self.loc.uri else None)
        self.loc.move_to(backup)
        self.rows.clear()
        return backup.display()

    def finished_ids(self) -> set[str]:
        """Trials whose final row is in the results with status ok or diverged."""
        df = read_rows(self.loc, columns=["trial_id", "is_final", "status"])
        if df.empty:
            return set()
        final = df[df["is_final"].fillna(False).astype(bool) & df["status"].isin(FINISHED)]
        return set(final["trial_id"])

    def load_rows(self, trial_id: str) -> list[dict[str, Any]]:
        if trial_id not in self.rows:
            f = trial_file(self.loc, trial_id)
            # Arrow, not pandas: keeps nulls as None (pandas would turn a null string into NaN). Columns
            # of an older schema that the current one dropped are left out, so old rows still write.
            names = set(self.schema.names)
            rows = pq.read_table(f.path, filesystem=self.loc.fs).to_pylist() if f.exists() else []
            self.rows[trial_id] = [{k: v for k, v in r.items() if k in names} for r in rows]
        return self.rows[trial_id]

    def add(self, row: dict[str, Any]) -> None:
        """Record a row of a trial and rewrite its file atomically."""
        self.add_many([row])

    def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Record rows (in order) and rewrite each touched trial's file once, atomically."""
        touched = []
        for row in rows:
            touched.append(self._merge(row))
        for tid in dict.fromkeys(touched):
            self._write(tid, to_table(self.rows[tid], self.schema))

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

    def _write(self, trial_id: str, table: pa.Table) -> None:
        f = trial_file(self.loc, trial_id)
        if f.local is not None:
            atomic_write(table, f.local)
            return
        buf = io.BytesIO()
        pq.write_table(table, buf)
        f.write_bytes(buf.getvalue())

    def write_text(self, name: str, text: str) -> None:
        (self.loc / name).write_text(text)


# ---------------------------------------------------------------- artifacts (trunk weights)
@dataclass
class ArtifactStore:
    """Files a trial leaves besides its rows, under one folder (``<results>/_weights/<trial_id>/``).

    ``save(name, obj)`` writes ``torch.save(obj)`` atomically (a half-written weights file never
    appears under its final name) and returns where it went."""

    location: Location | Path | str

    def __post_init__(self) -> None:
        self.loc = Location.parse(self.location)

    def save(self, name: str, obj: Any) -> str:
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        target = self.loc / name
        target.write_bytes(buf.getvalue())
        return str(target)


def weights_location(results: "str | Path | Location", trial_id: str) -> Location:
    return Location.parse(results) / "_weights" / trial_id


def log_dir(results: Location, sweep_name: str) -> Path:
    """Ray's logs: ``<results>/_logs`` for a local folder; a local temp folder for a remote URI
    (log files are appended line by line, which object stores cannot do)."""
    if results.local is not None:
        return results.local / "_logs"
    return Path(tempfile.gettempdir()) / f"ablate-{sweep_name}" / "_logs"
