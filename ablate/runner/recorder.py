"""The driver's Tune callback: every reported row into the results store, and the progress view.

One writer: only the driver writes the Parquet files, from the rows each trial reports, so no two
processes ever touch a file. A write that fails (a full disk, a lost mount) stops the whole run
cleanly (``Recording.failure``, through a Tune stopper): finished trials stay, and the run resumes.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import UserError
from ablate.results.io import FINISHED, ResultsStore
from ablate.results.layout import SweepDir
from ablate.results.location import Location
from ablate.results.schema import COLLAPSE_Z_STD, COLLAPSED_STOPPED
from ablate.runner.checkpoints import delete_checkpoints
from ablate.runner.progress import ProgressView
from ablate.runner.readouts import Readouts
from ablate.runner.trainable import PROGRESS_KEY, ROW_KEY, exception_line, resolve, trial_id_of

log = logging.getLogger(__name__)

# What to do when the results cannot be written, by errno (any other: "fix the storage").
STORAGE_FIXES: dict[int, str] = {
    errno.ENOSPC: "free space",
    errno.EDQUOT: "free space or raise your quota",
    errno.EROFS: "make the storage writable again",
    errno.EACCES: "make the folder writable by you",
    errno.EPERM: "make the folder writable by you",
}


def storage_failure(where: object, what: Location | str, e: OSError) -> UserError:
    """The one line that stops a run whose results cannot be written: ``<results>: <reason> while
    writing <file>; <fix> and run again (finished trials are kept; the run resumes)``."""
    name = what.name if isinstance(what, Location) else what
    if isinstance(e, UserError):  # an object store's own one line, which names its fix (results.remote)
        return UserError(f"{e} (while writing {name}; finished trials are kept; the run resumes)")
    reason = (os.strerror(e.errno) if e.errno else str(e)).lower() or type(e).__name__
    fix = STORAGE_FIXES.get(e.errno or 0, "fix the storage")
    return UserError(
        f"{where}: {reason} while writing {name}; {fix} and run again (finished trials are kept; the run resumes)"
    )


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # wherever they happen, the fix is the same: free space


def written_name(folder: SweepDir, e: OSError) -> str:
    """The file an OSError names, relative to the results folder when inside it."""
    name = os.fsdecode(e.filename) if e.filename else "the results"
    root = str(folder.display())
    return os.path.relpath(name, root) if name.startswith(root + os.sep) else name


def storage_cause(e: BaseException | None) -> OSError | None:
    """A disk-full OSError that ``e`` wraps (Tune re-raises what its loop met as a TuneError)."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            return e
        e = e.__cause__ or e.__context__
    return None


@dataclass
class RunSummary:
    """What ``ablate run`` did: trials in the sweep, skipped as already done, run now, failed."""

    results_dir: Path | str
    sweep: Any  # the Sweep that ran
    total: int
    skipped: int
    ran: int
    failed: dict[str, str] = field(default_factory=dict)  # trial_id -> error
    interrupted: bool = False
    backup: Path | str | None = None
    restart: bool = False  # the run was asked to start over (``--restart``)

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)

    def describe(self, resume: str | None = None) -> str:
        """What ``ablate run`` prints at the end: counts, each failed trial's error, how to resume
        (``resume``: the command line that does, where the caller knows it)."""
        lines = [
            f"{self.sweep.name}: {self.ran} trials run, {self.skipped} already done, "
            f"{len(self.failed)} failed -> {self.results_dir}"
        ]
        lines += [f"  failed {tid}: {err.splitlines()[-1] if err else ''}" for tid, err in self.failed.items()]
        if self.interrupted:
            # a restarted run resumes without the restart, which would move the finished trials aside again
            again = resume or ("run it again without restart" if self.restart else "run it again")
            lines.append(f"interrupted: finished trials are saved; to resume: {again}")
        return "\n".join(lines)


