"""The driver's Tune callback: every reported row into the results store, and the progress view.

One writer: only the driver writes the Parquet files, from the rows each trial reports, so no two
processes ever touch a file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.results.io import FINISHED, ResultsStore
from ablate.results.schema import failed_row
from ablate.runner.checkpoints import delete_checkpoints
from ablate.runner.progress import ProgressView
from ablate.runner.trainable import ROW_KEY, exception_line, resolve, trial_id_of

log = logging.getLogger(__name__)


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

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)

    def describe(self) -> str:
        """What ``ablate run`` prints at the end: counts, each failed trial's error, how to resume."""
        lines = [
            f"{self.sweep.name}: {self.ran} trials run, {self.skipped} already done, "
            f"{len(self.failed)} failed -> {self.results_dir}"
        ]
        lines += [f"  failed {tid}: {err.splitlines()[-1] if err else ''}" for tid, err in self.failed.items()]
        if self.interrupted:
            lines.append("interrupted: finished trials are saved; run the same command again to resume")
        return "\n".join(lines)


class Recording:
    """What the driver does with each Tune event: rows into the store, the progress view, the summary.

    Results without a row (checkpoint heartbeats) are ignored. A failed row is replaced by the rows of
    a successful retry, and the trial then no longer counts as failed."""

    def __init__(self, store: ResultsStore, view: ProgressView, summary: RunSummary) -> None:
        self.store, self.view, self.summary = store, view, summary
        self.ids: dict[str, str] = {}  # Ray trial id -> our trial_id
        self.final: dict[str, str] = {}  # our trial_id -> status of its final row

    def start(self, trial: Any) -> None:
        self.view.start(self.trial_id(trial))

    def result(self, trial: Any, result: dict[str, Any]) -> None:
        if ROW_KEY not in result:
            return
        payload = json.loads(result[ROW_KEY])
        rows = payload if isinstance(payload, list) else [payload]  # a batch ends with its newest row
        row = rows[-1]
        tid = self.ids[trial.trial_id] = row["trial_id"]
        self.store.add_many(rows)
        if row.get("status") == "failed":
            self.summary.failed[tid] = row.get("error") or "failed"
        else:
            self.summary.failed.pop(tid, None)  # a retry got further
        if row.get("is_final"):
            self.final[tid] = row.get("status") or "ok"
        self.view.result(row)

    def complete(self, trial: Any) -> None:
        tid = self.trial_id(trial)
        if self.view.status.get(tid) is None:
            self.view.finish(tid, "ok")
        if self.final.get(tid) in FINISHED:
            try:  # a finished trial needs no checkpoints (its final weights are in _weights/)
                delete_checkpoints(self.store.dir.checkpoint_roots(tid))
            except OSError as e:  # never fail a sweep over housekeeping
                log.warning("could not delete the checkpoints of finished trial %s: %s", tid, e)

    def error(self, trial: Any) -> None:
        tid = self.trial_id(trial)
        if tid not in self.summary.failed:  # died before it could report (e.g. a lost node)
            resolved = resolve(trial.config["trial"])
            error = _last_error_line(trial)
            self.store.add(failed_row(resolved.config, resolved.kind.name, error) | resolved.columns)
            self.summary.failed[tid] = error
        self.view.finish(tid, "failed")

    def trial_id(self, trial: Any) -> str:
        if trial.trial_id not in self.ids:
            self.ids[trial.trial_id] = trial_id_of(trial.config["trial"])
        return self.ids[trial.trial_id]


def recorder(store: ResultsStore, view: ProgressView, summary: RunSummary) -> Any:
    """A Tune callback handing every event to a :class:`Recording` (Ray is imported here, on use)."""
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

    return Recorder(Recording(store, view, summary))


def _last_error_line(trial) -> str:
    """The exception line of a trial Ray recorded as errored (e.g. its worker died)."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    return exception_line(text) or "trial process died"
