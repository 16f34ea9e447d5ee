"""Files in a data root opened the safe way: what is written, never through a link; what is read, never a FIFO.

A data root is often shared (a cluster's scratch space, a group folder). What ``ablate data fetch``
writes there (the ``.part`` of a download, the ``.fetch.lock``) is opened with ``O_NOFOLLOW`` and
must be a regular file with one name: a symbolic or hard link planted there would otherwise make it
overwrite or truncate the link's target outside the root. What it reads (an archive, a ``file://``
mirror's file) must be a regular file, since opening a FIFO blocks until someone writes to it.
Each refusal is one :class:`DatasetError` line naming the path and the fix.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from ablate.errors import DatasetError

MOVE_ASIDE = "move it aside (or delete it) and run the same command again"
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFSOCK: "a socket",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "a device or special file")


def _refusal(path: Path, e: OSError) -> DatasetError:
    why = {
        errno.ELOOP: "is a symbolic link",
        errno.EISDIR: "is a directory",
        errno.ENXIO: "is a FIFO or a device",
    }.get(e.errno or 0)
    if why:
        return DatasetError(f"{path} {why}, not a file ablate wrote; {MOVE_ASIDE}")
    return DatasetError(f"cannot open {path}: {e.strerror or e}; check the folder's permissions and free space")


def open_to_write(path: Path, truncate: bool = False) -> int:
    """A descriptor of ``path`` open for reading and writing, created if missing, never through a link:
    a symbolic link, a hard link (a second name of a file elsewhere), a directory, a FIFO or a
    device there is a DatasetError. ``truncate`` empties the file once it is known to be ours."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise _refusal(path, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DatasetError(f"{path} is {_kind(st.st_mode)}, not a file ablate wrote; {MOVE_ASIDE}")
        if st.st_nlink > 1:
            raise DatasetError(
                f"{path} is a hard link ({st.st_nlink} names of one file), not a file ablate wrote; {MOVE_ASIDE}"
            )
        if truncate:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_to_read(path: Path, fix: str = MOVE_ASIDE) -> int:
    """A descriptor of ``path`` open for reading (through links: an archive may be a link to a shared copy);
    a DatasetError ending with ``fix`` when it is missing or not a regular file (a FIFO would block the
    read forever)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}; {fix}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DatasetError(f"{path} is {_kind(st.st_mode)}, not a regular file; {fix}")
    os.set_blocking(fd, True)
    return fd


def file_size(path: Path) -> int | None:
    """The size of a file ablate wrote at ``path`` (a regular file with one name, not a link); None when
    nothing is there; a DatasetError for anything else, as :func:`open_to_write` would refuse it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    _ours(path, st)
    return st.st_size


def _ours(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path} is {_kind(st.st_mode)}, not a file ablate wrote; {MOVE_ASIDE}")
    if st.st_nlink > 1:
        raise DatasetError(
            f"{path} is a hard link ({st.st_nlink} names of one file), not a file ablate wrote; {MOVE_ASIDE}"
        )


def md5_of(path: Path, chunk: int = 1 << 20) -> str:
    """The md5 of a regular file (the official archives' checksums are md5)."""
    digest = hashlib.md5(usedforsecurity=False)
    with os.fdopen(open_to_read(path), "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
