"""A folder or file on a pyarrow filesystem: a plain path (local or a shared mount) or a URI.

Every byte ``ablate`` reads or writes under a results folder goes through :class:`Location`, so a
local path, a ``file://`` URI and an object store (``s3://bucket/prefix``, ``gs://...``) behave the
same. A URI's query string (``s3://b/results?endpoint_override=localhost:9000&scheme=http``) holds
filesystem options: it is kept aside and re-attached after the path, so ``loc / "smoke"`` is
``s3://b/results/smoke?endpoint_override=...``, never a path appended to the query.

S3-compatible stores (MinIO, Ceph, ...): the endpoint is the URI's ``endpoint_override`` (with
``scheme=http`` for a plain-HTTP server), else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, which
:meth:`Location.parse` writes into the query, so the processes of a run on other nodes reach the same
server whatever their environment. Credentials come from pyarrow's usual chain (``AWS_ACCESS_KEY_ID``
/ ``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials`` with ``AWS_PROFILE``, an instance role), never
from the URI: a URI is printed and stored with the results.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from ablate.errors import UserError
from ablate.results.remote import (
    BUCKET_STORES,
    StoreError,
    arrow_refusal,
    check_uri,
    first_line,
    reach_hint,
    shown,
    store_error,
    with_endpoint,
)

F = TypeVar("F", bound=Callable[..., Any])


def _said(op: F) -> F:
    """``op`` of a :class:`Location`, with the refusals of an object store (unreachable, access
    denied, no bucket) raised as one line (:class:`StoreError`) instead of pyarrow's OSError."""

    @functools.wraps(op)
    def said(self: Location, *args: Any, **kwargs: Any) -> Any:
        try:
            return op(self, *args, **kwargs)
        except OSError as e:
            err = store_error(e, str(self)) if self.local is None else None
            if err is None:
                raise
            raise err from None

    return said  # type: ignore[return-value]


