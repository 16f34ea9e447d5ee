"""``ablate bench`` section gpu: trials packed on one GPU, peak memory per trial, model FLOP utilisation.

Packing runs k trial loops in k processes (``spawn``), each with
``train.gpu_memory_fraction = 0.9 / k`` (the rest is left for the k CUDA contexts), exactly the
loop a packed sweep trial runs (:func:`ablate.train.loop.build_loop` / :func:`ablate.train.loop.train_epoch`)
on STL-10-shaped data held on the device. After warm-up the k processes meet at a barrier and
each trains ``steps`` steps; aggregate images/s = all images / (last end - first start), per
window, median over windows. The same code runs on CPU (tests), where it measures nothing useful
but proves the machinery.

MFU = FLOPs of one training step (counted by ``torch.utils.flop_counter.FlopCounterMode``: the
matmuls and convolutions of both views' online forward and backward, the target forward, the
predictor) x steps/s / the device's dense bf16 peak (:data:`PEAK_BF16_TFLOPS`).
"""

from __future__ import annotations

import queue as queue_mod
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from ablate.benchmark.core import BenchContext, Measurement, Target, median
from ablate.benchmark.sizes import STL10_SPLITS
from ablate.benchmark.workloads import random_splits
from ablate.config.tree import merge
from ablate.kinds.ssl import load_trial_config
from ablate.train.cost import step_flops
from ablate.train.loop import build_loop, train_epoch
from ablate.train.memory import GIB, estimate_trial_memory

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets; the first
# name that is a substring of torch.cuda.get_device_name() wins (so "H100 PCIe" before "H100").
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("A6000", 155.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
]

STL10_EPOCH = STL10_SPLITS[0]  # pretraining images per STL-10 epoch (unlabeled + train)


def peak_bf16_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a device, in FLOP/s, or None when it is not in the table."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops * 1e12
    return None


@dataclass(frozen=True)
class PackSpec:
    """What each packed process runs (picklable: it crosses the spawn boundary)."""

    config: dict  # sparse trial mapping
    device: str
    steps: int
    warmup_steps: int
    repeats: int
    splits: tuple[int, int, int] | None = None  # random STL-10-shaped splits instead of cfg.data
    threads: int = 1
    memory_share: float = 0.9  # of the GPU, split between the k processes
    extra: dict = field(default_factory=dict)

    def fraction(self, k: int) -> float:
        return self.memory_share / k if self.device == "cuda" else 0.0


def _pack_worker(rank: int, k: int, spec: PackSpec, barrier: Any, results: Any) -> None:
    """One packed trial: build the loop, warm up, then ``repeats`` timed windows between barriers."""
    try:
        frac = spec.fraction(k)
        tree = merge(
            spec.config,
            {
                "train.device": spec.device,
                "train.epochs": 1,
                "train.gpu_memory_fraction": frac,
                "train.threads": spec.threads if spec.device == "cpu" else 0,
            },
        )
        loop = build_loop(load_trial_config(tree))
        if spec.splits:
            loop.splits = random_splits(loop.device, *spec.splits)
        cuda = loop.device.type == "cuda"
        loop.steps_per_epoch = spec.warmup_steps
        train_epoch(loop)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        loop.steps_per_epoch = spec.steps
        windows = []
        for _ in range(spec.repeats):
            barrier.wait(timeout=900)
            t0 = time.time()  # wall clock: comparable across the processes of one machine
            train_epoch(loop)  # ends by reading the epoch's loss: the device is done
            if cuda:
                torch.cuda.synchronize()
            windows.append((t0, time.time()))
        out = {"rank": rank, "windows": windows, "images": spec.steps * loop.cfg.train.batch_size, "fraction": frac}
        if cuda:
            out.update(
                peak_allocated=torch.cuda.max_memory_allocated(),
                peak_reserved=torch.cuda.max_memory_reserved(),
                total_memory=torch.cuda.get_device_properties(loop.device).total_memory,
                device_name=torch.cuda.get_device_name(loop.device),
            )
        results.put(out)
    except BaseException:
        results.put({"rank": rank, "error": traceback.format_exc()})
        try:
            barrier.abort()
        except Exception:
            pass


def pack_run(k: int, spec: PackSpec, timeout: float = 1800.0) -> list[dict]:
    """Run ``k`` packed trial processes; return each one's result (raises if any failed)."""
    import torch.multiprocessing as tmp

    ctx = tmp.get_context("spawn")  # CUDA cannot be initialised in a forked child
    barrier, results = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_pack_worker, args=(rank, k, spec, barrier, results), daemon=True) for rank in range(k)]
    for p in procs:
        p.start()
    out: list[dict] = []
    deadline = time.time() + timeout
    try:
        while len(out) < k:
            try:
                out.append(results.get(timeout=max(1.0, deadline - time.time())))
            except queue_mod.Empty:
                raise RuntimeError(f"packed trials did not finish within {timeout:.0f} s") from None
            if "error" in out[-1]:
                raise RuntimeError(f"packed trial {out[-1]['rank']} of {k} failed:\n{out[-1]['error']}")
    finally:
        for p in procs:
            p.join(timeout=30)
        for p in procs:
            if p.is_alive():
                p.terminate()
    return sorted(out, key=lambda r: r["rank"])


def pack_throughput(results: list[dict]) -> tuple[list[float], float]:
    """(aggregate images/s of each window, mean per-trial images/s) of one packing run."""
    windows = len(results[0]["windows"])
    agg = []
    for w in range(windows):
        start = min(r["windows"][w][0] for r in results)
        end = max(r["windows"][w][1] for r in results)
        agg.append(sum(r["images"] for r in results) / (end - start))
    per_trial = [r["images"] / (r["windows"][w][1] - r["windows"][w][0]) for r in results for w in range(windows)]
    return agg, sum(per_trial) / len(per_trial)


