"""The GPU path on CUDA: speed options keep results (bf16), no host sync per training step, the
memory share of a packed trial holds, the memory estimate matches the allocator, and the bench's
GPU section runs. Skipped without CUDA (tests/gpu/conftest.py)."""

from __future__ import annotations

import warnings

import pytest
import torch

from ablate.config.tree import merge
from ablate.kinds.ssl import load_trial_config
from ablate.train.loop import build_loop, train_epoch

pytestmark = pytest.mark.gpu

# ResNet-18 with the CIFAR stem on 32x32 random images: small, but every GPU code path
# (cudnn convolutions, BN, channels_last, autocast, the batched augmentation) is exercised.
GPU = {
    "data": {"name": "fake", "fake_size": 512},
    "model": {"trunk": "resnet18", "stem": "cifar"},
    "train": {"epochs": 1, "steps_per_epoch": 1, "batch_size": 64, "device": "cuda"},
}
STEPS = 3


def loop_of(**dotted):
    return build_loop(load_trial_config(merge(GPU, dotted)))


def step_losses(loop, steps: int = STEPS) -> list[float]:
    loop.steps_per_epoch = 1
    return [train_epoch(loop)[0] for _ in range(steps)]


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(a)


def test_bf16_keeps_the_loss_and_directpred_stays_fp32():
    """bf16 autocast vs fp32 on CUDA: within 2e-2 relative over the first steps (bf16 rounds to
    8 mantissa bits, ~4e-3 per op; the loss itself is fp32). DirectPred's F_hat and W_p stay fp32."""
    off = step_losses(loop_of(**{"predictor.name": "directpred"}))
    lp = loop_of(**{"predictor.name": "directpred", "train.precision": "bf16"})
    on = step_losses(lp)
    assert all(rel(a, b) < 2e-2 for a, b in zip(off, on)), (off, on)
    pred = lp.pair.predictor
    assert pred.f_stats.value.dtype == torch.float32
    assert pred.linear_weight().dtype == torch.float32 and torch.isfinite(pred.linear_weight()).all()


def test_channels_last_and_bf16_together_keep_the_loss():
    """The production GPU setting (bf16 + channels_last) vs plain fp32: within 2e-2 relative.
    channels_last alone changes the cuDNN kernels (and fp32 convolutions may use TF32, 10-bit
    mantissa, on both sides): within 1e-2."""
    off = step_losses(loop_of())
    cl = step_losses(loop_of(**{"train.channels_last": True}))
    both = step_losses(loop_of(**{"train.channels_last": True, "train.precision": "bf16"}))
    assert all(rel(a, b) < 1e-2 for a, b in zip(off, cl)), (off, cl)
    assert all(rel(a, b) < 2e-2 for a, b in zip(off, both)), (off, both)


def _sync_warnings(loop, steps: int) -> int:
    """Synchronising CUDA calls during one train_epoch of ``steps`` steps (sync debug mode "warn")."""
    loop.steps_per_epoch = steps
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_epoch(loop)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.parametrize("dotted", [{}, {"train.precision": "bf16", "train.channels_last": True}])
def test_training_steps_do_not_sync_with_the_host(dotted):
    """train_epoch reads the loss once per epoch (``float(total)``); the steps themselves (batch
    selection, augmentation, forward, backward, SGD, EMA) queue work without waiting. So the
    number of synchronising calls does not grow with the number of steps."""
    loop = loop_of(**dotted)
    step_losses(loop, 1)  # warm-up: cudnn.benchmark, allocator, lazy inits
    few, many = _sync_warnings(loop, 2), _sync_warnings(loop, 6)
    assert many == few, f"{many - few} extra synchronising calls in 4 more steps"
    assert few <= 2


def test_memory_fraction_caps_this_trial():
    """train.gpu_memory_fraction caps the caching allocator of the trial's process: an allocation
    beyond the share fails with an out-of-memory error, one within it succeeds."""
    total = torch.cuda.get_device_properties(0).total_memory
    loop_of(**{"train.gpu_memory_fraction": 0.1})
    with pytest.raises(torch.OutOfMemoryError):
        torch.empty(int(0.15 * total), dtype=torch.uint8, device="cuda")
    ok = torch.empty(int(0.02 * total), dtype=torch.uint8, device="cuda")
    assert ok.is_cuda


@pytest.mark.parametrize("dotted", [{}, {"train.precision": "bf16", "train.channels_last": True}])
def test_memory_estimate_matches_the_allocator_peak(dotted):
    """ablate.memory's allocator total vs torch.cuda.max_memory_allocated over a few steps of a
    ResNet-18 at 96 px, batch 64: within -40% / +50% (the estimate models the transient memory
    of backward coarsely and autocast's bf16 copies by rule)."""
    from ablate.train.memory import estimate_trial_memory

    tree = merge(GPU, {"data.image_size": 96, "data.augment": "stl10", "model.stem": "imagenet", **dotted})
    cfg = load_trial_config(tree)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    loop = build_loop(cfg)
    step_losses(loop)
    peak = torch.cuda.max_memory_allocated() - base
    est = estimate_trial_memory(cfg)["total"] - estimate_trial_memory(cfg)["evaluation"]  # no evaluation ran
    assert 0.6 * peak < est < 1.5 * peak, f"estimate {est / 2**20:.0f} MiB vs peak {peak / 2**20:.0f} MiB"


def test_bench_gpu_section_runs(tmp_path):
    """The GPU sections of ``ablate bench`` run unattended on small sizes: packing 1 and 2 trials,
    peak memory, MFU; nothing fails."""
    from ablate.benchmark.sizes import BenchSizes, stl10_like
    from ablate.benchmark.suite import run_bench

    sizes = BenchSizes(
        repeats=2,
        warmup=1,
        aug_images=512,
        aug_batch=128,
        aug_workers=2,
        step_config=stl10_like(64, 64 * 4, "bf16", True),
        step_k=2,
        directpred_k=5,
        directpred_repeats=1,
        eval_config=stl10_like(64, 64 * 4, "bf16", True),
        eval_splits=(2048, 256, 256),
        eval_repeats=1,
        gpu_packs=(1, 2),
        gpu_steps=5,
        gpu_warmup_steps=2,
        gpu_repeats=1,
    )
    df = run_bench(
        device="cuda",
        out_dir=tmp_path,
        sections=["augment", "step", "directpred", "eval", "gpu"],
        threads=2,
        sizes=sizes,
        log=lambda msg: None,
    )
    assert "failed" not in set(df["verdict"]), df[df["verdict"] == "failed"]["note"].tolist()
    gpu = df[df["section"] == "gpu"]
    packed = gpu[gpu["what"].str.startswith("pretraining images/s")]
    assert len(packed) == 2 and (packed["ours"] > 0).all()
    mfu = gpu[gpu["what"].str.startswith("model FLOP utilisation")]
    assert len(mfu) >= 1 and ((mfu["ratio"].isna()) | ((mfu["ratio"] > 0) & (mfu["ratio"] < 1))).all()
    mem = gpu[gpu["what"].str.startswith("peak memory")]
    assert (mem["ours"] > 0).all() and (mem["baseline"] > 0).all()
    assert "respected" in " ".join(packed["note"])