@dataclass(frozen=True)
class Location:
    """``path`` is the path inside ``fs`` (no scheme); ``uri`` the ``scheme://netloc/path`` form of a
    URI location (None for a plain path) and ``query`` its filesystem options. ``file://`` URIs are
    local: they behave exactly like the path they name."""

    fs: pafs.FileSystem
    path: str
    uri: str | None = None
    query: str = ""

    @classmethod
    def parse(cls, where: str | Path | Location) -> Location:
        if isinstance(where, Location):
            return where
        text = str(where)
        if "://" not in text:
            return cls(pafs.LocalFileSystem(), os.path.abspath(text))
        check_uri(text)
        text = with_endpoint(text)
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except OSError as e:  # the URI is fine; asking the store for the bucket's region failed
            raise store_error(e, shown(text)) or StoreError(
                f"storage {shown(text)}: cannot reach it ({first_line(e)}); {reach_hint(text)}"
            ) from None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as e:
            raise arrow_refusal(text, e) from None
        if isinstance(fs, pafs.LocalFileSystem):
            return cls(fs, os.path.abspath(path))
        parts = urlsplit(text)
        base = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
        return cls(fs, path.rstrip("/"), base, parts.query)

    @property
    def local(self) -> Path | None:
        """The local path (plain paths and ``file://`` URIs), else None."""
        return Path(self.path) if isinstance(self.fs, pafs.LocalFileSystem) else None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        return Location(
            self.fs,
            self.path.rstrip("/").rsplit("/", 1)[0],
            self.uri.rsplit("/", 1)[0] if self.uri else None,
            self.query,
        )

    def __truediv__(self, part: str) -> Location:
        return Location(
            self.fs, f"{self.path.rstrip('/')}/{part}", f"{self.uri}/{part}" if self.uri else None, self.query
        )

    def __str__(self) -> str:
        if self.uri is None:
            return self.path
        return f"{self.uri}?{self.query}" if self.query else self.uri

    def display(self) -> Path | str:
        """What to print and hand to path-taking code: a Path when local, else the URI."""
        return self.local if self.local is not None else str(self)

    # -- queries
    @_said
    def info(self) -> pafs.FileInfo:
        self.reach()
        return self.fs.get_file_info(self.path)

    def reach(self) -> None:
        """Refuse (:class:`StoreError`, one line) an object store that does not answer, has no such
        bucket or refuses the credentials, once per bucket and process, before the first read or
        write: pyarrow's own errors for these come as tracebacks from whichever call happens first.
        A store that refuses the bucket itself but lets this location be listed (a policy on a
        prefix) is reached."""
        if self.local is not None or self.fs.type_name not in BUCKET_STORES:
            return
        bucket = self.path.split("/", 1)[0]
        key = (self.uri.split("/", 3)[2] if self.uri else "", self.query, self.fs.type_name)
        if key in _REACHED:
            return
        root = self.uri.split("/", 3)[:3] if self.uri else [bucket]
        where = "/".join(root) + (f"?{self.query}" if self.query else "")
        try:
            missing = self.fs.get_file_info(bucket).type == pafs.FileType.NotFound
        except OSError as e:
            err = store_error(e, where)
            if err is not None and err.denied:
                self._probe_prefix()
            elif err is not None:
                raise err from None
            _REACHED.add(key)
            return
        if missing:
            raise StoreError(
                f"storage {where}: bucket {bucket!r} does not exist there; create it (aws s3 mb s3://{bucket}, "
                f"mc mb ALIAS/{bucket} for MinIO) or give another bucket"
            )
        _REACHED.add(key)

    def _probe_prefix(self) -> None:
        """This location listed once: the refusal of the bucket was the credentials' (StoreError) or a
        policy's that allows the prefix (nothing)."""
        try:
            self.fs.get_file_info(self.path)
        except OSError as e:
            raise store_error(e, str(self)) or e from None

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    @_said
    def children(self) -> list[Location]:
        """Direct entries of a folder (none when it does not exist), sorted by name."""
        if not self.is_dir():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        return sorted((self / i.base_name for i in infos), key=lambda loc: loc.name)

    # -- reads and writes
    @_said
    def read_bytes(self) -> bytes:
        self.reach()
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    @_said
    def write_bytes(self, data: bytes) -> None:
        """Write atomically: a reader sees the old file or the whole new one, never a part.

        Local: a hidden temp file in the same folder + rename. Elsewhere: a hidden ``.tmp-*`` object
        + move (object stores write whole objects anyway; the move keeps other filesystems safe)."""
        if self.local is not None:
            self.local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.local.parent)
            try:
                # mkstemp makes 0600 files; results on shared lab storage must be readable as any
                # other file the user writes (0644 under the usual umask 022).
                os.fchmod(fd, 0o666 & ~umask())
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.local)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return
        self.parent.mkdir()
        tmp = self.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            with self.fs.open_output_stream(tmp.path) as f:
                f.write(data)
            self.fs.move(tmp.path, self.path)
        finally:
            if tmp.exists():
                self.fs.delete_file(tmp.path)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def check_writable(self, what: str, *, folder: bool) -> None:
        """Refuse, before any compute, an output that could never be written: ``what`` names the
        flag in the message (``--out``, ``--storage``...). A folder (``folder=True``) or a file may
        not exist yet: then the nearest existing parent must take a new file. Writability is probed
        (a temporary file made and removed, an existing file opened for appending, nothing written),
        not inferred from permission bits (:func:`write_refusal`). An object store is asked only
        whether it answers and holds the bucket (:meth:`reach`); an error of a write itself (a
        read-only key) comes when writing."""
        if self.local is None:
            self.reach()
            return
        path = self.local
        if path.exists():
            mode = path.stat().st_mode
            if folder and not stat.S_ISDIR(mode):
                kind = "a file" if stat.S_ISREG(mode) else "not a folder (a device?)"
                raise UserError(f"{what} {path}: is {kind}; give a folder to write results into")
            if not folder and stat.S_ISDIR(mode):
                raise UserError(f"{what} {path}: is a folder; give a file name")
            if not folder and not stat.S_ISREG(mode):
                raise UserError(f"{what} {path}: is not a regular file (a device?); give a file name")
            _probe(path, what, path)
            return
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"{what} {path}: cannot be created: {parent} is a file, not a folder; give another path")
        _probe(path, what, parent)

    @_said
    def mkdir(self) -> None:
        self.reach()
        self.fs.create_dir(self.path, recursive=True)

    @_said
    def delete(self) -> None:
        """Remove a folder with its contents, or a file; nothing when it does not exist."""
        kind = self.info().type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(self.path)

    @_said
    def move_to(self, other: Location) -> None:
        """Rename a folder or file. Object stores cannot rename a folder: its objects are copied,
        then the originals deleted (nothing is deleted before every copy is written)."""
        if self.local is not None:
            os.makedirs(os.path.dirname(other.path), exist_ok=True)
            shutil.move(self.path, other.path)
        elif self.is_dir():
            other.mkdir()
            pafs.copy_files(self.path, other.path, source_filesystem=self.fs, destination_filesystem=other.fs)
            self.delete()
        else:
            self.fs.move(self.path, other.path)


_REACHED: set[tuple[str, str, str]] = set()  # (bucket, query, filesystem) that answered in this process


def write_refusal(target: Path) -> OSError | None:
    """Why nothing can be written at ``target``, or None: a folder must take a new file (a temporary
    file made and removed), a file must open for appending (nothing written). A probe, not the
    permission bits, which say nothing of read-only mounts or of root on /proc."""
    try:
        if target.is_dir():
            tempfile.TemporaryFile(dir=target).close()
        else:
            open(target, "ab").close()
    except OSError as e:
        return e
    return None


def _probe(path: Path, what: str, target: Path) -> None:
    """:func:`write_refusal` of ``target`` (``path`` itself, or the folder that is to hold it) as the
    one-line error of ``what``, the flag that named ``path``."""
    e = write_refusal(target)
    if e is not None:
        where = "is not writable" if target == path else f"{target} does not take new files"
        raise UserError(f"{what} {path}: {where} ({e.strerror}); give another path")


def umask() -> int:
    """The process's file-creation mask, read without changing it (``os.umask`` can only swap it,
    which would race with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old
