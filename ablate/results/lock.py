"""The run lock: a second ``ablate run`` of a sweep that is already running refuses to start.

A local (or shared POSIX) folder takes an ``flock`` on ``_<sweep>/lock``; a URI, where there is no flock,
takes a best-effort lock object (:class:`ObjectLock`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from ablate.errors import UserError
from ablate.results.layout import SweepDir
from ablate.results.location import Location


@dataclass
class RunLock:
    """An exclusive flock on ``_<sweep>/lock``: a second ``ablate run`` of the same sweep refuses to start.

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
            raise UserError(
                f"{self.path.parent}: another `ablate run` of this sweep is running ({holder}); "
                "wait for it to finish or stop it, then run again"
            ) from None
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
    """The run lock on a remote URI: a ``_<sweep>/lock`` object created if absent, deleted on release.

    Object stores have no flock, and pyarrow exposes no conditional (create-only) write, so this is
    a best-effort lock: two runs started within the same second may both get it (the second write
    wins; each re-reads the object and only the winner goes on, which narrows but does not close
    the window). A run killed without cleanup (SIGKILL, a lost node) leaves ``_<sweep>/lock`` behind; the
    refusal message says how to remove it."""

    loc: Location
    _token: str | None = None

    def acquire(self) -> None:
        if self.loc.exists():
            holder = self.loc.read_bytes().decode(errors="replace").split("\n")[0]
            raise UserError(
                f"{self.loc}: another `ablate run` of this sweep is running ({holder}); wait for it, "
                f"or if no run is active (it was killed), delete {self.loc} and run again"
            )
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


def run_lock(sweep_dir: SweepDir) -> RunLock | ObjectLock:
    """The lock of a sweep's results folder: flock where it is local, else the ``_<sweep>/lock`` object."""
    lock = sweep_dir.lock_file
    return RunLock(lock.local) if lock.local is not None else ObjectLock(lock)


def lock_holder(folder: SweepDir) -> str | None:
    """What the run holding ``folder``'s lock wrote in it (``pid N on HOST since ...``), else None.
    The lock is probed, never kept: a shared non-blocking ``flock`` fails while the run holds its
    exclusive one (and is released at once when it succeeds); on an object store the
    ``_<sweep>/lock`` object is the lock."""
    lock = folder.lock_file
    if lock.local is None:
        try:
            return lock.read_bytes().decode(errors="replace")
        except OSError:
            return None
    try:
        fd = os.open(lock.local, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 200, 0).decode(errors="replace")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