class Recording:
    """What the driver does with each Tune event: rows into the store, the progress view, the summary.

    Heartbeats carry no row: an epoch heartbeat (``PROGRESS_KEY``) goes to the progress view, a
    checkpoint's is ignored. A failed row is replaced by the rows of a successful retry, and the trial
    then no longer counts as failed. Once a write of the results fails, ``failure`` holds the error
    the run stops with and nothing more is recorded."""

    def __init__(
        self, store: ResultsStore, view: ProgressView, summary: RunSummary, readouts: Readouts | None = None
    ) -> None:
        self.store, self.view, self.summary = store, view, summary
        self.readouts = readouts  # the trials read from longer trials' runs (ablate.runner.readouts)
        self.ids: dict[str, str] = {}  # Ray trial id -> our trial_id
        self.final: dict[str, str] = {}  # our trial_id -> status of its final row
        self.failure: UserError | None = None
        self.stopped: dict[str, dict[str, Any]] = {}  # trial_id -> the final row stop_collapsed gives it

    def start(self, trial: Any) -> None:
        if self.failure is None:
            self.view.start(self.trial_id(trial))

    def result(self, trial: Any, result: dict[str, Any]) -> None:
        if self.failure is not None:
            return
        if PROGRESS_KEY in result:
            self.view.heartbeat(self.trial_id(trial), json.loads(result[PROGRESS_KEY]))
        if ROW_KEY not in result:
            return
        payload = json.loads(result[ROW_KEY])
        rows = payload if isinstance(payload, list) else [payload]  # a batch ends with its newest row
        row = rows[-1]
        tid = self.ids[trial.trial_id] = row["trial_id"]
        if self._write(tid, rows):
            self._recorded(row)
            self.read_out(tid)

    def _recorded(self, row: dict[str, Any]) -> None:
        """The summary and the view after a trial's newest row was written."""
        tid = row["trial_id"]
        if row.get("status") == "failed":
            self.summary.failed[tid] = row.get("error") or "failed"
        else:
            self.summary.failed.pop(tid, None)  # a retry got further
        if row.get("is_final"):
            self.final[tid] = row.get("status") or "ok"
        self.view.result(row)

    def read_out(self, long_id: str, ended: bool = False) -> int:
        """Write the shorter trials that the rows of ``long_id`` now complete (``ended``: its run is over,
        retries included); how many."""
        written = 0
        for tid, rows in self.readouts.written(long_id, ended) if self.readouts is not None else ():
            if not self._write(tid, rows):
                break
            self._recorded(rows[-1])
            written += 1
        return written

    def _write(self, trial_id: str, rows: list[dict[str, Any]]) -> bool:
        """Rows into the store; on an OSError the run's ``failure`` (the run stops), and False."""
        try:
            self.store.add_many(rows)
            return True
        except OSError as e:
            self.failure = storage_failure(self.store.dir.display(), self.store.dir.trial_file(trial_id), e)
            log.debug("stopping the run: %s", self.failure, exc_info=e)
            return False

    def tick(self) -> None:
        if self.failure is None:
            self.view.tick()

    def stop_collapsed(self, row: dict[str, Any], streak: int) -> None:
        """``row`` is the last of ``streak`` evaluations in a row with collapsed = true: the stopper
        ends the trial, and its final row is this one with status ``collapsed_stopped``."""
        error = (
            f"collapsed for {streak} evaluations in a row (z_std {row.get('z_std', float('nan')):.3g} < "
            f"{COLLAPSE_Z_STD}); stopped at epoch {row.get('epoch')} by stop_collapsed: {streak}"
        )
        self.stopped[row["trial_id"]] = {**row, "status": COLLAPSED_STOPPED, "is_final": True, "error": error}

    def complete(self, trial: Any) -> None:
        if self.failure is not None:  # stopped, not finished
            return
        tid = self.trial_id(trial)
        if tid in self.stopped and self._write(tid, [self.stopped[tid]]):
            self.final[tid] = COLLAPSED_STOPPED
            self.view.result(self.stopped[tid])
            self.read_out(tid)
        if self.view.status.get(tid) is None:
            self.view.finish(tid, "ok")
        if self.final.get(tid) in FINISHED:
            try:  # a finished trial needs no checkpoints (its final weights are in _<sweep>/weights/)
                delete_checkpoints(self.store.dir.checkpoint_roots(tid))
            except OSError as e:  # never fail a sweep over housekeeping
                log.warning("could not delete the checkpoints of finished trial %s: %s", tid, e)

    def error(self, trial: Any) -> None:
        if self.failure is not None:
            return
        tid = self.trial_id(trial)
        if tid not in self.summary.failed:  # died before it could report (e.g. a lost node)
            resolved = resolve(trial.config["trial"])
            error = _last_error_line(trial)
            node = (trial.last_result or {}).get("hostname") or "unknown"  # where it last reported from
            row = resolved.kind.failed_row(resolved.config, error) | resolved.columns | {"node": node}
            if not self._write(tid, [row]):
                return
            self.summary.failed[tid] = error
        self.view.finish(tid, "failed")
        self.read_out(tid, ended=True)

    def trial_id(self, trial: Any) -> str:
        if trial.trial_id not in self.ids:
            self.ids[trial.trial_id] = trial_id_of(trial.config["trial"])
        return self.ids[trial.trial_id]


