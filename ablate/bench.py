"""``ablate bench``: every cost of a sweep, measured side by side with a baseline in the same run.

Each figure is ours against a baseline timed in the same process, on the same data, with the
repeats interleaved (round r runs A then B, round r+1 B then A) after warm-up, and the median of
each side taken: machine noise (a shared CPU, a busy GPU) hits both sides alike and cancels in the
ratio. On CUDA every timed call ends with ``torch.cuda.synchronize()``.

Sections (``--only`` names):

=============  ===============================================================  ===================
section        ours vs baseline                                                 target (CPU)
=============  ===============================================================  ===================
augment        batched per-image augmentation vs torchvision's per-sample        ratio >= 3
               pipeline in a DataLoader with the same number of workers
step           one BYOL step of the trial loop vs a plain hand-written step      ratio <= 1.10
directpred     a DirectPred step (freq 1, 5) vs the linear predictor's step      freq 1: <= 1.15
eval           probe + kNN evaluation vs one training epoch                      (reported)
orchestration  N trivial trials through ``ablate run`` (Ray Tune) vs a loop      overhead <= 2 s/trial
gpu            images/s with 1, 2, 4 trials packed on one GPU, peak memory,      >= 10,000 img/s
               MFU (CUDA only)                                                   (H100, packed)
=============  ===============================================================  ===================

Library use: :func:`run_bench` returns one row per figure (a DataFrame) and :func:`render_bench`
prints it. The sections live in :mod:`ablate.bench_sections` (CPU and GPU) and
:mod:`ablate.bench_gpu` (packing, MFU). This module imports nothing heavy at import time, so the
CLI's ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ablate.bench_sizes import DIGITS, STL10_SPLITS, BenchSizes, sizes_for, stl10_like
from ablate.errors import UserError

SECTIONS = ("augment", "step", "directpred", "eval", "orchestration", "gpu")

# ---------------------------------------------------------------- figures and targets


@dataclass(frozen=True)
class Target:
    """What a figure must reach: ``on`` is the quantity compared (``ratio`` = ours / baseline,
    ``ours`` = the raw figure, ``overhead`` = ours - baseline), ``op`` is ``>=`` or ``<=``."""

    on: str
    op: str
    value: float
    label: str  # as printed, e.g. "ratio >= 3"

    def met(self, ours: float, baseline: float) -> Optional[bool]:
        x = {"ratio": _ratio(ours, baseline), "ours": ours, "overhead": ours - baseline}[self.on]
        if x is None or not math.isfinite(x):
            return None
        return x >= self.value if self.op == ">=" else x <= self.value


@dataclass
class Figure:
    """One measured figure: ours and the baseline in ``unit`` (medians of the interleaved runs)."""

    section: str
    what: str
    ours: float
    baseline: float
    unit: str
    target: Optional[Target] = None
    note: str = ""
    ours_runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    status: str = ""  # "skipped" (not measurable here) or "failed" (the section raised); "" = measured

    @property
    def ratio(self) -> Optional[float]:
        return _ratio(self.ours, self.baseline)

    @property
    def verdict(self) -> str:
        if self.status:
            return self.status
        if self.target is None:
            return ""
        met = self.target.met(self.ours, self.baseline)
        return "n/a" if met is None else ("met" if met else "missed")


def _ratio(a: float, b: float) -> Optional[float]:
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


def interleave(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
               sync: Callable[[], None] = lambda: None,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
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
        for name in (names if r % 2 == 0 else names[::-1]):
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


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but CUDA is not available on this machine; use --device cpu (or auto)")
    return name


def parse_sections(only: Optional[str | list[str]]) -> list[str]:
    """``--only step,eval`` -> ["step", "eval"] in the canonical order; unknown names are a UserError."""
    from ablate.configtree import did_you_mean

    if not only:
        return list(SECTIONS)
    names = [s.strip() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()]
    for name in names:
        if name not in SECTIONS:
            hint = did_you_mean(name, SECTIONS)
            raise UserError(f"--only {name}: unknown section{hint or '; choose from ' + ', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]


def run_bench(quick: bool = False, device: str = "auto", out_dir: Optional[Path] = None,
              sections: Optional[list[str]] = None, threads: Optional[int] = None,
              sizes: Optional[BenchSizes] = None,
              log: Optional[Callable[[str], None]] = None) -> "Any":
    """Run the benchmark sections and return one row per figure (a pandas DataFrame).

    ``device``: cpu, cuda or auto. ``threads``: torch threads of our side and DataLoader workers
    of the baseline (default: the available cores). ``out_dir``: when given, the rows are also
    written to ``out_dir/bench-<UTC time>-<device>.parquet``. ``sizes`` overrides the preset."""
    import torch

    from ablate import bench_sections

    device = resolve_device(device)
    chosen = parse_sections(sections)
    threads = threads or available_cores()
    torch.set_num_threads(threads)
    ctx = BenchContext(device, threads, sizes or sizes_for(quick, device), quick)
    if log is not None:
        ctx.log = log
    started = dt.datetime.now(dt.timezone.utc)
    figures: list[Figure] = []
    for name in chosen:
        ctx.log(f"bench: {name} ...")
        t0 = time.perf_counter()
        try:
            figures += bench_sections.SECTION_FUNCTIONS[name](ctx)
        except Exception as e:  # one broken section must not lose the others (unattended GPU runs)
            ctx.log(traceback.format_exc())
            figures.append(Figure(name, "section failed", math.nan, math.nan, "", None, status="failed",
                                  note=f"{type(e).__name__}: {e}"))
        finally:
            torch.set_num_threads(threads)  # a trial config may have changed it
        ctx.log(f"bench: {name} done in {time.perf_counter() - t0:.1f} s")
    df = to_frame(figures, ctx, started)
    if out_dir is not None:
        df.attrs["path"] = str(write_bench(df, Path(out_dir), started, device))
    return df


def to_frame(figures: list[Figure], ctx: BenchContext, started: dt.datetime) -> "Any":
    """Figures -> the bench's rows, each with device, versions and git sha (ablate.provenance)."""
    import pandas as pd
    import torch

    from ablate.provenance import provenance

    prov = provenance(torch.device(ctx.device))
    rows = []
    for f in figures:
        rows.append({
            "section": f.section, "what": f.what, "ours": f.ours, "baseline": f.baseline, "unit": f.unit,
            "ratio": f.ratio if f.ratio is not None else math.nan,
            "target": f.target.label if f.target else "", "verdict": f.verdict, "note": f.note,
            "ours_runs": [float(x) for x in f.ours_runs], "baseline_runs": [float(x) for x in f.baseline_runs],
            "device": prov["device"], "device_type": ctx.device, "threads": ctx.threads, "quick": ctx.quick,
            "git_sha": prov["git_sha"], "git_dirty": prov["git_dirty"], "versions": prov["versions"],
            "started_at": started.isoformat(timespec="seconds"),
        })
    return pd.DataFrame(rows)


