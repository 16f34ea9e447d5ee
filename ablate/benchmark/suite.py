"""``ablate bench``: every cost of a sweep, measured side by side with a baseline in the same run.

Sections (``--only`` names; each is a function of :data:`SECTIONS`):

=============  ===============================================================  ===================
section        ours vs baseline                                                 target (CPU)
=============  ===============================================================  ===================
augment        batched per-image augmentation vs torchvision's per-sample        ratio >= 3
               pipeline in a DataLoader with the same number of workers
step           one BYOL step of the trial loop vs a plain hand-written step      ratio <= 1.10
directpred     a DirectPred step (freq 1, 5) vs the linear predictor's step      freq 1: <= 1.15
eval           probe + kNN evaluation vs one training epoch                      (reported)
orchestration  N trivial trials through ``ablate run`` (Ray Tune) vs a loop      overhead <= 2 s/trial
collapse       a sweep with ``stop_collapsed`` vs without: epochs, wall time,     healthy arms
               where collapsed arms stopped                                      unchanged
prefix         a sweep of three lengths with ``share_prefix`` vs each trial on    every cell
               its own: epochs, device and wall time                             unchanged
gpu            images/s with 1, 2, 4 trials packed on one GPU, peak memory,      >= 10,000 img/s
               MFU (CUDA only)                                                   (H100, packed)
=============  ===============================================================  ===================

:func:`run_bench` returns one row per figure (a DataFrame) and :func:`render_bench` prints it.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import torch

from ablate.benchmark.collapse import bench_collapse
from ablate.benchmark.core import NOISY_SPREAD, BenchContext, Measurement, available_cores, judge_noise
from ablate.benchmark.gpu import bench_gpu
from ablate.benchmark.orchestration import bench_orchestration
from ablate.benchmark.prefix import bench_prefix
from ablate.benchmark.sections import bench_augment, bench_directpred, bench_eval, bench_step
from ablate.benchmark.sizes import BenchSizes, sizes_for
from ablate.config.tree import did_you_mean
from ablate.errors import UserError
from ablate.provenance import provenance
from ablate.results.io import write_table
from ablate.results.location import Location
from ablate.train.loop import pick_device

SECTIONS: dict[str, Callable[[BenchContext], list[Measurement]]] = {
    "augment": bench_augment,
    "step": bench_step,
    "directpred": bench_directpred,
    "eval": bench_eval,
    "orchestration": bench_orchestration,
    "collapse": bench_collapse,
    "prefix": bench_prefix,
    "gpu": bench_gpu,
}


def parse_sections(only: str | list[str] | None) -> list[str]:
    """``--only step,eval`` -> ["step", "eval"] in the canonical order; unknown names are a UserError."""
    if not only:
        return list(SECTIONS)
    names = [s.strip() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()]
    for name in names:
        if name not in SECTIONS:
            hint = did_you_mean(name, SECTIONS)
            raise UserError(f"--only {name}: unknown section{hint or '; choose from ' + ', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]


def run_bench(
    quick: bool = False,
    device: str = "auto",
    out_dir: Path | None = None,
    sections: list[str] | None = None,
    threads: int | None = None,
    sizes: BenchSizes | None = None,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run the benchmark sections and return one row per figure (a pandas DataFrame).

    ``device``: cpu, cuda or auto. ``threads``: torch threads of our side and DataLoader workers
    of the baseline (default: the available cores). ``out_dir``: when given, the rows are also
    written to ``out_dir/bench-<UTC time>-<device>.parquet``. ``sizes`` overrides the preset."""
    device = pick_device(device).type
    chosen = parse_sections(sections)
    threads = threads or available_cores()
    torch.set_num_threads(threads)
    ctx = BenchContext(device, threads, sizes or sizes_for(quick, device), quick)
    if log is not None:
        ctx.log = log
    started = dt.datetime.now(dt.UTC)
    figures: list[Measurement] = []
    for name in chosen:
        ctx.log(f"bench: {name} ...")
        t0 = time.perf_counter()
        try:
            figures += SECTIONS[name](ctx)
        except Exception as e:  # one broken section must not lose the others (unattended GPU runs)
            ctx.log(traceback.format_exc())
            figures.append(
                Measurement(
                    name,
                    "section failed",
                    math.nan,
                    math.nan,
                    "",
                    None,
                    status="failed",
                    note=f"{type(e).__name__}: {e}",
                )
            )
        finally:
            torch.set_num_threads(threads)  # a trial config may have changed it
        ctx.log(f"bench: {name} done in {time.perf_counter() - t0:.1f} s")
    judge_noise(figures)
    df = to_frame(figures, ctx, started)
    if out_dir is not None:
        path = Path(out_dir) / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}-{device}.parquet"
        write_table(Location.parse(path), pa.Table.from_pandas(df, preserve_index=False))
        df.attrs["path"] = str(path)
    return df


