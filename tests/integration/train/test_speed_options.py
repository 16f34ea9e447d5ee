"""Every speed option of the trial loop keeps the results equivalent (CPU; the GPU twins are in tests/gpu).

Each test builds the same trial twice from the same seed, option off and on, and compares the
training loss step by step (``train_epoch`` capped at one step, so each value is one step's loss).
Step 1 runs on identical weights, so it isolates the option's arithmetic; later steps add how
far that difference is carried by training. Tolerances are in each test's docstring.
"""

from __future__ import annotations

import pytest
import torch

from ablate.config.tree import merge
from ablate.kinds.ssl import load_trial_config
from ablate.train.loop import build_loop, train_epoch
from ablate.train.optim import param_groups

TINY = {
    "train": {"epochs": 1, "steps_per_epoch": 1, "threads": 1, "batch_size": 64, "device": "cpu"},
    "projector": {"hidden_dim": 64, "out_dim": 32},
    "model": {"width": 32},
}
STEPS = 3


def loop_of(**dotted):
    return build_loop(load_trial_config(merge(TINY, dotted)))


def step_losses(loop, steps: int = STEPS) -> list[float]:
    """The loss of each of ``steps`` consecutive training steps."""
    loop.steps_per_epoch = 1
    return [train_epoch(loop)[0] for _ in range(steps)]


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(a)


@pytest.mark.parametrize("predictor", ["linear", "directpred"])
def test_channels_last_keeps_the_loss(predictor):
    """channels_last only changes the memory layout; oneDNN picks other convolution kernels
    (different summation order), so values agree to float32 rounding: step 1 within 1e-5
    relative; steps 2-3 within 1e-4, as training carries the rounding differences on."""
    off = step_losses(loop_of(**{"predictor.name": predictor}))
    lp = loop_of(**{"predictor.name": predictor, "train.channels_last": True})
    conv = next(m for m in lp.pair.online.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)  # the option is really on
    on = step_losses(lp)
    assert rel(off[0], on[0]) < 1e-5
    assert all(rel(a, b) < 1e-4 for a, b in zip(off, on))


def test_bf16_autocast_keeps_the_loss_and_directpred_stays_fp32():
    """bf16 autocast (CPU here, CUDA in tests/gpu): convolutions and linear layers in bfloat16
    (8-bit mantissa, relative rounding 2^-8 ~ 4e-3 per op); the loss is computed in fp32 from the
    bf16 projections, so it agrees within 2e-2 relative over the first steps. DirectPred's F_hat
    and its eigh stay fp32 whatever the autocast (Eq. 18-19 need the small eigenvalues), so F_hat
    is float32 and W_p is a finite float32 matrix."""
    off = step_losses(loop_of(**{"predictor.name": "directpred"}))
    lp = loop_of(**{"predictor.name": "directpred", "train.precision": "bf16"})
    on = step_losses(lp)
    assert all(rel(a, b) < 2e-2 for a, b in zip(off, on))
    pred = lp.pair.predictor
    assert pred.f_stats.value.dtype == torch.float32 and int(pred.f_stats.count) == STEPS
    w_p = pred.linear_weight()
    assert w_p.dtype == torch.float32 and torch.isfinite(w_p).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # even inside autocast the solve is fp32
        assert pred.target_weight().dtype == torch.float32


def test_bf16_autocast_is_really_on():
    """Guards the test above: under the loop's autocast the trunk computes in bf16, while the
    projections that feed F_hat and the loss come out of the projector's last layer in fp32."""
    from ablate.train.loop import autocast_for

    lp = loop_of(**{"train.precision": "bf16"})
    x = torch.rand(4, 1, 16, 16)
    with autocast_for(lp.cfg, lp.device):
        y, z = lp.pair.online(x)
    assert y.dtype == torch.bfloat16 and z.dtype == torch.float32


def _sgd_twin(loop, **kwargs):
    """The loop's optimizer rebuilt with other SGD implementation flags (same groups and hyper-parameters)."""
    groups = param_groups(loop.pair.online, loop.pair.predictor, loop.cfg.optim)
    return torch.optim.SGD(groups, lr=loop.cfg.optim.lr, momentum=loop.cfg.optim.momentum, **kwargs)


@pytest.mark.parametrize("impl", [{"foreach": False}, {"fused": True}])
def test_foreach_sgd_equals_the_for_loop_and_fused(impl):
    """The trial's SGD is ``foreach=True`` (one multi-tensor kernel per group). The per-parameter
    for-loop does the same float32 operations in the same order: bit-identical. The fused kernel
    evaluates the same update in one expression per element: within 1e-6 relative (it may
    contract multiply-adds)."""
    ref = loop_of()
    twin = loop_of()
    assert type(ref.optimizer) is torch.optim.SGD and ref.optimizer.defaults["foreach"] is True
    try:
        twin.optimizer = _sgd_twin(twin, **impl)
    except (RuntimeError, ValueError) as e:  # fused SGD needs a torch build that has it for CPU
        pytest.skip(f"SGD {impl} unavailable here: {e}")
    a, b = step_losses(ref), step_losses(twin)
    if impl.get("foreach") is False:
        assert a == b
        for p, q in zip(ref.pair.parameters(), twin.pair.parameters()):
            assert torch.equal(p, q)
    else:
        # other kernels round differently (FMA contraction, vector widths differ between CPUs), and
        # a few steps carry that forward: close to fp32 precision, not bit for bit
        assert all(rel(x, y) < 1e-5 for x, y in zip(a, b))
        for p, q in zip(ref.pair.parameters(), twin.pair.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_compile_keeps_the_loss():
    """torch.compile of the online network (inductor, C++ on CPU; ~35 s of compiling on a busy
    2-core machine, hence slow). Inductor may fuse and reorder float32 arithmetic: within 1e-4
    relative over the first steps (measured: identical on this convnet)."""
    off = step_losses(loop_of())
    lp = loop_of(**{"train.compile": True})
    assert hasattr(lp.pair.online, "_orig_mod")  # the option is really on
    on = step_losses(lp)
    assert all(rel(a, b) < 1e-4 for a, b in zip(off, on))


@pytest.mark.slow
def test_packed_trials_run_side_by_side_on_cpu():
    """The GPU packing machinery of ``ablate bench`` (spawned processes, a start barrier, timed
    windows) runs on CPU: both trials report their windows, the windows overlap, throughput is
    positive. On CUDA the same code sets each trial's memory share (tests/gpu). Slow: two spawned
    interpreters import torch (~30 s on a busy 2-core machine)."""
    from ablate.benchmark.gpu import PackSpec, pack_run, pack_throughput

    config = merge(TINY, {"train.batch_size": 32})
    spec = PackSpec(config, "cpu", steps=2, warmup_steps=1, repeats=2)
    results = pack_run(2, spec, timeout=300)
    assert [r["rank"] for r in results] == [0, 1]
    assert all(len(r["windows"]) == 2 and r["images"] == 64 and r["fraction"] == 0.0 for r in results)
    for w in range(2):  # the barrier starts both windows together: they overlap
        (a0, a1), (b0, b1) = results[0]["windows"][w], results[1]["windows"][w]
        assert a0 < b1 and b0 < a1
    agg, per_trial = pack_throughput(results)
    assert len(agg) == 2 and all(x > 0 for x in agg) and per_trial > 0
