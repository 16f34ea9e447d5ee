"""The live progress view of ``ablate run``: one concise line instead of Ray's verbose tables.

``trials 12/40 done | 4 running | 22 pending | 2 failed | 1 diverged | 03:12 elapsed | ETA 08:40 |
best probe_top1_best 0.781``. On a terminal the line is redrawn in place; otherwise (CI, SLURM logs)
a line is printed whenever the counts change, at most every ``interval`` seconds.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import IO


def clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


@dataclass
class ProgressView:
    total: int
    metric: str
    mode: str = "max"
    skipped: int = 0
    stream: IO[str] = field(default_factory=lambda: sys.stdout)
    interval: float = 10.0
    running: set[str] = field(default_factory=set)
    status: dict[str, str] = field(default_factory=dict)  # trial_id -> ok | diverged | failed
    best: float | None = None
    started: float = field(default_factory=time.monotonic)
    _last_line: str = ""
    _last_print: float = 0.0

    def start(self, trial_id: str) -> None:
        self.running.add(trial_id)
        self.draw()

    def result(self, row: dict) -> None:
        value = row.get(self.metric)
        if isinstance(value, (int, float)) and value == value:  # skip None / NaN
            better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
            self.best = value if better else self.best
        if row.get("is_final"):
            self.finish(row["trial_id"], row.get("status", "ok"))

    def finish(self, trial_id: str, status: str) -> None:
        self.running.discard(trial_id)
        self.status[trial_id] = status
        self.draw()

    def counts(self) -> dict[str, int]:
        done = sum(s == "ok" for s in self.status.values())
        failed = sum(s == "failed" for s in self.status.values())
        diverged = sum(s == "diverged" for s in self.status.values())
        pending = self.total - len(self.status) - len(self.running)
        return {
            "done": done,
            "running": len(self.running),
            "pending": max(0, pending),
            "failed": failed,
            "diverged": diverged,
        }

    def line(self) -> str:
        c = self.counts()
        elapsed = time.monotonic() - self.started
        finished = len(self.status)
        eta = f"ETA {clock(elapsed / finished * (self.total - finished))}" if finished else "ETA --"
        best = f"best {self.metric} {self.best:.4g}" if self.best is not None else f"best {self.metric} --"
        skipped = f" (+{self.skipped} already done)" if self.skipped else ""
        return (
            f"trials {finished}/{self.total}{skipped} | {c['running']} running | {c['pending']} pending | "
            f"{c['failed']} failed | {c['diverged']} diverged | {clock(elapsed)} elapsed | {eta} | {best}"
        )

    def draw(self, force: bool = False) -> None:
        text = self.line()
        tty = self.stream.isatty()
        now = time.monotonic()
        if tty:
            self.stream.write("\r" + text.ljust(len(self._last_line)))
        elif (
            force
            or text.split(" | ")[:5] != self._last_line.split(" | ")[:5]
            or now - self._last_print >= self.interval
        ):
            self.stream.write(text + "\n")
        else:
            return
        self.stream.flush()
        self._last_line, self._last_print = text, now

    def close(self) -> None:
        self.draw(force=not self.stream.isatty())
        if self.stream.isatty():
            self.stream.write("\n")
