"""One file over HTTP(S) (or ``file://``) into place, resumable: bytes go to ``<file>.part`` and the
part is renamed to ``<file>`` only when the server's whole length has arrived.

A part left by an earlier run is continued with an HTTP ``Range`` request; a server that answers
with the whole file instead (status 200) is read again from byte zero. Every failure is one
:class:`DatasetError` line naming the problem and the fix; a stopped download keeps its part.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from ablate.errors import DatasetError

TIMEOUT_S = 60.0  # a connection silent this long counts as stopped (its part is kept)
CHUNK = 1 << 20
USER_AGENT = "ablate-data-fetch"
NETWORK_FIX = "check the network (and https_proxy), or fetch from a mirror with --mirror URL (or ABLATE_DATA_MIRROR)"
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def human(n: float) -> str:
    """Bytes as a short decimal size: 2.6 GB, 163.0 MB, 512 B."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _open_part(path: Path, mode: str) -> IO[bytes]:
    """The part file, for appending (``ab``) or from zero (``wb``); a seam for tests of full disks."""
    return open(path, mode)


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", e)
    if isinstance(reason, BaseException):
        return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return str(reason)


def _request(url: str, start: int):
    """The server's response for bytes ``start``..end; None when the server says the part is already whole (416)."""
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={start}-"} if start else {})}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            return None
        raise DatasetError(
            f"cannot download {url}: the server answered {e.code} {e.reason}; check the URL (a mirror must serve "
            f"the archive under its official file name), or {NETWORK_FIX}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise DatasetError(f"cannot download {url}: {_reason(e)}; {NETWORK_FIX}") from None


def _resume_point(resp, start: int, part: Path) -> tuple[int, int | None, str]:
    """(offset the body starts at, total length or None, a note): 206 continues the part, anything else restarts."""
    status = getattr(resp, "status", None)
    m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range") or "")
    if status == 206:
        if not (start and m and int(m.group(1)) == start):  # a part of the file other than the one asked for
            raise DatasetError(
                f"cannot resume {resp.url}: asked for bytes {start}- and the server sent "
                f"{resp.headers.get('Content-Range')!r}; delete {part} and run the same command again"
            )
        total = None if m.group(2) == "*" else int(m.group(2))
        return start, total, f"resuming at {human(start)}" + (f" of {human(total)}" if total else "")
    length = resp.headers.get("Content-Length")
    note = f"the server does not resume downloads: starting again from zero ({human(start)} discarded)" if start else ""
    return 0, int(length) if length and length.isdigit() else None, note


def download(url: str, dest: Path, progress, say) -> None:
    """Download ``url`` to ``dest`` through ``dest.part``; ``progress(total, start)`` makes a bar
    (``update(n)``, ``close()``), ``say(line)`` reports notes."""
    part = part_path(dest)
    have = part.stat().st_size if part.is_file() else 0
    resp = _request(url, have)
    if resp is None:  # 416: nothing left to send; the checksum tells whether the part is whole
        say(f"the server has nothing after byte {have}: taking {part.name} as complete")
        os.replace(part, dest)
        return
    with resp:
        start, total, note = _resume_point(resp, have, part)
        if note:
            say(note)
        bar = progress(total, start)
        try:
            got, stopped = _copy(resp, part, start, bar)
        except KeyboardInterrupt:
            say(f"interrupted: {part} is kept; run the same command again to resume")
            raise
        finally:
            bar.close()
    if stopped or (total is not None and got < total):
        of = f" of {human(total)}" if total is not None else ""
        why = stopped or "the connection closed early"
        raise DatasetError(
            f"download of {url} stopped at {human(got)}{of} ({why}); {part} is kept: run the same command again "
            "to resume"
        )
    os.replace(part, dest)


def _copy(resp, part: Path, start: int, bar) -> tuple[int, str]:
    """Append the response body to ``part`` (from ``start``); (bytes in the part, why reading stopped or '')."""
    got = start
    out = _open_part(part, "ab" if start else "wb")
    try:
        while True:
            try:
                chunk = resp.read(CHUNK)
            except (OSError, http.client.HTTPException) as e:  # reset, timeout, incomplete read
                return got, _reason(e)
            if not chunk:
                return got, ""
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
