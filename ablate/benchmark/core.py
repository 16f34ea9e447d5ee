"""The timing primitives of ``ablate bench``: what a measurement is, its target, and interleaved timing.

Each figure is ours against a baseline timed in the same process, on the same data, with the
repeats interleaved (round r runs A then B, round r+1 B then A) after warm-up, and the median of
each side taken: machine noise (a shared CPU, a busy GPU) hits both sides alike and cancels in the
ratio. On CUDA every timed call ends with ``torch.cuda.synchronize()``.

Noise that does not cancel is said, not hidden (:func:`judge_noise`): a figure whose repeats on one
side lie more than :data:`NOISY_SPREAD` apart, a time at or below zero, or a part timed larger than
its whole gets the verdict ``noisy`` instead of met or missed.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ablate.benchmark.sizes import BenchSizes

# ---------------------------------------------------------------- figures and targets


@dataclass(frozen=True)
class Target:
    """What a figure must reach: ``on`` is the quantity compared (``ratio`` = ours / baseline,
    ``ours`` = the raw figure, ``overhead`` = ours - baseline), ``op`` is ``>=`` or ``<=``."""

    on: str
    op: str
    value: float
    label: str  # as printed, e.g. "ratio >= 3"

    def met(self, ours: float, baseline: float) -> bool | None:
        x = {"ratio": _ratio(ours, baseline), "ours": ours, "overhead": ours - baseline}[self.on]
        if x is None or not math.isfinite(x):
            return None
        return x >= self.value if self.op == ">=" else x <= self.value


@dataclass
class Measurement:
    """One measured figure: ours and the baseline in ``unit`` (medians of the interleaved runs)."""

    section: str
    what: str
    ours: float
    baseline: float
    unit: str
    target: Target | None = None
    note: str = ""
    ours_runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    status: str = ""  # "skipped" (not measurable here) or "failed" (the section raised); "" = measured
    part_of: str = ""  # the ``what`` of the figure of this section whose time includes this one's
    noise: str = ""  # why the figure cannot be trusted (:func:`judge_noise`); "" = it can

    @property
    def ratio(self) -> float | None:
        return _ratio(self.ours, self.baseline)

    @property
    def verdict(self) -> str:
        if self.status:
            return self.status
        if self.noise:
            return "noisy"
        if self.target is None:
            return ""
        met = self.target.met(self.ours, self.baseline)
        return "n/a" if met is None else ("met" if met else "missed")


# The slowest repeat of one side over its fastest beyond which its median says more about the machine
# than about the code (an idle machine with one thread per side stays within a few percent).
NOISY_SPREAD = 1.5
TIME_UNITS = ("s", "s/step", "s/trial")


def spread(runs: list[float]) -> float | None:
    """Largest over smallest of a side's repeats (inf if one is at or below zero: a difference of two
    noisy timings); None with fewer than two."""
    xs = [x for x in runs if math.isfinite(x)]
    if any(x <= 0 for x in xs):
        return math.inf
    return max(xs) / min(xs) if len(xs) >= 2 else None


def judge_noise(figures: list[Measurement]) -> None:
    """Set ``noise`` on each measured figure whose numbers contradict themselves or each other."""
    reasons = {id(f): _own_noise(f) for f in figures}
    wholes = {(f.section, f.what): f for f in figures}
    for part in figures:
        whole = wholes.get((part.section, part.part_of))
        if whole is None or part.status or whole.status or not part.ours > whole.ours:
            continue
        reasons[id(part)].append(f"larger than its whole, {whole.what!r} ({part.ours:.3g} > {whole.ours:.3g})")
        reasons[id(whole)].append(f"smaller than its part {part.what!r}")
    for f in figures:
        f.noise = "" if f.status else "; ".join(reasons[id(f)])


def _own_noise(f: Measurement) -> list[str]:
    """What is wrong with one figure alone: an impossible time, repeats too far apart."""
    out = [f"a time of {f.ours:.3g} {f.unit}"] if f.unit in TIME_UNITS and f.ours <= 0 else []
    for side, runs in (("ours", f.ours_runs), ("baseline", f.baseline_runs)):
        x = spread(runs)
        if x is not None and x > NOISY_SPREAD:
            apart = "one at or below zero" if math.isinf(x) else f"{x:.1f}x apart"
            out.append(f"repeats of {side} {min(runs):.3g} to {max(runs):.3g} {f.unit} ({apart})")
    return out


def _ratio(a: float, b: float) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return None
    return a / b


# ---------------------------------------------------------------- timing


def cuda_sync(device: Any) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (a no-op on CPU)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def interleave(
    fns: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in interleaved rounds.

    ``warmup`` untimed rounds first (allocator, cudnn.benchmark, DataLoader workers, caches); then
    ``repeats`` timed rounds, in the given order on even rounds and reversed on odd rounds (A B,
    B A, ...), so neither side always runs right after the other. ``sync`` is called before the
    clock starts and before it stops (device-synchronised timing on GPU)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            sync()
            t0 = clock()
            fns[name]()
            sync()
            out[name].append(clock() - t0)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


# ---------------------------------------------------------------- running


@dataclass
class BenchContext:
    """What every section gets: the device, the thread count, the sizes, where to report progress."""

    device: str
    threads: int
    sizes: BenchSizes
    quick: bool
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
