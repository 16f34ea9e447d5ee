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

import os
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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
    def parse(cls, where: str | Path | Location) -> Location:
        if isinstance(where, Location):
            return where
        text = str(where)
        if "://" not in text:
            return cls(pafs.LocalFileSystem(), os.path.abspath(text))
        text = _s3_options(text)
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except OSError as e:  # the URI is fine; asking the store for the bucket's region failed
            raise UserError(f"storage {text}: cannot reach it ({_first_line(e)}); {_reach_hint(text)}") from None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as e:
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
    def info(self) -> pafs.FileInfo:
        self.reach()
        return self.fs.get_file_info(self.path)

    def reach(self) -> None:
        """Refuse (UserError) an object store that does not answer or has no such bucket, once per
        bucket and process, before the first read or write: pyarrow's own errors for these come as
        tracebacks from whichever call happens first. Any other answer (a 403 from a policy that
        allows objects under a prefix but not the bucket itself) is left to the calls that follow."""
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
            if not any(mark in str(e) for mark in UNREACHABLE):
                _REACHED.add(key)
                return
            raise UserError(f"storage {where}: cannot reach it ({_first_line(e)}); {_reach_hint(where)}") from None
        if missing:
            raise UserError(
                f"storage {where}: bucket {bucket!r} does not exist there; create it (aws s3 mb s3://{bucket}, "
                f"mc mb ALIAS/{bucket} for MinIO) or give another bucket"
            )
        _REACHED.add(key)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def children(self) -> list[Location]:
        """Direct entries of a folder (none when it does not exist), sorted by name."""
        if not self.is_dir():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        return sorted((self / i.base_name for i in infos), key=lambda loc: loc.name)

    # -- reads and writes
    def read_bytes(self) -> bytes:
        self.reach()
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

    def mkdir(self) -> None:
        self.reach()
        self.fs.create_dir(self.path, recursive=True)

    def delete(self) -> None:
        """Remove a folder with its contents, or a file; nothing when it does not exist."""
        kind = self.info().type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(self.path)

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


BUCKET_STORES = ("s3", "gcs")  # filesystems whose first path component is a bucket
UNREACHABLE = ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Could not resolve", "Connection refused")
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # the AWS SDKs' order: the S3-specific one wins
_REACHED: set[tuple[str, str, str]] = set()  # (bucket, query, filesystem) that answered in this process


def _s3_options(text: str) -> str:
    """An ``s3://`` URI with the endpoint of ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` in its query
    when it names none (``endpoint_override=HOST:PORT&scheme=http``): the processes of a run on other
    nodes get it from the URI, whatever their environment. A secret key in the URI is refused."""
    parts = urlsplit(text)
    if parts.password is not None:  # pyarrow takes s3://ACCESS:SECRET@bucket/...
        where = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
        raise UserError(
            f"storage {where}: a secret key in the URI (ACCESS:SECRET@) would be printed and stored with the "
            "results; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile in ~/.aws/credentials and "
            "AWS_PROFILE) instead"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    env, url = next(((k, os.environ[k]) for k in ENDPOINT_ENV if os.environ.get(k)), (None, ""))
    if parts.scheme != "s3" or "endpoint_override" in query or not env:
        return text
    endpoint = urlsplit(url if "://" in url else f"https://{url}")
    if not endpoint.netloc or endpoint.scheme not in ("http", "https"):
        raise UserError(f"{env}={url!r}: not an endpoint URL; give one such as http://localhost:9000")
    extra = f"endpoint_override={endpoint.netloc}" + ("" if "scheme" in query else f"&scheme={endpoint.scheme}")
    return parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra).geturl()


def _reach_hint(where: str) -> str:
    if not where.startswith("s3://"):
        return "check the URI and the network"
    return (
        "check the endpoint: for MinIO, Ceph or another S3-compatible server add "
        "?endpoint_override=HOST:PORT&scheme=http to the URI or set AWS_ENDPOINT_URL=http://HOST:PORT"
    )


def _first_line(e: BaseException) -> str:
    """The error's first line without pyarrow's ``When getting information for ...:`` preamble."""
    line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if line.startswith("When ") and ": " in line:
        line = line.split(": ", 1)[1]
    return line[:300]


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
