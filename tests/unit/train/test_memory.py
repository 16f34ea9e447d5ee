"""The per-trial GPU memory estimate (ablate.memory): its parts, its scaling, and the line ``ablate check`` prints."""

from __future__ import annotations

import textwrap

import pytest
import torch

from ablate.kinds.ssl import load_trial_config
from ablate.train.memory import GIB, estimate_trial_memory, gib, memory_line

SMALL = {"projector": {"hidden_dim": 64, "out_dim": 32}, "model": {"width": 32}}


def cfg(**over):
    tree = {**SMALL, **over}
    return load_trial_config(tree)


def test_parameters_grads_and_momentum_match_the_model():
    from ablate.models.pair import BYOLPair

    c = cfg()
    pair = BYOLPair(c, 1)
    n = sum(p.numel() for p in pair.online.parameters()) + sum(p.numel() for p in pair.predictor.parameters())
    est = estimate_trial_memory(c)
    assert est["params"] == est["grads"] == est["optimizer"] == 4 * n
    assert est["target"] >= 4 * sum(p.numel() for p in pair.target.parameters())
    assert estimate_trial_memory(cfg(optim={"momentum": 0.0}))["optimizer"] == 0
    assert estimate_trial_memory(cfg(ema={"tau": 0.0}))["target"] == 0  # SimSiam: no second network


def test_activations_grow_linearly_with_the_batch():
    a = estimate_trial_memory(cfg(train={"batch_size": 32}))
    b = estimate_trial_memory(cfg(train={"batch_size": 128}))
    assert b["activations"] / a["activations"] == pytest.approx(4.0, rel=0.02)
    assert b["params"] == a["params"] and b["dataset"] == a["dataset"]
    assert b["total"] > a["total"]


def test_meta_estimate_equals_the_saved_tensors_of_a_real_forward():
    """The estimate runs on the meta device; a real CPU forward saves exactly the same bytes."""
    from ablate.models.pair import BYOLPair
    from ablate.train.memory import _saved_activations

    c = cfg(train={"batch_size": 16})
    torch.manual_seed(0)
    pair = BYOLPair(c, 1).train()
    keys = {p.untyped_storage()._cdata for p in pair.parameters()}
    saved, count = _saved_activations(pair, torch.rand(16, 1, 16, 16), keys)
    assert count > 0
    assert sum(n for n, _ in saved.values()) == estimate_trial_memory(c)["activations"]


def test_bf16_halves_the_activations_and_adds_the_weight_cache():
    fp32, bf16 = estimate_trial_memory(cfg()), estimate_trial_memory(cfg(train={"precision": "bf16"}))
    assert bf16["activations"] == pytest.approx(fp32["activations"] / 2, rel=0.01)
    assert 0 < bf16["autocast_cache"] < bf16["params"] / 2 + 1  # bf16 copies of the online weights
    assert fp32["autocast_cache"] == 0


def test_channels_last_needs_the_same_bytes():
    a = estimate_trial_memory(cfg())
    b = estimate_trial_memory(cfg(train={"channels_last": True}))
    assert a["activations"] == b["activations"]


def test_dataset_and_predictor_statistics():
    stl = load_trial_config(
        {
            "data": {"name": "stl10", "root": "/nowhere"},
            "model": {"trunk": "resnet18"},
            "predictor": {"name": "directpred"},
        }
    )
    est = estimate_trial_memory(stl)
    assert est["dataset"] == 113_000 * 3 * 96 * 96 + 8 * 113_000  # uint8 images + int64 labels
    assert est["predictor_stats"] == 128 * 128 * 4  # F_hat (d, d) fp32
    assert estimate_trial_memory(cfg(predictor={"name": "plugin"}))["predictor_stats"] == 2 * 32 * 32 * 4
    assert estimate_trial_memory(cfg())["predictor_stats"] == 0
    folder = load_trial_config(
        {
            "data": {"name": "imagefolder", "root": "/nowhere"},
            "model": {"trunk": "resnet18"},
            "train": {"batch_size": 8},
        }
    )
    assert estimate_trial_memory(folder)["dataset"] == 0  # decoded by workers, never resident
    # a ResNet-18 STL-10 trial at batch 128 in bf16: a few GiB, dominated by the resident dataset
    bf16 = load_trial_config(
        {
            "data": {"name": "stl10", "root": "/x"},
            "model": {"trunk": "resnet18"},
            "train": {"precision": "bf16", "channels_last": True},
        }
    )
    total = estimate_trial_memory(bf16)["total"] / GIB
    assert 3.0 < total < 6.0


