"""``<storage>/_<sweep>/progress.json`` of a running sweep, written by its progress view
(:mod:`ablate.runner.progress`) and read by ``ablate status`` (:func:`ablate.analysis.status.live_run`)."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ablate.results.location import Location

log = logging.getLogger(__name__)


@dataclass
class LiveFile:
    """``_<sweep>/progress.json`` of a running sweep: ``{"pid", "host", "updated", "trials"}``, rewritten
    atomically at each start or end of a trial, at most every ``every`` seconds for epochs, and
    every ``keepalive`` seconds regardless (so a dead run's file on an object store goes stale).
    Writing it is housekeeping: a failure is logged (debug: a warning would break the progress line;
    a full disk is reported by the results' writer), never raised."""

    loc: Location
    every: float = 2.0
    keepalive: float = 30.0
    _written_at: float = float("-inf")
    _last: dict[str, Any] = field(default_factory=dict)

    def due(self) -> bool:
        """Whether an unforced :meth:`publish` could write now."""
        return time.monotonic() - self._written_at >= self.every

    def publish(self, trials: dict[str, Any], force: bool = False) -> None:
        since = time.monotonic() - self._written_at
        if not force and (since < self.every or (trials == self._last and since < self.keepalive)):
            return
        doc = {"pid": os.getpid(), "host": socket.gethostname(), "updated": time.time(), "trials": trials}
        try:
            self.loc.write_text(json.dumps(doc))
        except OSError as e:
            log.debug("could not write %s: %s", self.loc, e)
        self._written_at, self._last = time.monotonic(), trials

    def remove(self) -> None:
        try:
            self.loc.delete()
        except OSError as e:
            log.debug("could not remove %s: %s", self.loc, e)
