"""``ablate status``: which trials of a sweep are done, failed, diverged or missing, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ablate.sweep.expand import compact
from ablate.sweep.validated import Sweep


@dataclass(frozen=True)
class TrialStatus:
    trial_id: str
    axes: dict[str, Any]
    state: str  # done | diverged | failed | running/interrupted | missing
    epoch: int | None
    error: str | None


def trial_states(sweep: Sweep, df: pd.DataFrame) -> list[TrialStatus]:
    """One entry per expanded trial (search sweeps: per trial found in the results ``df``)."""
    last: dict[str, dict] = {}
    if not df.empty:
        for tid, rows in df.groupby("trial_id", sort=False):
            last[tid] = rows.sort_values("epoch", na_position="last").iloc[-1].to_dict()
    out = [_state(t.trial_id, t.axes, last.get(t.trial_id)) for t in sweep.trials]
    if sweep.search:  # a search's trials are whatever it sampled
        out += [_state(tid, {"search": row.get("search")}, row) for tid, row in last.items()]
    # (rows of trials the sweep no longer expands to, e.g. after editing its grid, are not counted)
    return out


def _state(trial_id: str, axes: dict[str, Any], row: dict | None) -> TrialStatus:
    if row is None:
        return TrialStatus(trial_id, axes, "missing", None, None)
    epoch = None if pd.isna(row.get("epoch")) else int(row["epoch"])
    status = row.get("status")
    if status == "failed":
        return TrialStatus(trial_id, axes, "failed", epoch, row.get("error"))
    if status == "diverged":
        return TrialStatus(trial_id, axes, "diverged", epoch, row.get("error"))
    return TrialStatus(trial_id, axes, "done" if row.get("is_final") else "interrupted", epoch, None)


def render_status(states: list[TrialStatus], where: Any) -> str:
    """The counts line, then one line per trial that is not done (with its error)."""
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    order = ["done", "diverged", "failed", "interrupted", "missing"]
    head = f"{where}: {len(states)} trials: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in order)
    lines = [head]
    for s in states:
        if s.state == "done":
            continue
        axes = " ".join(f"{k}={compact(v)}" for k, v in s.axes.items())
        epoch = f" (epoch {s.epoch})" if s.epoch is not None else ""
        lines.append(f"  {s.state:<11} {s.trial_id}  {axes}{epoch}")
        if s.error:
            lines.append(f"              error: {s.error}")
    return "\n".join(lines)
