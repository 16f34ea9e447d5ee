"""What a sweep will cost, estimated before anything runs (``ablate check``).

Compute is counted, not guessed: the training step of each trial's model is run once on the ``meta``
device under :class:`torch.utils.flop_counter.FlopCounterMode` (both views through the online
network, forward and backward, and the target's forward: everything a step computes), and the
evaluations' feature extraction is one forward per probe image. A sweep's FLOPs are

    sum over trials of  epochs x steps per epoch x FLOPs per step  +  evaluations x extraction FLOPs

where a trial read from a longer trial's run (``derived_from``, :mod:`ablate.sweep.prefix`) counts
nothing of its own; the line says both sums.

Time is FLOPs over a throughput, and where that throughput comes from is said in the line:

* the newest ``ablate bench`` result of this kind of device in ``results/bench/`` (its ``step``
  section timed a training step whose FLOPs are counted the same way): a measured figure;
* otherwise, for a GPU, an H100 at an assumed 35% of its 989 TFLOP/s dense bf16 (fp32 trials: of its
  67 TFLOP/s), marked as an assumption; for the CPU, no figure (run ``ablate bench --quick``).

GPU-hours are whole-device hours; trials packed onto one GPU (``resources.gpu`` < 1) share its
throughput, so the wall time on ``g`` GPUs is GPU-hours / g, whatever the packing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ablate.config.trial import TrialConfig
from ablate.datasets.records import DATASETS
from ablate.models.pair import BYOLPair
from ablate.results.io import newest_bench_row
from ablate.train.memory import dataset_geometry, memory_key, sweep_configs

H100 = {"name": "H100 SXM", "bf16": 989e12, "fp32": 67e12}
ASSUMED_MFU = 0.35
THROUGHPUT = "training throughput, linear predictor"  # the figure of ablate bench's step section read here


@dataclass(frozen=True)
class Throughput:
    flops_per_s: float
    source: str  # where the figure comes from, for the line ablate check prints
    measured: bool


def step_flops(cfg: TrialConfig) -> tuple[float, float]:
    """(FLOPs of one training step, FLOPs of one image's evaluation forward) of ``cfg``, counted on meta."""
    from torch.utils.flop_counter import FlopCounterMode

    _, channels, side, _, _ = dataset_geometry(cfg.data)
    size = cfg.data.image_size or side
    probe = 2  # images counted; FLOPs are linear in the batch (BatchNorm needs 2 to train)
    with torch.device("meta"):
        pair = BYOLPair(cfg, channels)
        x = torch.empty(probe, channels, size, size)
    pair.train()
    with FlopCounterMode(display=False) as step:
        loss, _ = pair(x, x.clone())
        loss.backward()
    pair.eval()
    with FlopCounterMode(display=False) as forward, torch.no_grad():
        pair.online(x)
    per_image = float(forward.get_total_flops()) / probe
    return float(step.get_total_flops()) / probe * cfg.train.batch_size, per_image


def trial_flops(cfg: TrialConfig, per_step: tuple[float, float] | None = None) -> float:
    """Training and evaluation FLOPs of one trial (``per_step``: its :func:`step_flops`, if known)."""
    per_step, per_image = per_step or step_flops(cfg)
    steps = DATASETS[cfg.data.name].sizes(cfg.data).pretrain // cfg.train.batch_size
    if cfg.train.steps_per_epoch:
        steps = min(steps, cfg.train.steps_per_epoch)
    _, _, _, n_probe, n_test = dataset_geometry(cfg.data)
    evals = math.ceil(cfg.train.epochs / cfg.eval.every)
    return cfg.train.epochs * steps * per_step + evals * (n_probe + n_test) * per_image


def sweep_flops(trials: list[Any]) -> tuple[float, float]:
    """(FLOPs of every trial run on its own, FLOPs of the trials that run): the second leaves out the
    trials read from a longer trial's run (``derived_from``, :mod:`ablate.sweep.prefix`). A step's
    FLOPs are counted once per configuration whose memory estimate differs, which they depend on
    alone (not on the lr or the epochs)."""
    per_step: dict[tuple, tuple[float, float]] = {}
    alone = run = 0.0
    for t in trials:
        key = (memory_key(t.config), t.config.loss.symmetric)
        if key not in per_step:  # counted on meta: a second or two a model, so once per configuration
            per_step[key] = step_flops(t.config)
        flops = trial_flops(t.config, per_step[key])
        alone += flops
        run += flops if t.derived_from is None else 0.0
    return alone, run


def bench_throughput(device_type: str, bench_dir: Path | None = None) -> Throughput | None:
    """The training throughput the newest ``ablate bench`` of ``device_type`` measured here, if any."""
    row = newest_bench_row(device_type, "step", THROUGHPUT, bench_dir)
    if row is None or not math.isfinite(float(row["ours"])):
        return None
    when = str(row.get("started_at", ""))[:10]
    return Throughput(float(row["ours"]), f"measured by ablate bench here, {when} ({row['file']})", True)


def assumed_gpu(precision: str) -> Throughput:
    peak = H100["bf16" if precision == "bf16" else "fp32"]
    return Throughput(
        ASSUMED_MFU * peak,
        f"assumed: an {H100['name']} at {ASSUMED_MFU:.0%} of its {peak / 1e12:.0f} TFLOP/s {precision} "
        "(no ablate bench --device cuda result here)",
        False,
    )


def cost_line(sweep: Any, bench_dir: Path | None = None) -> str:
    """What ``ablate check`` prints about compute: FLOPs, device-hours at a throughput, wall time."""
    if sweep.search:
        return "estimated compute: not counted for a search (its trials are sampled as it runs)"
    configs = sweep_configs(sweep)
    alone, total = sweep_flops(list(sweep.trials))
    on_cpu = all(c.train.device == "cpu" for c in configs)
    device = "cpu" if on_cpu else "cuda"
    rate = bench_throughput(device, bench_dir) or (None if on_cpu else assumed_gpu(configs[0].train.precision))
    head = f"estimated compute: {total:.3g} FLOPs ({len(sweep.trials)} trials)"
    shared = sum(t.derived_from is not None for t in sweep.trials)
    if shared:  # ablate.sweep.prefix: the trials read from longer ones cost nothing of their own
        head = (
            f"estimated compute: {total:.3g} FLOPs ({len(sweep.trials) - shared} runs for {len(sweep.trials)} trials, "
            f"{total / alone:.3g}x of {alone:.3g} FLOPs with every trial run on its own)"
        )
    if rate is None:
        return f"{head}; run `ablate bench --quick` here for a CPU time estimate"
    hours = total / rate.flops_per_s / 3600
    if on_cpu:
        return f"{head}; {hours:.3g} CPU-hours at {rate.flops_per_s / 1e9:.3g} GFLOP/s ({rate.source})"
    share = sweep.resources.gpu
    packing = f"; {int(1 // share)} trials packed per GPU share it" if 0 < share < 1 else ""
    return (
        f"{head}; {hours:.3g} GPU-hours at {rate.flops_per_s / 1e12:.3g} TFLOP/s ({rate.source}): "
        f"{hours:.3g} h wall on 1 GPU, {hours / 8:.3g} h on 8{packing}"
    )