def to_frame(figures: list[Measurement], ctx: BenchContext, started: dt.datetime) -> pd.DataFrame:
    """Measurements -> the bench's rows, each with device, versions and git sha (ablate.provenance)."""
    prov = provenance(torch.device(ctx.device))
    rows = []
    for f in figures:
        rows.append(
            {
                "section": f.section,
                "what": f.what,
                "ours": f.ours,
                "baseline": f.baseline,
                "unit": f.unit,
                "ratio": f.ratio if f.ratio is not None else math.nan,
                "target": f.target.label if f.target else "",
                "verdict": f.verdict,
                "note": f.note,
                "noise": f.noise,
                "ours_runs": [float(x) for x in f.ours_runs],
                "baseline_runs": [float(x) for x in f.baseline_runs],
                "device": prov["device"],
                "device_type": ctx.device,
                "threads": ctx.threads,
                "quick": ctx.quick,
                "git_sha": prov["git_sha"],
                "git_dirty": prov["git_dirty"],
                "versions": prov["versions"],
                "started_at": started.isoformat(timespec="seconds"),
            }
        )
    return pd.DataFrame(rows)


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


def render_bench(df: pd.DataFrame) -> str:
    """One table: section, what, ours, baseline, unit, ratio, target, verdict; then the provenance
    and the notes of the figures that have one."""
    header = ["section", "what", "ours", "baseline", "unit", "ratio", "target", "verdict"]
    body = []
    for r in df.to_dict("records"):
        ratio = r.get("ratio")
        body.append(
            [
                r["section"],
                r["what"],
                fmt_number(r["ours"]),
                fmt_number(r["baseline"]),
                r["unit"],
                "-" if ratio is None or not math.isfinite(ratio) else f"{fmt_number(ratio)}x",
                r.get("target") or "",
                r.get("verdict") or "",
            ]
        )
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    right = {2, 3, 5}

    def line(row: list) -> str:
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])] + [line(row) for row in body]
    if len(df):
        first = df.iloc[0]
        out.append("")
        out.append(
            f"device: {first['device']} ({first['device_type']}, {first['threads']} threads)  "
            f"git {str(first['git_sha'])[:10]}{' (dirty)' if first['git_dirty'] else ''}  "
            f"{'quick' if first['quick'] else 'full'} run, {first['started_at']}"
        )
        notes = [(r["section"], r["what"], r["note"]) for r in df.to_dict("records") if r.get("note")]
        for section, what, note in notes:
            out.append(f"  {section} / {what}: {note}")
        out += noise_lines(df)
    return "\n".join(out)


def noise_lines(df: pd.DataFrame) -> list[str]:
    """The warning under a table with noisy figures: which, why, and what to do."""
    noisy = [r for r in df.to_dict("records") if r.get("noise")]
    if not noisy:
        return []
    return [
        "",
        f"warning: {len(noisy)} of {len(df)} figures are too noisy to trust (verdict 'noisy': repeats more than "
        f"{NOISY_SPREAD}x apart, a time at or below zero, or a part larger than its whole); the machine was busy "
        "while they were timed: run again when it is quiet, with --threads 1 on a shared machine",
        *(f"  {r['section']} / {r['what']}: {r['noise']}" for r in noisy),
    ]
