"""``ablate status``: which trials of a sweep are done, failed, diverged, missing, or running now, and why.

While an ``ablate run`` of the folder is running, its trials are shown as it sees them: running
(with their epoch and images/s) or pending, from ``_<sweep>/progress.json``
(:class:`ablate.runner.live_file.LiveFile`). That file counts only while the driver it names holds the
run lock (:mod:`ablate.results.lock`): a file a killed run left behind never says "running".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from ablate.results.layout import SweepDir
from ablate.results.lock import lock_holder
from ablate.results.schema import COLLAPSED_STOPPED
from ablate.runner.progress import images_text
from ablate.sweep.expand import compact
from ablate.sweep.validated import Sweep

STALE_S = 120.0  # an object-store progress file older than this is a dead run's (a live one is rewritten every 30 s)
LIVE_STATES = ("running", "pending")  # what a live run says of a trial that is not finished
ORDER = ("done", "diverged", "failed", "interrupted", "missing")  # the counts' order (running, pending: while live)


@dataclass(frozen=True)
class TrialStatus:
    trial_id: str
    axes: dict[str, Any]
    state: str  # done | diverged | failed | stopped | interrupted | missing, or while a run is live: running | pending
    epoch: int | None
    error: str | None
    epochs: int | None = None  # running: the trial's epochs in all
    images_per_s: float | None = None  # running: its last epoch's speed


@dataclass(frozen=True)
class LiveRun:
    """A running ``ablate run`` of a results folder, as its progress file says."""

    pid: int
    host: str
    trials: dict[str, dict[str, Any]]

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def trial_states(sweep: Sweep, df: pd.DataFrame, folder: SweepDir | None = None) -> list[TrialStatus]:
    """One entry per expanded trial (search sweeps: per trial found in the results ``df``); with the
    results ``folder``, trials a running ``ablate run`` of it is running or will run are shown so."""
    last: dict[str, dict] = {}
    if not df.empty:
        for tid, rows in df.groupby("trial_id", sort=False):
            last[tid] = rows.sort_values("epoch", na_position="last").iloc[-1].to_dict()
    out = [_state(t.trial_id, t.axes, last.get(t.trial_id)) for t in sweep.trials]
    if sweep.search:  # a search's trials are whatever it sampled
        out += [_state(tid, {"search": row.get("search")}, row) for tid, row in last.items()]
    # (rows of trials the sweep no longer expands to, e.g. after editing its grid, are not counted)
    live = live_run(folder) if folder is not None else None
    return _with_live(out, live, {"search": "optuna"} if sweep.search else {}) if live else out


def _state(trial_id: str, axes: dict[str, Any], row: dict | None) -> TrialStatus:
    if row is None:
        return TrialStatus(trial_id, axes, "missing", None, None)
    epoch = None if pd.isna(row.get("epoch")) else int(row["epoch"])
    status = row.get("status")
    if status == "failed":
        return TrialStatus(trial_id, axes, "failed", epoch, row.get("error"))
    if status == "diverged":
        return TrialStatus(trial_id, axes, "diverged", epoch, row.get("error"))
    if status == COLLAPSED_STOPPED:  # ended by the sweep's stop_collapsed: a result, shown with its epoch
        return TrialStatus(trial_id, axes, "stopped", epoch, row.get("error"))
    return TrialStatus(trial_id, axes, "done" if row.get("is_final") else "interrupted", epoch, None)


def _with_live(states: list[TrialStatus], live: LiveRun, new_axes: dict[str, Any]) -> list[TrialStatus]:
    """``states`` as the live run sees its unfinished trials (a failed one it retries runs again);
    a search's sampled trials without rows yet are added."""
    out = []
    for s in states:
        info = live.trials.get(s.trial_id, {})
        if info.get("state") in LIVE_STATES and s.state not in ("done", "diverged", "stopped"):
            s = replace(s, state=info["state"], error=None, epoch=info.get("epoch", s.epoch))
            s = replace(s, epochs=info.get("epochs"), images_per_s=info.get("images_per_s"))
        out.append(s)
    known = {s.trial_id for s in states}
    out += [
        TrialStatus(tid, new_axes, info["state"], info.get("epoch"), None, info.get("epochs"), info.get("images_per_s"))
        for tid, info in live.trials.items()
        if tid not in known and info.get("state") in LIVE_STATES
    ]
    return out


def render_status(states: list[TrialStatus], where: Any) -> str:
    """The counts line, then one line per trial that is not done (with its error, or its epoch)."""
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    said_if_any = [k for k in (*LIVE_STATES, "stopped") if counts.get(k)]  # the others are said even at 0
    order = [ORDER[0], *said_if_any, *ORDER[1:]]
    head = f"{where}: {len(states)} trials: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in order)
    lines = [head]
    for s in states:
        if s.state == "done":
            continue
        axes = " ".join(f"{k}={compact(v)}" for k, v in s.axes.items())
        lines.append(f"  {s.state:<11} {s.trial_id}  {axes}{_epoch_text(s)}")
        if s.error:
            lines.append(f"              error: {s.error}")
    return "\n".join(lines)


def _epoch_text(s: TrialStatus) -> str:
    if s.state == "running":  # kinds without epochs (the theory's) say running only
        rate = f", {images_text(s.images_per_s)}" if s.images_per_s else ""
        return f" (epoch {s.epoch or 0}/{s.epochs}{rate})" if s.epochs else ""
    return f" (epoch {s.epoch})" if s.epoch is not None else ""


# ---------------------------------------------------------------- the running run, if any
def live_run(folder: SweepDir) -> LiveRun | None:
    """The ``ablate run`` writing ``folder`` now, or None: its progress file counts only while the
    driver it names holds the run lock."""
    try:
        doc = json.loads(folder.progress_file.read_bytes())
        run = LiveRun(int(doc["pid"]), str(doc["host"]), dict(doc["trials"]))
        updated = float(doc["updated"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    holder = lock_holder(folder)
    if holder is None or not holder.startswith(f"{run.describe()} "):
        return None  # no run holds the lock, or another run than the file's
    if folder.lock_file.local is None and time.time() - updated > STALE_S:
        return None  # an object-store lock outlives a killed run: only a fresh file counts
    return run
