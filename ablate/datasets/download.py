"""One file over HTTP(S) (or ``file://``) into place, resumable: bytes go to ``<file>.part`` and the
part is renamed to ``<file>`` only when the server's whole length has arrived.

A part left by an earlier run is continued with an HTTP ``Range`` request; a server that answers
with the whole file instead (status 200) is read again from byte zero. Every failure is one
:class:`DatasetError` line naming the problem and the fix; a stopped download keeps its part.

Everything a server says is outside input: its reason phrases and headers reach messages only
through :class:`DatasetError` (control characters escaped), and it can send no more than the
archive's size. A URL's credentials (``https://user:password@host/``) are sent as HTTP basic
authentication to that host only (never along a redirect) and shown as ``***`` (:func:`redact`).
"""

from __future__ import annotations

import base64
import errno
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
from email.message import Message
from pathlib import Path
from typing import IO

from ablate.datasets.safefiles import MOVE_ASIDE, file_size, open_to_read, open_to_write
from ablate.errors import DatasetError, UserError

TIMEOUT_S = 60.0  # a connection silent this long counts as stopped (its part is kept)
CHUNK = 1 << 20
USER_AGENT = "ablate-data-fetch"
NETWORK_FIX = "check the network (and https_proxy), or fetch from a mirror with --mirror URL (or ABLATE_DATA_MIRROR)"
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
MIRROR_ENV = "ABLATE_DATA_MIRROR"
MIRROR_SCHEMES = ("http://", "https://", "file://")
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?[^/?#@]*@")


def human(n: float) -> str:
    """Bytes as a short decimal size: 2.6 GB, 163.0 MB, 512 B."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def redact(url: str) -> str:
    """``url`` as it may be shown: its credentials (``user:password@``) replaced by ``***@``."""
    return _USERINFO.sub(lambda m: f"{m.group(1) or ''}***@", url, count=1)


def mirror_url(filename: str, mirror: str | None) -> str | None:
    """Where a mirror serves ``filename``: ``<mirror>/<filename>`` (``mirror``, else ``$ABLATE_DATA_MIRROR``);
    None when there is no mirror."""
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    if mirror is None:
        return None
    if not mirror.startswith(MIRROR_SCHEMES):
        raise UserError(
            f"--mirror {redact(mirror)!r}: not a URL; give the folder that serves {filename}, "
            "e.g. https://mirror.example.org/datasets/ or file:///shared/datasets/"
        )
    return f"{mirror.rstrip('/')}/{filename}"


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", e)
    if isinstance(reason, BaseException):
        return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return str(reason)


def _local(url: str, shown: str):
    """A ``file://`` URL's file, opened only if it is a regular file (a FIFO would block)."""
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DatasetError(f"cannot download {shown}: a file:// URL names a file on this machine (file:///path)")
    path = Path(urllib.request.url2pathname(parts.path))
    try:
        fd = open_to_read(path, fix="a file:// mirror must serve the archive as a regular file")
    except DatasetError as e:
        raise DatasetError(f"cannot download {shown}: {e}") from None
    headers = Message()
    headers["Content-Length"] = str(os.fstat(fd).st_size)
    return urllib.response.addinfourl(os.fdopen(fd, "rb"), headers, url)


def _request(url: str, start: int):
    """The server's response for bytes ``start``..end; None when the server says the part is already whole (416)."""
    shown = redact(url)
    if url.startswith("file://"):
        return _local(url, shown)
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    req = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=host)))
    req.add_header("User-Agent", USER_AGENT)
    if start:
        req.add_header("Range", f"bytes={start}-")
    if parts.username is not None:  # basic authentication, for this host only: not carried along a redirect
        user = urllib.parse.unquote(f"{parts.username}:{parts.password or ''}")
        req.add_unredirected_header("Authorization", "Basic " + base64.b64encode(user.encode()).decode())
    try:
        return urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            return None
        raise DatasetError(
            f"cannot download {shown}: the server answered {e.code} {e.reason}; check the URL (a mirror must serve "
            f"the archive under its official file name), or {NETWORK_FIX}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise DatasetError(f"cannot download {shown}: {_reason(e)}; {NETWORK_FIX}") from None


def _resume_point(resp, start: int, part: Path) -> tuple[int, int | None, str]:
    """(offset the body starts at, total length or None, a note): 206 continues the part, anything else restarts."""
    status = getattr(resp, "status", None)
    m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range") or "")
    if status == 206:
        if not (start and m and int(m.group(1)) == start):  # a part of the file other than the one asked for
            raise DatasetError(
                f"cannot resume {redact(resp.url)}: asked for bytes {start}- and the server sent "
                f"{resp.headers.get('Content-Range')!r}; delete {part} and run the same command again"
            )
        total = None if m.group(2) == "*" else int(m.group(2))
        return start, total, f"resuming at {human(start)}" + (f" of {human(total)}" if total else "")
    length = resp.headers.get("Content-Length")
    note = f"the server does not resume downloads: starting again from zero ({human(start)} discarded)" if start else ""
    return 0, int(length) if length and length.isdigit() else None, note


def download(url: str, dest: Path, progress, say, limit: int) -> None:
    """Download ``url`` (at most ``limit`` bytes) to ``dest`` through ``dest.part``; ``progress(total, start)``
    makes a bar (``update(n)``, ``close()``), ``say(line)`` reports notes."""
    part = part_path(dest)
    have = file_size(part) or 0
    resp = _request(url, have)
    if resp is None:  # 416: nothing left to send; the checksum tells whether the part is whole
        say(f"the server has nothing after byte {have}: taking {part.name} as complete")
        _into_place(part, dest)
        return
    with resp:
        start, total, note = _resume_point(resp, have, part)
        if total is not None and total > limit:
            raise DatasetError(
                f"{redact(url)} is {human(total)}, larger than the {human(limit)} archive: not the archive; check the "
                "URL (or --mirror)"
            )
        if note:
            say(note)
        bar = progress(total, start)
        try:
            got, stopped = _copy(resp, part, start, bar, limit)
        except KeyboardInterrupt:
            say(f"interrupted: {part} is kept; run the same command again to resume")
            raise
        finally:
            bar.close()
    if stopped or (total is not None and got < total):
        of = f" of {human(total)}" if total is not None else ""
        why = stopped or "the connection closed early"
        raise DatasetError(
            f"download of {redact(url)} stopped at {human(got)}{of} ({why}); {part} is kept: run the same command "
            "again to resume"
        )
    _into_place(part, dest)


def _into_place(part: Path, dest: Path) -> None:
    try:
        os.replace(part, dest)
    except OSError as e:
        raise DatasetError(f"cannot rename {part} to {dest.name}: {e.strerror or e}; {MOVE_ASIDE}") from None


def _open_part(path: Path, mode: str) -> IO[bytes]:
    """The part file, for appending (``ab``) or from zero (``wb``), never through a link; a seam for tests."""
    out = os.fdopen(open_to_write(path, truncate=mode == "wb"), "r+b")
    out.seek(0, os.SEEK_END)
    return out


def _copy(resp, part: Path, start: int, bar, limit: int) -> tuple[int, str]:
    """Append the response body to ``part`` (from ``start``); (bytes in the part, why reading stopped or '')."""
    got = start
    read = getattr(resp, "read1", resp.read)  # what has arrived: an interrupted run loses no more than that
    out = _open_part(part, "ab" if start else "wb")
    try:
        while True:
            try:
                chunk = read(min(CHUNK, limit + 1 - got))
            except (OSError, http.client.HTTPException, ValueError) as e:  # reset, timeout, incomplete read
                return got, _reason(e)
            if not chunk:
                return got, ""
            if got + len(chunk) > limit:  # a hostile or wrong server must not fill the disk
                out.truncate(0)
                raise DatasetError(
                    f"the server sent more than the {human(limit)} archive into {part}: not the archive; emptied the "
                    "part: check the URL (or --mirror) and run the same command again"
                )
            try:
                out.write(chunk)
            except OSError as e:
                raise _write_error(e, part, got) from None
            got += len(chunk)
            bar.update(len(chunk))
    finally:
        try:
            out.close()  # flushes the buffer: a full disk can show here first
        except OSError as e:
            raise _write_error(e, part, got) from None


def _write_error(e: OSError, part: Path, got: int) -> DatasetError:
    if e.errno in FULL_DISK:
        return DatasetError(
            f"disk full writing {part} ({human(got)} written); free space on that disk (or use --root DIR on "
            "another) and run the same command again: the download resumes from the kept part"
        )
    return DatasetError(f"cannot write {part}: {e.strerror or e}; check the folder's permissions and free space")
