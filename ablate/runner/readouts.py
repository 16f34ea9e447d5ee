"""Trials read from a longer trial's run (:mod:`ablate.sweep.prefix`): the driver writes their rows.

A shorter trial never runs. When the run of the longest trial of its group reports its row at the
shorter trial's last epoch, the driver writes the shorter trial's file: the long trial's rows up to
that epoch, relabelled as the shorter trial's (its trial_id, config columns, ``train.epochs`` and the
kind's length-dependent columns), the last one final, and every one marked ``derived_from`` = the
long trial's id. Its weights at that epoch the long trial's process keeps in the shorter trial's
weights folder (:attr:`ablate.results.io.ArtifactStore.readouts`). A long run that ends before a
shorter trial's length (diverged, stopped as collapsed, failed) ends that trial the same way: a
trial of that many epochs would have met the same fate at the same step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ablate.kinds.record import TrialKind
from ablate.results.io import ResultsStore
from ablate.sweep.expand import Trial
from ablate.sweep.prefix import readouts_of

# columns of a row that are its run's, not its trial's: a row read from another run keeps them
RUN_COLUMNS = ("status", "error", "is_final", "device", "started_at", "git_sha", "git_dirty", "versions")


def derive(
    rows: list[dict[str, Any]], short: Trial, end: int, long: Trial, kind: TrialKind, ended: bool = False
) -> list[dict] | None:
    """The rows of ``short`` (a trial of ``end`` epochs) read from the rows so far of ``long``'s run, or
    None while that run has neither reached epoch ``end`` nor ended.

    At ``end``: the long rows of epochs 1..end, the last one final. Ended before ``end`` (its last row
    final: diverged or collapsed_stopped; failed only once ``ended``, as a failed run may be retried):
    all its rows, ending as it did."""
    reached = any(r.get("epoch") == end and r.get("status") == "ok" for r in rows)
    last = rows[-1] if rows else {}
    over = bool(last.get("is_final")) and (last.get("status") != "failed" or ended)
    if not reached and not over:
        return None
    taken = [r for r in rows if r.get("epoch") is not None and r["epoch"] <= end] if reached else list(rows)
    own = {k: v for k, v in kind.columns(short.config).items() if k not in RUN_COLUMNS}
    mark = {"search": short.search, "derived_from": long.trial_id}
    length = kind.prefix.for_length if kind.prefix is not None else (lambda row, a, b: {})
    out = [{**r, **own, **mark, **length(r, long.config, short.config), "is_final": False} for r in taken]
    out[-1]["is_final"] = True
    if out[-1].get("status") == "failed":
        out[-1]["error"] = f"the run it is read from ({long.trial_id}) failed: {out[-1].get('error') or ''}"
    return out


@dataclass
class Readouts:
    """The shorter trials of this run still to be written, by the long trial whose run they are read
    from (shortest first), with their lengths."""

    store: ResultsStore
    kind: TrialKind
    longs: dict[str, Trial] = field(default_factory=dict)
    waiting: dict[str, list[tuple[int, Trial]]] = field(default_factory=dict)

    @classmethod
    def plan(cls, store: ResultsStore, kind: TrialKind, trials: Any, done: set[str]) -> Readouts:
        """The trials not ``done`` that are read from a longer trial's run (whether that run is still to
        come or, ``done``, its rows are already in the store)."""
        todo = [t for t in trials if t.trial_id not in done]
        waiting = readouts_of(todo, kind.prefix)
        longs = {t.trial_id: t for t in trials if t.trial_id in waiting}
        return cls(store, kind, longs, waiting)

    def params(self, long_id: str) -> list[list[Any]]:
        """[[epochs, trial_id]] of the shorter trials a long trial's process keeps weights for."""
        return [[end, t.trial_id] for end, t in self.waiting.get(long_id, ())]

    def written(self, long_id: str, ended: bool = False) -> list[tuple[str, list[dict[str, Any]]]]:
        """After rows of ``long_id`` were stored (``ended``: its run is over, retries included): (trial_id,
        rows) of each shorter trial they complete (each once)."""
        rows = self.store.load_rows(long_id) if long_id in self.waiting else []
        out = []
        for end, short in list(self.waiting.get(long_id, ())):
            derived = derive(rows, short, end, self.longs[long_id], self.kind, ended)
            if derived is not None:
                self.waiting[long_id].remove((end, short))
                out.append((short.trial_id, derived))
        return out

    def pending_from(self, done: set[str]) -> list[str]:
        """The long trials already finished whose shorter trials are still to be written (from their rows)."""
        return [tid for tid, left in self.waiting.items() if left and tid in done]