def test_total_is_the_sum_of_the_parts():
    est = estimate_trial_memory(cfg())
    parts = [
        "params",
        "grads",
        "optimizer",
        "target",
        "buffers",
        "activations",
        "backward_transient",
        "autocast_cache",
        "views",
        "dataset",
        "evaluation",
        "predictor_stats",
    ]
    assert est["total"] == sum(est[p] for p in parts)
    assert est["with_context"] == est["total"] + est["cuda_context"]


def _sweep(tmp_path, body: str):
    from ablate.sweep.load import read_sweep

    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(body))
    return read_sweep(path, validate_paths=False)


def test_memory_line_reports_the_largest_configuration_and_how_many_fit(tmp_path):
    sweep = _sweep(
        tmp_path,
        """\
        name: m
        base:
          projector: {hidden_dim: 64, out_dim: 32}
          model: {width: 32}
          train: {device: cuda}
        grid:
          train.batch_size: [64, 256]
          optim.lr: [0.01, 0.03]
        """,
    )
    line = memory_line(sweep, total_bytes=80 * 10**9)
    big = estimate_trial_memory(cfg(train={"batch_size": 256}))["with_context"]
    assert line.startswith(f"estimated GPU memory per trial: {gib(big)} (")
    assert "the largest of 2 configurations" in line  # lr does not change the memory
    assert f"fits {int(80 * 10**9 // big)} per 80 GB GPU" in line and "warning" not in line


def test_memory_line_warns_when_the_gpu_share_is_too_small(tmp_path):
    sweep = _sweep(
        tmp_path,
        """\
        name: m
        base:
          projector: {hidden_dim: 64, out_dim: 32}
          model: {width: 32}
          train: {device: cuda, gpu_memory_fraction: 0.001}
        resources: {gpu: 0.001}
        """,
    )
    line = memory_line(sweep, total_bytes=10**9)
    assert "warning: resources.gpu=0.001 gives each trial" in line
    assert "warning: train.gpu_memory_fraction=0.001 caps the allocator" in line


def test_a_kind_without_a_gpu_says_its_estimate_does_not_apply(tmp_path):
    sweep = _sweep(
        tmp_path,
        """\
        name: t
        base:
          kind: linear_dynamics
        """,
    )
    (line,) = sweep.trial_kind.estimate(sweep)
    assert line.startswith("memory and compute: not estimated;") and "side 10" in line


def test_memory_line_for_cpu_sweeps_and_data_parallel_workers(tmp_path):
    cpu = _sweep(
        tmp_path,
        """\
        name: c
        base:
          model: {width: 32}
          train: {device: cpu}
        """,
    )
    assert memory_line(cpu).startswith("estimated memory per trial: ") and "host memory" in memory_line(cpu)
    dp = _sweep(
        tmp_path,
        """\
        name: d
        base:
          model: {width: 32}
          train: {device: cuda, batch_size: 256}
        resources: {gpu: 2, workers: 2}
        """,
    )
    line = memory_line(dp, total_bytes=80 * 10**9)
    half = estimate_trial_memory(load_trial_config({"model": {"width": 32}, "train": {"batch_size": 128}}))
    assert line.startswith(f"estimated GPU memory per worker: {gib(half['with_context'])} (")


def test_gib_switches_to_mib_below_one_gib():
    assert gib(3.14 * GIB) == "3.1 GiB" and gib(27 * 2**20) == "27 MiB"