def write_bench(df: "Any", out_dir: Path, started: dt.datetime, device: str) -> Path:
    """Write the rows atomically to ``out_dir/bench-<UTC time>-<device>.parquet``."""
    import pyarrow as pa

    from ablate.results import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}-{device}.parquet"
    atomic_write(pa.Table.from_pandas(df, preserve_index=False), path)
    return path


# ---------------------------------------------------------------- rendering


def fmt_number(x: Any) -> str:
    """Three significant figures, no exponent for everyday magnitudes; '-' for missing."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    x = float(x)
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    digits = max(0, 2 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{digits}f}"


def render_bench(df: "Any") -> str:
    """One table: section, what, ours, baseline, unit, ratio, target, verdict; then the provenance
    and the notes of the figures that have one."""
    header = ["section", "what", "ours", "baseline", "unit", "ratio", "target", "verdict"]
    body = []
    for r in df.to_dict("records"):
        ratio = r.get("ratio")
        body.append([r["section"], r["what"], fmt_number(r["ours"]), fmt_number(r["baseline"]), r["unit"],
                     "-" if ratio is None or not math.isfinite(ratio) else f"{fmt_number(ratio)}x",
                     r.get("target") or "", r.get("verdict") or ""])
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    right = {2, 3, 5}

    def line(row: list) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    out = [line(header), line(["-" * w for w in widths])] + [line(row) for row in body]
    if len(df):
        first = df.iloc[0]
        out.append("")
        out.append(f"device: {first['device']} ({first['device_type']}, {first['threads']} threads)  "
                   f"git {str(first['git_sha'])[:10]}{' (dirty)' if first['git_dirty'] else ''}  "
                   f"{'quick' if first['quick'] else 'full'} run, {first['started_at']}")
        notes = [(r["section"], r["what"], r["note"]) for r in df.to_dict("records") if r.get("note")]
        for section, what, note in notes:
            out.append(f"  {section} / {what}: {note}")
    return "\n".join(out)


# ---------------------------------------------------------------- CLI


def add_bench_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """The ``ablate bench`` subcommand (call from ``ablate.cli.build_parser``)."""
    p = subparsers.add_parser(
        "bench", help="measure every cost of a sweep against a baseline (augmentation, step, DirectPred, "
        "evaluation, orchestration, GPU packing)",
        description="Time each part of a sweep against a baseline measured in the same run (interleaved "
        "repeats, medians after warm-up; ratios hold on noisy shared machines). Prints one table and writes "
        "results/bench/bench-<time>-<device>.parquet.")
    p.add_argument("--quick", action="store_true", help="small sizes: about a minute on 2 CPU cores (CI)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where ours runs (default: cuda when available)")
    p.add_argument("--only", default=None, metavar="SECTION[,..]",
                   help=f"run only these sections: {', '.join(SECTIONS)}")
    p.add_argument("--out", default="results/bench", help="folder for the Parquet file (default: results/bench)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for ours and DataLoader workers for the baseline (default: all cores)")
    return p


def cmd_bench(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be at least 1")
    sections = parse_sections(args.only)
    df = run_bench(quick=args.quick, device=args.device, out_dir=Path(args.out), sections=sections,
                   threads=args.threads)
    print(render_bench(df))
    print(f"wrote {df.attrs['path']}")
    return 0


__all__ = ["SECTIONS", "DIGITS", "STL10_SPLITS", "stl10_like", "BenchSizes", "BenchContext", "Figure", "Target", "interleave", "run_bench",
           "render_bench", "add_bench_parser", "cmd_bench", "sizes_for", "parse_sections"]
