"""The live progress of ``ablate run``: one line a person can watch, and ``progress.json`` for ``ablate status``.

``trials 3/8 | 2 running (epochs 7/30 12/30, 2,468 img/s) | 3 pending | 0 failed | 0 diverged | 01:50 elapsed |
ETA 02:36 | best probe_top1_best 0.9778``

* each running trial's epoch and images/s come from its per-epoch heartbeat and its rows;
* the ETA counts epochs: the epochs left in running and pending trials at the rate this run has
  trained epochs since its first (all trials together; the first epoch also paid for starting Ray,
  the worker and the data), shown once a few more have been timed; for trials without epoch
  heartbeats, finished trials, once a few have finished;
* on a terminal tqdm redraws the line in place, cut to the terminal's width (the less telling parts
  shortened first), and the clock ticks once a second; in a log (not a terminal) a line is printed
  once per change: at once when a trial starts or ends, otherwise at most every ``interval``
  seconds, never the same line twice, and never for the clock alone.

The view also keeps ``<storage>/_<sweep>/progress.json`` (:class:`ablate.runner.live_file.LiveFile`): each
trial's state, epoch and images/s with the driver's pid, which ``ablate status`` shows while that driver
holds the run lock (:func:`ablate.analysis.status.live_run`).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from ablate.results.schema import COLLAPSED_STOPPED
from ablate.runner.live_file import LiveFile

# Where the line is wider than the terminal, the parts give way in this order, one form at a time
# (:meth:`ProgressView.parts`): zero counts and words first, each running trial's epoch last.
SHORTEN = ("stopped", "failed", "diverged", "trials", "elapsed", "best", "running", "running", "running", "best",
           "trials", "pending", "failed", "diverged", "running", "best", "running")  # fmt: skip
TICK_S = 1.0  # a terminal's line is redrawn at least this often (the clock), at most this often for epochs
# An ETA is shown only from a measured rate: epochs timed after the run's first (which includes the
# start-up, 5-10x an epoch of a small trial), or, without epochs, trials finished.
MEASURED_EPOCHS = 3
MEASURED_TRIALS = 3


def clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


def images_text(ips: float) -> str:
    return f"{ips:,.0f} img/s"


@dataclass
class TrialProgress:
    """One trial of this run: its epoch, epochs in all, images/s, and the epoch it started from in
    this run (``base``: 0, or the checkpoint's epoch; None until its first heartbeat says)."""

    epoch: int = 0
    epochs: int | None = None
    images_per_s: float | None = None
    base: int | None = None

    @property
    def trained(self) -> int:
        """Epochs trained in this run (known once a heartbeat named the start)."""
        return max(0, self.epoch - self.base) if self.base is not None else 0

    def text(self) -> str:
        return f"{self.epoch}/{self.epochs}"


@dataclass
class ProgressView:
    total: int
    metric: str
    mode: str = "max"
    skipped: int = 0
    stream: IO[str] = field(default_factory=lambda: sys.stdout)
    interval: float = 10.0  # log lines for epoch progress alone: at most one per interval
    running: set[str] = field(default_factory=set)
    status: dict[str, str] = field(default_factory=dict)  # trial_id -> ok | diverged | failed
    best: float | None = None
    started: float = field(default_factory=lambda: time.monotonic())
    planned: dict[str, int | None] = field(default_factory=dict)  # trial_id -> epochs, of the trials to run
    trials: dict[str, TrialProgress] = field(default_factory=dict)  # this run's trials, in start order
    live: LiveFile | None = None  # the progress file
    _first_start: float | None = None
    _first_epoch: tuple[float, int] | None = None  # (when, epochs trained) once this run trained one
    _terminal: Any = None
    _printed: tuple[str, str] = ("", "")  # (state, counts) of the last line printed to a log
    _printed_at: float = float("-inf")
    _drawn_at: float = float("-inf")

    # -- events
    def start(self, trial_id: str) -> None:
        self.running.add(trial_id)
        self.trials.setdefault(trial_id, TrialProgress(epochs=self.planned.get(trial_id)))
        self._first_start = self._first_start or time.monotonic()
        self.changed(True)

    def result(self, row: dict) -> None:
        value = row.get(self.metric)
        if isinstance(value, (int, float)) and value == value:  # skip None / NaN
            better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
            self.best = value if better else self.best
        epoch = row.get("epoch")
        if row.get("trial_id") and isinstance(epoch, int):
            self._observe(row["trial_id"], epoch, row.get("train.epochs"), row.get("images_per_s"))
        if row.get("is_final"):
            self.finish(row["trial_id"], row.get("status", "ok"))
        else:
            self.changed()

    def heartbeat(self, trial_id: str, info: dict[str, Any]) -> None:
        """A trial's per-epoch heartbeat (:data:`ablate.train.loop.Progress`)."""
        tp = self._observe(trial_id, int(info["epoch"]), info.get("epochs"), info.get("images_per_s"))
        if tp.base is None:
            tp.base = int(info.get("resumed_from") or 0)
        trained = sum(t.trained for t in self.trials.values())
        if self._first_epoch is None and trained:
            self._first_epoch = (time.monotonic(), trained)
        self.changed()

    def finish(self, trial_id: str, status: str) -> None:
        self.running.discard(trial_id)
        self.status[trial_id] = status
        self.changed(True)

    def _observe(self, trial_id: str, epoch: int, epochs: Any, ips: Any) -> TrialProgress:
        tp = self.trials.setdefault(trial_id, TrialProgress(epochs=self.planned.get(trial_id)))
        tp.epoch = max(tp.epoch, epoch)
        tp.epochs = int(epochs) if isinstance(epochs, (int, float)) and epochs == epochs else tp.epochs
        tp.images_per_s = float(ips) if isinstance(ips, (int, float)) and ips == ips else tp.images_per_s
        return tp

    # -- what the line says
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
            "stopped": sum(s == COLLAPSED_STOPPED for s in self.status.values()),
        }

    def eta(self) -> float | None:
        """Seconds left: epochs left / epochs trained per second since this run's first epoch, else from
        finished trials; None until enough is measured (:data:`MEASURED_EPOCHS`, :data:`MEASURED_TRIALS`)."""
        now = time.monotonic()
        left = self._epochs_left()
        if self._first_epoch is not None and left is not None:
            since, first = self._first_epoch
            timed = sum(tp.trained for tp in self.trials.values()) - first
            return left * (now - since) / timed if timed >= MEASURED_EPOCHS else None
        finished = len(self.status) - self.skipped
        if finished < MEASURED_TRIALS or self._first_start is None:
            return None
        return (now - self._first_start) / finished * (self.total - len(self.status))

    def _epochs_left(self) -> int | None:
        """Epochs still to train in running and pending trials; None where a trial's epochs are unknown."""
        known = [tp.epochs for tp in self.trials.values() if tp.epochs] + [e for e in self.planned.values() if e]
        typical = round(sum(known) / len(known)) if known else None  # a search's unsampled trials
        running = [self.trials[t] for t in self.running]
        waiting = [e for t, e in self.planned.items() if t not in self.trials and t not in self.status]
        waiting += [typical] * max(0, self.counts()["pending"] - len(waiting))
        sizes = [tp.epochs and tp.epochs - tp.epoch for tp in running] + waiting
        return None if any(s is None for s in sizes) else sum(max(0, s) for s in sizes)

    def _running_forms(self) -> list[str]:
        n = len(self.running)
        # trials of kinds without epochs (the theory's) are counted, not listed
        shown = [tp for tid, tp in self.trials.items() if tid in self.running and tp.epochs]
        ips = sum(tp.images_per_s or 0.0 for tp in shown)

        def detail(most: int, rate: bool = False, word: bool = False) -> str:
            items = [tp.text() for tp in shown[:most]] + ([f"+{len(shown) - most}"] if len(shown) > most else [])
            epochs = ("epoch " if len(shown) == 1 else "epochs ") * word + " ".join(items)
            return f" ({', '.join([epochs, *([images_text(ips)] if rate and ips else [])])})" if shown else ""

        return [f"{n} running{detail(6, True, True)}", f"{n} running{detail(3, True, True)}",
                f"{n} running{detail(3, word=True)}", f"{n} running{detail(3)}", f"{n} run{detail(2)}",
                f"{n} run{detail(1)}"]  # fmt: skip

    def parts(self) -> dict[str, list[str]]:
        """Each part of the line in its forms, longest first ("" leaves it out); :data:`SHORTEN` says
        which part gives way first where the line is too long."""
        c, finished, t = self.counts(), len(self.status), self.total
        eta, elapsed = self.eta(), clock(time.monotonic() - self.started)
        b = self.best
        best = [f"best {self.metric} {b:.4g}", f"best {b:.4g}", f"best {b:.3g}", ""] if b is not None else None

        def count(n: int, word: str, short: str) -> list[str]:  # a zero is said in full only
            return [f"{n} {word}", f"{n} {word}" if n else "", f"{n} {short}" if n else ""]

        return {
            "trials": [
                f"trials {finished}/{t}" + (f" ({self.skipped} done before)" if self.skipped else ""),
                f"trials {finished}/{t}",
                f"{finished}/{t}",
            ],
            "running": self._running_forms(),
            "pending": [f"{c['pending']} pending", f"{c['pending']} pend"],
            "failed": count(c["failed"], "failed", "fail"),
            "diverged": count(c["diverged"], "diverged", "div"),
            # trials stop_collapsed ended: said only when there are some
            "stopped": [f"{c['stopped']} stopped (collapsed)", f"{c['stopped']} stopped", ""] if c["stopped"] else [""],
            "elapsed": [f"{elapsed} elapsed", elapsed],
            "eta": [f"ETA {clock(eta) if eta is not None else '--'}"],
            "best": best or [f"best {self.metric} --", ""],
        }

    def line(self, width: int | None = None) -> str:
        """The whole line, or (``width``) the most of it that fits: parts shortened in :data:`SHORTEN`'s
        order, then the last parts left out."""
        parts = self.parts()
        form = dict.fromkeys(parts, 0)

        def shown() -> list[str]:
            return [p[min(form[k], len(p) - 1)] for k, p in parts.items() if p[min(form[k], len(p) - 1)]]

        for name in SHORTEN:
            if width is None or len(" | ".join(shown())) <= width:
                break
            form[name] += 1
        out = shown()
        while width is not None and len(out) > 1 and len(" | ".join(out)) > width:
            out.pop()  # the last parts say the least
        return " | ".join(out)[:width]

    def _state(self) -> tuple[str, str]:
        """(the line without its clocks, the counts): what makes a log line new."""
        parts = self.parts()
        return " | ".join(p[0] for k, p in parts.items() if k not in ("elapsed", "eta")), str(self.counts())

    # -- drawing
    def changed(self, counts: bool = False) -> None:
        """Something happened: update the progress file and the line (``counts``: a trial started or ended)."""
        if self.live is not None:
            self.live.publish(self.snapshot(), force=counts)
        self.draw(counts)

    def tick(self) -> None:
        """Called often (every step of Tune's loop): the terminal's clock, a log's pending change, the
        progress file's keep-alive."""
        now = time.monotonic()
        if self.live is not None and self.live.due():
            self.live.publish(self.snapshot())
        if self.stream.isatty():
            if now - self._drawn_at >= TICK_S:
                self.draw()
        elif now - self._printed_at >= self.interval:
            self.draw()

    def draw(self, force: bool = False) -> None:
        """Show the line: redrawn in place on a terminal; in a log printed when it says something new
        (``force``: without waiting for ``interval``)."""
        now = time.monotonic()
        if self.stream.isatty():
            if not force and now - self._drawn_at < TICK_S / 4:
                return
            if self._terminal is None:
                self._terminal = _Terminal(self.stream)
            self._terminal.show(self.line(self._terminal.width()))
            self._drawn_at = now
            return
        state = self._state()
        if state[0] == self._printed[0]:
            return
        if not (force or state[1] != self._printed[1] or now - self._printed_at >= self.interval):
            return  # an epoch moved on: wait for the interval (tick prints it)
        self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._printed, self._printed_at = state, now

    def close(self) -> None:
        """The final line (if a line was shown and this one is new), and the progress file removed."""
        if self._terminal is not None or self._printed_at > float("-inf"):
            self.draw(force=True)
        if self._terminal is not None:
            self._terminal.close()
            self._terminal = None
        if self.live is not None:
            self.live.remove()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """trial_id -> state (running / pending) with epoch, epochs and images/s: the progress file's trials."""
        out: dict[str, dict[str, Any]] = {
            tid: {"state": "running", "epoch": tp.epoch, "epochs": tp.epochs, "images_per_s": tp.images_per_s}
            for tid, tp in self.trials.items()
            if tid in self.running
        }
        out.update({t: {"state": "pending"} for t in self.planned if t not in self.trials and t not in self.status})
        return out


class _Terminal:
    """The line on a terminal: tqdm redraws it in place; the width is the terminal's, read at each draw."""

    def __init__(self, stream: IO[str]) -> None:
        from tqdm import tqdm

        self.bar = tqdm(file=stream, bar_format="{desc}", dynamic_ncols=True, leave=True)

    def width(self) -> int:
        """Columns to fill: tqdm's width (the terminal's less one, so the cursor never wraps)."""
        return self.bar.format_dict.get("ncols") or shutil.get_terminal_size().columns - 1

    def show(self, text: str) -> None:
        self.bar.set_description_str(text, refresh=True)

    def close(self) -> None:
        self.bar.close()
