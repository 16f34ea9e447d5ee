"""A folder or file on a pyarrow filesystem: a plain path (local or a shared mount) or a URI.

Every byte ``ablate`` reads or writes under a results folder goes through :class:`Location`, so a
local path, a ``file://`` URI and an object store (``s3://bucket/prefix``, ``gs://...``) behave the
same. A URI's query string (``s3://b/results?endpoint_override=localhost:9000&scheme=http``) holds
filesystem options: it is kept aside and re-attached after the path, so ``loc / "smoke"`` is
``s3://b/results/smoke?endpoint_override=...``, never a path appended to the query.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from ablate.errors import UserError


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
    def parse(cls, where: "str | Path | Location") -> "Location":
        if isinstance(where, Location):
            return where
        text = str(where)
        if "://" not in text:
            return cls(pafs.LocalFileSystem(), os.path.abspath(text))
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as e:
            raise UserError(
                f"storage {text!r} is not a filesystem URI pyarrow can open ({e}); "
                "give a path or a URI such as s3://bucket/prefix"
            ) from None
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
    def parent(self) -> "Location":
        return Location(
            self.fs,
            self.path.rstrip("/").rsplit("/", 1)[0],
            self.uri.rsplit("/", 1)[0] if self.uri else None,
            self.query,
        )

    def __truediv__(self, part: str) -> "Location":
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
    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

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

    def read_text(self) -> str:
        return self.read_bytes().decode()

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
        not exist yet: then the nearest existing parent must be a writable folder. Object stores
        are not probed (that would ask the network); their errors come when writing."""
        if self.local is None:
            return
        path = self.local
        if path.exists() or path.is_symlink():
            mode = path.stat().st_mode if path.exists() else 0
            if folder and not stat.S_ISDIR(mode):
                kind = "a file" if stat.S_ISREG(mode) else "not a folder (a device or a dangling link)"
                raise UserError(f"{what} {path}: is {kind}; give a folder to write results into")
            if not folder and stat.S_ISDIR(mode):
                raise UserError(f"{what} {path}: is a folder; give a file name")
            if not folder and not stat.S_ISREG(mode):
                raise UserError(f"{what} {path}: is not a regular file (a device?); give a file name")
            if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
                raise UserError(f"{what} {path}: is not writable by you; give another path")
            return
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"{what} {path}: cannot be created: {parent} is a file, not a folder; give another path")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"{what} {path}: cannot be created: {parent} is not writable by you; give another path")

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
        """Rename a folder or file. Object stores cannot rename a folder: its objects are copied,
        then the originals deleted (nothing is deleted before every copy is written)."""
        if self.local is not None:
            shutil.move(self.path, other.path)
        elif self.is_dir():
            other.mkdir()
            pafs.copy_files(self.path, other.path, source_filesystem=self.fs, destination_filesystem=other.fs)
            self.delete()
        else:
            self.fs.move(self.path, other.path)


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
