"""The timing primitives of ``ablate bench``: what a measurement is, its target, and interleaved timing.

Each figure is ours against a baseline timed in the same process, on the same data, with the
repeats interleaved (round r runs A then B, round r+1 B then A) after warm-up, and the median of
each side taken: machine noise (a shared CPU, a busy GPU) hits both sides alike and cancels in the
ratio. On CUDA every timed call ends with ``torch.cuda.synchronize()``.
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

    @property
    def ratio(self) -> float | None:
        return _ratio(self.ours, self.baseline)

    @property
    def verdict(self) -> str:
        if self.status:
            return self.status
        if self.target is None:
            return ""
        met = self.target.met(self.ours, self.baseline)
        return "n/a" if met is None else ("met" if met else "missed")


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
