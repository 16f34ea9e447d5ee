"""``ablate bench`` section 6: trials packed on one GPU, peak memory per trial, model FLOP utilisation.

Packing runs k trial loops in k processes (``spawn``), each with
``train.gpu_memory_fraction = 0.9 / k`` (the rest is left for the k CUDA contexts), exactly the
loop a packed sweep trial runs (:func:`ablate.trial.build_loop` / :func:`ablate.trial.train_epoch`)
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
from typing import Any, Optional

from ablate.bench import BenchContext, Figure, Target, median

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets; the first
# name that is a substring of torch.cuda.get_device_name() wins (so "H100 PCIe" before "H100").
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
    ("A10G", 70.0), ("A10", 125.0), ("A6000", 155.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0),
]

STL10_EPOCH = 105_000  # pretraining images per STL-10 epoch (unlabeled + train)


def peak_bf16_flops(device_name: str) -> Optional[float]:
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
    splits: Optional[tuple[int, int, int]] = None  # random STL-10-shaped splits instead of cfg.data
    threads: int = 1
    memory_share: float = 0.9  # of the GPU, split between the k processes
    extra: dict = field(default_factory=dict)

    def fraction(self, k: int) -> float:
        return self.memory_share / k if self.device == "cuda" else 0.0


def _pack_worker(rank: int, k: int, spec: PackSpec, barrier: Any, results: Any) -> None:
    """One packed trial: build the loop, warm up, then ``repeats`` timed windows between barriers."""
    try:
        import torch

        from ablate.bench_sections import random_splits
        from ablate.config import load_trial_config
        from ablate.configtree import merge
        from ablate.trial import build_loop, train_epoch

        frac = spec.fraction(k)
        tree = merge(spec.config, {"train.device": spec.device, "train.epochs": 1, "train.gpu_memory_fraction": frac,
                                   "train.threads": spec.threads if spec.device == "cpu" else 0})
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
            out.update(peak_allocated=torch.cuda.max_memory_allocated(), peak_reserved=torch.cuda.max_memory_reserved(),
                       total_memory=torch.cuda.get_device_properties(loop.device).total_memory,
                       device_name=torch.cuda.get_device_name(loop.device))
        results.put(out)
    except BaseException:  # noqa: BLE001 - report anything to the parent, then free the others
        results.put({"rank": rank, "error": traceback.format_exc()})
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001
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


def step_flops(config: dict, device: str, splits: Optional[tuple[int, int, int]] = None) -> float:
    """FLOPs of one training step of the trial loop (FlopCounterMode around ``train_epoch`` of
    one step, after one warm-up step)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ablate.bench_sections import random_splits
    from ablate.config import load_trial_config
    from ablate.configtree import merge
    from ablate.trial import build_loop, train_epoch

    loop = build_loop(load_trial_config(merge(config, {"train.device": device, "train.epochs": 1})))
    if splits:  # a small random split is enough: FLOPs do not depend on the data
        loop.splits = random_splits(loop.device, min(splits[0], 4 * loop.cfg.train.batch_size),
                                    min(splits[1], 256), min(splits[2], 256))
    loop.steps_per_epoch = 1
    train_epoch(loop)
    with FlopCounterMode(display=False) as counter:
        train_epoch(loop)
    return float(counter.get_total_flops())


def gpu_figures(ctx: BenchContext) -> list[Figure]:
    """Packing (1, 2, 4 trials), peak memory per trial vs :func:`ablate.memory.estimate_trial_memory`,
    MFU, and GPU-minutes per 100-epoch STL-10 trial at the best packing."""
    import torch

    from ablate.config import load_trial_config
    from ablate.configtree import merge
    from ablate.memory import GIB, estimate_trial_memory

    s = ctx.sizes
    config, splits = s.step_config, s.eval_splits or (STL10_EPOCH, 5_000, 8_000)
    torch.cuda.empty_cache()  # the packed processes should not compete with this one's cache
    flops = step_flops(config, ctx.device, splits)
    torch.cuda.empty_cache()
    spec = PackSpec(config, ctx.device, s.gpu_steps, s.gpu_warmup_steps, s.gpu_repeats, splits)
    runs = {}
    for k in s.gpu_packs:
        ctx.log(f"bench: gpu: {k} packed trial(s) ...")
        runs[k] = pack_run(k, spec)
    cfg = load_trial_config(merge(config, {"train.device": "cuda"}))
    batch = cfg.train.batch_size
    name = runs[s.gpu_packs[0]][0]["device_name"]
    peak = peak_bf16_flops(name)
    total_mem = runs[s.gpu_packs[0]][0]["total_memory"]
    agg1, per1 = pack_throughput(runs[s.gpu_packs[0]])
    base = median(agg1)
    out: list[Figure] = []
    best_k, best = s.gpu_packs[0], base
    for k, res in runs.items():
        agg, per = pack_throughput(res)
        value = median(agg)
        if value > best:
            best_k, best = k, value
        cap = res[0]["fraction"] * total_mem
        capped = all(r["peak_reserved"] <= cap * 1.001 for r in res)
        out.append(Figure("gpu", f"pretraining images/s, {k} trial(s) packed (aggregate)", value, base, "img/s",
                          Target("ours", ">=", 10_000, ">= 10,000 img/s (H100)") if k == max(s.gpu_packs) else None,
                          note=f"per trial {per:,.0f} img/s; memory cap {res[0]['fraction']:.2f} x {total_mem / GIB:.0f} GiB "
                          f"{'respected' if capped else 'EXCEEDED'} (peak reserved "
                          f"{max(r['peak_reserved'] for r in res) / GIB:.1f} GiB)",
                          ours_runs=agg, baseline_runs=agg1))
    minutes = 100 * STL10_EPOCH / best / 60
    out.append(Figure("gpu", f"GPU-minutes per 100-epoch STL-10 trial ({best_k} packed)", minutes,
                      100 * STL10_EPOCH / base / 60, "min", Target("ours", "<=", 20.0, "<= 20 min (H100)")))
    est = estimate_trial_memory(cfg, images=splits[0] + splits[2])["total"]
    for k in (s.gpu_packs[0], max(s.gpu_packs)):
        measured = max(r["peak_allocated"] for r in runs[k])
        out.append(Figure("gpu", f"peak memory per trial ({k} packed) vs estimate", measured / GIB, est / GIB, "GiB",
                          None, note="baseline = ablate.memory.estimate_trial_memory (allocator total)"
                          if k == s.gpu_packs[0] else ""))
    if peak:
        steps1 = per1 / batch
        out.append(Figure("gpu", "model FLOP utilisation, 1 trial", flops * steps1 / 1e12, peak / 1e12, "TFLOP/s", None,
                          note=f"{flops / 1e9:.0f} GFLOP per step (FlopCounterMode); ratio = MFU against {name}'s "
                          "dense bf16 peak"))
        out.append(Figure("gpu", f"model FLOP utilisation, {best_k} packed (aggregate)", flops * best / batch / 1e12,
                          peak / 1e12, "TFLOP/s", None))
    else:
        out.append(Figure("gpu", "model FLOP utilisation", flops / 1e9, float("nan"), "GFLOP/step", None,
                          note=f"no bf16 peak known for {name!r}: add it to ablate.bench_gpu.PEAK_BF16_TFLOPS"))
    return out


__all__ = ["PEAK_BF16_TFLOPS", "PackSpec", "gpu_figures", "pack_run", "pack_throughput", "peak_bf16_flops",
           "step_flops"]