def gpu_figures(ctx: BenchContext) -> list[Measurement]:
    """Packing (1, 2, 4 trials), peak memory per trial vs :func:`ablate.train.memory.estimate_trial_memory`,
    MFU, and GPU-minutes per 100-epoch STL-10 trial at the best packing."""
    s = ctx.sizes
    config, splits = s.step_config, s.eval_splits or STL10_SPLITS
    torch.cuda.empty_cache()  # the packed processes should not compete with this one's cache
    cfg = load_trial_config(merge(config, {"train.device": "cuda"}))
    flops = step_flops(cfg)[0]  # counted on meta, as `ablate check` counts a sweep's
    spec = PackSpec(config, ctx.device, s.gpu_steps, s.gpu_warmup_steps, s.gpu_repeats, splits)
    runs = {}
    for k in s.gpu_packs:
        ctx.log(f"bench: gpu: {k} packed trial(s) ...")
        runs[k] = pack_run(k, spec)
    estimate = estimate_trial_memory(cfg, images=splits[0] + splits[2])["total"]
    return packing_figures(runs) + memory_figures(runs, estimate) + mfu_figures(runs, flops, cfg.train.batch_size)


def _gpu(what: str, ours: float, baseline: float, unit: str, target: Target | None = None, **kw: Any) -> Measurement:
    return Measurement("gpu", what, ours, baseline, unit, target, **kw)


def packing_figures(runs: dict[int, list[dict]]) -> list[Measurement]:
    """Aggregate images/s of each packing against one trial alone, and GPU-minutes at the best packing."""
    packs = list(runs)
    total_mem = runs[packs[0]][0]["total_memory"]
    agg1, _ = pack_throughput(runs[packs[0]])
    base = median(agg1)
    best_k, best = packs[0], base
    out = []
    for k, res in runs.items():
        agg, per = pack_throughput(res)
        if median(agg) > best:
            best_k, best = k, median(agg)
        cap = res[0]["fraction"] * total_mem
        peak = max(r["peak_reserved"] for r in res)
        kept = "respected" if all(r["peak_reserved"] <= cap * 1.001 for r in res) else "EXCEEDED"
        target = Target("ours", ">=", 10_000, ">= 10,000 img/s (H100)") if k == max(packs) else None
        out.append(
            _gpu(
                f"pretraining images/s, {k} trial(s) packed (aggregate)",
                median(agg),
                base,
                "img/s",
                target,
                ours_runs=agg,
                baseline_runs=agg1,
                note=f"per trial {per:,.0f} img/s; memory cap {res[0]['fraction']:.2f} x "
                f"{total_mem / GIB:.0f} GiB {kept} (peak reserved {peak / GIB:.1f} GiB)",
            )
        )
    out.append(
        _gpu(
            f"GPU-minutes per 100-epoch STL-10 trial ({best_k} packed)",
            100 * STL10_EPOCH / best / 60,
            100 * STL10_EPOCH / base / 60,
            "min",
            Target("ours", "<=", 20.0, "<= 20 min (H100)"),
        )
    )
    return out


def memory_figures(runs: dict[int, list[dict]], estimate: float) -> list[Measurement]:
    """Peak allocated memory per trial, alone and at the largest packing, against the estimate."""
    packs = list(runs)
    return [
        _gpu(
            f"peak memory per trial ({k} packed) vs estimate",
            max(r["peak_allocated"] for r in runs[k]) / GIB,
            estimate / GIB,
            "GiB",
            note="baseline = ablate.train.memory.estimate_trial_memory (allocator total)" if k == packs[0] else "",
        )
        for k in (packs[0], max(packs))
    ]


def mfu_figures(runs: dict[int, list[dict]], flops: float, batch: int) -> list[Measurement]:
    """Model FLOP utilisation of one trial and of the best packing against the device's dense bf16 peak."""
    packs = list(runs)
    name = runs[packs[0]][0]["device_name"]
    peak = peak_bf16_flops(name)
    if not peak:
        return [
            _gpu(
                "model FLOP utilisation",
                flops / 1e9,
                float("nan"),
                "GFLOP/step",
                note=f"no bf16 peak known for {name!r}: add it to ablate.benchmark.gpu.PEAK_BF16_TFLOPS",
            )
        ]
    _, per1 = pack_throughput(runs[packs[0]])
    best_k, best = max(((k, median(pack_throughput(r)[0])) for k, r in runs.items()), key=lambda kv: kv[1])
    return [
        _gpu(
            "model FLOP utilisation, 1 trial",
            flops * per1 / batch / 1e12,
            peak / 1e12,
            "TFLOP/s",
            note=f"{flops / 1e9:.0f} GFLOP per step (FlopCounterMode); ratio = MFU against {name}'s dense bf16 peak",
        ),
        _gpu(
            f"model FLOP utilisation, {best_k} packed (aggregate)", flops * best / batch / 1e12, peak / 1e12, "TFLOP/s"
        ),
    ]


def bench_gpu(ctx: BenchContext) -> list[Measurement]:
    """The gpu section: :func:`gpu_figures` on CUDA, a skipped row elsewhere."""
    if ctx.device != "cuda":
        return [
            Measurement(
                "gpu",
                "packing, peak memory, MFU",
                float("nan"),
                float("nan"),
                "",
                None,
                status="skipped",
                note="needs CUDA: run `ablate bench --device cuda` on a GPU machine",
            )
        ]
    return gpu_figures(ctx)