def recorder(recording: Recording) -> Any:
    """A Tune callback handing every event to ``recording`` (Ray is imported here, on use); Tune's
    loop steps (several a second) tick the progress view's clock."""
    from ray.tune import Callback

    class Recorder(Callback):
        def __init__(self, recording: Recording) -> None:
            self.recording = recording

        def __getstate__(self) -> dict:
            # Tune pickles its callbacks into tuner.pkl (for Tuner.restore, which ablate never uses);
            # the store, the view and its stream (a terminal, pytest's capture) need not go along.
            return {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.recording.start(trial)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.recording.result(trial, result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.recording.complete(trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.recording.error(trial)

        def on_step_end(self, iteration, trials, **info):
            self.recording.tick()

    return Recorder(recording)


def stopper(recording: Recording, stop_collapsed: int = 0) -> Any:
    """Tune's stopper of the run: all trials once ``recording`` has a ``failure``; one trial after
    ``stop_collapsed`` evaluations in a row with collapsed = true (0: never), the rows it reports
    being the evidence (:meth:`Recording.stop_collapsed` gives it its final row)."""
    from ray.tune import Stopper

    class RunStopper(Stopper):
        def __init__(self, recording: Recording, stop_collapsed: int) -> None:
            self.recording, self.limit = recording, stop_collapsed
            self.streak: dict[str, int] = {}

        def __getstate__(self) -> dict:  # pickled into tuner.pkl with the run config: see Recorder
            return {}

        def __call__(self, trial_id: str, result: dict) -> bool:
            if not getattr(self, "limit", 0) or ROW_KEY not in result:
                return False
            payload = json.loads(result[ROW_KEY])
            rows = [r for r in (payload if isinstance(payload, list) else [payload]) if "collapsed" in r]
            for row in rows:  # a row without the collapse flag (no evaluation) neither adds nor resets
                tid = row["trial_id"]
                self.streak[tid] = self.streak.get(tid, 0) + 1 if row["collapsed"] is True else 0
            if not rows or rows[-1].get("is_final") or self.streak[rows[-1]["trial_id"]] < self.limit:
                return False
            self.recording.stop_collapsed(rows[-1], self.limit)
            return True

        def stop_all(self) -> bool:
            return getattr(self, "recording", None) is not None and self.recording.failure is not None

    return RunStopper(recording, stop_collapsed)


def _last_error_line(trial) -> str:
    """The exception line of a trial Ray recorded as errored (e.g. its worker died)."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    return exception_line(text) or "trial process died"
