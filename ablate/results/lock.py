"""The run lock: a second ``ablate run`` of a sweep that is already running refuses to start.

A local (or shared POSIX) folder takes an ``flock`` on the file ``_<sweep>/lock`` (:class:`RunLock`),
which the kernel releases however the run ends; a URI, where there is no flock, takes a lock object
with a heartbeat (:class:`ablate.results.objectlock.ObjectLock`).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ablate.errors import UserError
from ablate.results.layout import SweepDir
from ablate.results.objectlock import ObjectLock, object_holder

# Opened without following a link (O_NOFOLLOW: a link there is refused, its target never truncated)
# and without waiting (O_NONBLOCK: a FIFO there would block the open).
OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass
class RunLock:
    """An exclusive flock on ``_<sweep>/lock``: a second ``ablate run`` of the same sweep refuses to start.

    flock works on local paths and on shared POSIX filesystems that support it (NFSv4, Lustre, GPFS,
    BeeGFS); remote URIs use :class:`ObjectLock` instead. The lock file is ablate's own: a link, a
    folder or any other kind of file at its path, or a file with other names (hard links), which
    taking the lock would truncate, is refused with one line."""

    path: Path
    _fd: int | None = None

    def acquire(self) -> str | None:
        """Hold the lock, or refuse (UserError); nothing to say when held (the kernel frees a dead
        run's flock, so there is never a stale one to take over)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | OPEN_FLAGS, 0o644)
        except OSError as e:
            raise _unusable(self.path, e) from None
        try:
            _check_own(self.path, os.fstat(fd))
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(
                f"{self.path.parent}: another `ablate run` of this sweep is running ({holder}); "
                "wait for it to finish or stop it, then run again"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder().encode(), 0)
        self._fd = fd
        return None

    def watch(self, callback: Callable[[UserError], None]) -> None:
        """Nothing to watch: an flock is held until it is released or the process ends."""

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {dt.datetime.now().isoformat(timespec='seconds')}"


def _check_own(path: Path, st: os.stat_result) -> None:
    """Refuse a lock path that is not a file of ablate's alone (see :class:`RunLock`)."""
    if not stat.S_ISREG(st.st_mode):
        raise UserError(
            f"{path}: is not a regular file (a FIFO, socket or device?), where the run lock goes; "
            "move it away and run again"
        )
    if st.st_nlink > 1:
        raise UserError(
            f"{path}: has {st.st_nlink - 1} other name(s) (hard links), which taking the run lock would "
            f"truncate; remove this name (rm {path}) and run again"
        )


def _unusable(path: Path, e: OSError) -> UserError:
    """The one line for a lock file that cannot be opened."""
    if e.errno == errno.ELOOP:
        return UserError(
            f"{path}: is a symbolic link, where the run lock goes (a file ablate truncates, so it never follows "
            f"a link); remove the link (rm {path}) and run again"
        )
    if e.errno == errno.EISDIR:
        return UserError(f"{path}: is a folder, where the run lock file goes; move it away and run again")
    if e.errno in (errno.EEXIST, errno.ENOTDIR):
        return UserError(
            f"{path.parent}: is not a folder, where the sweep's companion folder goes; move it away and run again"
        )
    return UserError(f"{path}: cannot open the run lock ({e.strerror}); make it and its folder writable by you")


def run_lock(sweep_dir: SweepDir, stream: IO[str] | None = None) -> RunLock | ObjectLock:
    """The lock of a sweep's results folder: flock where it is local, else the lock objects of
    ``_<sweep>/`` (a dead run's lock taken over is said on ``stream``)."""
    lock = sweep_dir.lock_file
    return RunLock(lock.local) if lock.local is not None else ObjectLock(sweep_dir.companion, stream=stream)


def lock_holder(folder: SweepDir) -> str | None:
    """Who holds ``folder``'s lock (``pid N on HOST since ...``), else None. The lock is probed, never
    kept: a shared non-blocking ``flock`` fails while the run holds its exclusive one (and is
    released at once when it succeeds); on an object store, a lock object with a live heartbeat."""
    lock = folder.lock_file
    if lock.local is None:
        return object_holder(folder.companion)
    try:
        fd = os.open(lock.local, os.O_RDONLY | OPEN_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 200, 0).decode(errors="replace")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
