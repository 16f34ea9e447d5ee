"""The run lock on an object store: one lock object per run, rewritten as a heartbeat, taken over once
its heartbeat is older than :data:`STALE_S`.

Object stores have no flock and pyarrow exposes no conditional (create-only) write. Each run that
wants the lock writes its own object ``_<sweep>/lock.<token>`` (JSON: pid, host, since, state), then
lists the ``lock.*`` objects beside it:

* an object whose heartbeat is older than STALE_S, or whose holder was a process of this host (same
  pid namespace) that no longer exists, is a dead run's: it is deleted (taken over), said in one line;
* if another object is live, the run deletes its own and refuses, naming that run's pid, host and
  heartbeat age; when every other one is still asking (runs started at the same moment) it first
  backs off a random moment and tries again;
* else it holds the lock: its object says so, and a thread rewrites it every BEAT_S seconds until
  :meth:`ObjectLock.release` deletes it.

Of two runs that both wrote their object, the one that lists second sees the other's, so at most one
holds the lock (object stores list what was written before: AWS S3 since 2020, MinIO, Ceph RGW,
GCS). Ages are read on the store's clock (the objects' modification times), never across hosts'
clocks. A store that stops answering (a restart, a lost network) only pauses the heartbeat; a holder
that finds at a heartbeat that its object is gone (taken over while the store did not answer it for
over STALE_S) or that another run holds the lock too has lost it: :attr:`ObjectLock.lost` says why
and the :meth:`ObjectLock.watch` callback stops the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import pyarrow.fs as pafs

from ablate.errors import UserError
from ablate.results.location import Location
from ablate.results.remote import StoreError, store_error

BEAT_S = 15.0  # how often the holder rewrites its lock object
STALE_S = 120.0  # a lock object not rewritten for this long is a dead run's
TRIES = 8  # attempts of runs that start at the same moment, backing off 0.25 s, 0.5 s, ... up to 4 s
PREFIX = "lock."
LEGACY = "lock"  # the one lock object of ablate before heartbeats: never rewritten, so its age is its own

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """A run's lock object: what it says and how old its heartbeat is (seconds; None: unknown)."""

    loc: Location
    record: dict[str, Any]
    age: float | None

    @property
    def state(self) -> str:
        return str(self.record.get("state", "held"))

    @property
    def token(self) -> str:
        return str(self.record.get("token", ""))

    def describe(self) -> str:
        r = self.record
        return f"pid {r.get('pid', '?')} on {r.get('host', '?')} since {r.get('since', '?')}"

    def heartbeat(self) -> str:
        return f"heartbeat {_ago(self.age)} ago" if self.age is not None else "heartbeat of unknown age"

    def dead(self) -> str | None:
        """Why this is a dead run's lock, or None while it may be alive."""
        if self.age is not None and self.age > STALE_S:
            return f"its heartbeat is {_ago(self.age)} old, over the {STALE_S:.0f} s limit"
        if _gone(self.record):
            return f"pid {self.record['pid']} no longer runs on {self.record['host']}"
        return None


@dataclass
class ObjectLock:
    """The run lock of the sweep whose companion folder is ``companion`` (a URI), as the module says."""

    companion: Location
    stream: IO[str] | None = None  # where the line of a dead run's lock taken over goes
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    lost: UserError | None = None
    _since: str = ""
    _on_lost: Callable[[UserError], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def mine(self) -> Location:
        return self.companion / f"{PREFIX}{self.token}"

    def acquire(self) -> str | None:
        """Hold the lock or refuse (UserError); the line that says which dead run's lock was taken
        over, else None."""
        self.companion.mkdir()  # filesystems other than object stores write only into existing folders
        self._since = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        try:
            others = self._contend()
            for e in others:  # every one left is a dead run's
                _delete(e.loc)
            self._put("held")
        except BaseException:  # a store that fails midway (or Ctrl-C): no asking object left to block others
            with contextlib.suppress(OSError):
                _delete(self.mine)
            raise
        self._thread = threading.Thread(target=self._beat, name="ablate-lock-heartbeat", daemon=True)
        self._thread.start()
        if not others:
            return None
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        said = f"took over the run lock of {others[0].describe()}{more}: {others[0].dead()}, so that run is gone"
        if self.stream is not None:
            print(said, file=self.stream)
        return said

    def _contend(self) -> list[Entry]:
        """Ask until no other live lock object is there (then: the dead runs' objects), or refuse."""
        attempt = 0
        while True:
            self._put("asking")
            _, others = entries(self.companion, self.mine.name)
            live = [e for e in others if e.dead() is None]
            if not live:
                return others
            _delete(self.mine)
            attempt += 1
            held = [e for e in live if e.state != "asking"]
            if held or attempt == TRIES:
                raise UserError(self._refusal((held or live)[0]))
            time.sleep(random.uniform(0, min(4.0, 0.25 * 2**attempt)))

    def watch(self, callback: Callable[[UserError], None]) -> None:
        """Call ``callback`` with :attr:`lost` once the lock is lost (at once if it already is)."""
        self._on_lost = callback
        if self.lost is not None:
            callback(self.lost)

    def release(self) -> None:
        """Stop the heartbeat and delete this run's object; a store that does not answer leaves it
        behind, to go stale."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=60)
        self._thread = None
        try:
            _delete(self.mine)
        except OSError as e:
            log.debug("could not delete %s: %s", self.mine, e)

    def _refusal(self, e: Entry) -> str:
        if e.state == "asking":
            return (
                f"{self.companion}: another `ablate run` of this sweep started at the same moment ({e.describe()}); "
                "run again in a few seconds"
            )
        due = f" (in {_ago(STALE_S - e.age)})" if e.age is not None else ""
        return (
            f"{self.companion}: another `ablate run` of this sweep is running ({e.describe()}, {e.heartbeat()}); "
            "wait for it to finish or stop it, then run again; a run that is gone stops its heartbeat, and its "
            f"lock is taken over once that is {STALE_S:.0f} s old{due}"
        )

    def _put(self, state: str) -> None:
        """This run's object, in one write: an object is stored whole, and the temporary object of
        :meth:`Location.write_bytes` would be one more entry in the listing that decides who holds."""
        doc = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "pidns": _pidns(),
            "since": self._since,
            "beat": time.time(),
            "state": state,
            "token": self.token,
        }

        def write() -> None:
            with self.mine.fs.open_output_stream(self.mine.path) as f:
                f.write(json.dumps(doc).encode())

        _call(self.mine, write)

    def _beat(self) -> None:
        while not self._stop.wait(BEAT_S):
            try:
                why = self._conflict()
                if why is None and not self._stop.is_set():
                    self._put("held")
            except OSError as e:  # the store does not answer now; the next heartbeat tries again
                log.debug("heartbeat of %s: %s", self.mine, e)
                continue
            if why is not None:
                self.lost = UserError(
                    f"{self.companion}: this run lost its lock ({why}); it stops (finished trials are kept; "
                    "run again to resume)"
                )
                if self._on_lost is not None:
                    self._on_lost(self.lost)
                return

    def _conflict(self) -> str | None:
        """Why this run no longer holds the lock, else None."""
        present, others = entries(self.companion, self.mine.name)
        if not present:
            return f"its object {self.mine.name} is gone: taken over while the store did not answer, or deleted"
        held = [e for e in others if e.state == "held" and e.dead() is None and e.token < self.token]
        if held:  # both hold it (a takeover raced a heartbeat): the lower token keeps it
            _delete(self.mine)
            return f"{held[0].describe()} holds it too"
        return None


def entries(companion: Location, mine: str | None = None) -> tuple[bool, list[Entry]]:
    """(whether the object ``mine`` is there, the other lock objects of ``companion``). Ages are
    measured from ``mine``'s modification time (the store's clock) when given, else from now."""
    selector = pafs.FileSelector(companion.path, allow_not_found=True)
    infos = _call(companion, lambda: companion.fs.get_file_info(selector))
    now = next((i.mtime for i in infos if i.base_name == mine), None)
    found = []
    for info in infos:
        name = info.base_name
        if name == mine or info.type != pafs.FileType.File or not (name.startswith(PREFIX) or name == LEGACY):
            continue
        loc = companion / name
        record = _read(loc)
        if record is None:  # released since the listing
            continue
        if info.mtime is None:
            age = time.time() - float(record["beat"]) if "beat" in record else None
        else:
            age = ((now or dt.datetime.now(dt.UTC)) - info.mtime).total_seconds()
        found.append(Entry(loc, record, age))
    return any(i.base_name == mine for i in infos), found


def object_holder(companion: Location) -> str | None:
    """The run holding the lock of ``companion`` (``pid N on HOST since ... (heartbeat ...)``), else None."""
    try:
        _, others = entries(companion)
    except OSError:
        return None
    held = [e for e in others if e.state == "held" and e.dead() is None]
    return f"{held[0].describe()} ({held[0].heartbeat()})" if held else None


def _read(loc: Location) -> dict[str, Any] | None:
    """A lock object's fields; None when it is gone; empty when it cannot be read (it counts as live)."""
    try:
        return _record(_call(loc, lambda: loc.fs.open_input_stream(loc.path).read()))
    except FileNotFoundError:
        return None
    except OSError as e:
        if isinstance(e, StoreError):
            raise
        # deleted between the store's answer to "how big" and to "send it": pyarrow says neither is missing
        gone = _call(loc, lambda: loc.fs.get_file_info(loc.path)).type == pafs.FileType.NotFound
        return None if gone else {}


def _record(data: bytes) -> dict[str, Any]:
    """A lock object's fields; an older ablate's one-line lock (``pid N on HOST since T``) too."""
    text = data.decode(errors="replace")
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            return doc
    except ValueError:
        pass
    m = re.match(r"pid (\d+) on (\S+) since (\S+)", text)
    return {"pid": int(m[1]), "host": m[2], "since": m[3]} if m else {}


def _call(loc: Location, call: Callable[[], T]) -> T:
    """``call()``, its store's refusals as one line (:class:`ablate.results.remote.StoreError`)."""
    try:
        return call()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise (store_error(e, str(loc)) or e) from None


def _delete(loc: Location) -> None:
    try:
        _call(loc, lambda: loc.fs.delete_file(loc.path))
    except FileNotFoundError:
        pass


def _pidns() -> int | None:
    """This process's pid namespace (Linux), so a pid is compared only where it means the same process."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _gone(record: dict[str, Any]) -> bool:
    """Whether the holder was a process of this host and pid namespace that no longer exists."""
    ns = _pidns()
    if ns is None or record.get("pidns") != ns or record.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError, TypeError, KeyError):
        return False
    return False


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
