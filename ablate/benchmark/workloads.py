"""What the benchmark sections run: trial loops of a sparse config on the bench's device, and
STL-10-shaped random data (the cost of training and evaluation does not depend on the pixels)."""

from __future__ import annotations

from typing import Any

import torch

from ablate.benchmark.core import BenchContext
from ablate.benchmark.sizes import PAPER
from ablate.config.tree import merge
from ablate.datasets.images import Splits, TensorImageSet
from ablate.kinds.ssl import load_trial_config
from ablate.train.loop import Loop, build_loop


def trial_tree(config: dict, ctx: BenchContext, **dotted: Any) -> dict:
    """The sparse trial mapping ``config`` on the bench's device and threads, plus dotted overrides."""
    keys = {
        "train.device": ctx.device,
        "train.threads": ctx.threads if ctx.device == "cpu" else 0,
        "train.epochs": 1,
        **dotted,
    }
    return merge(config, keys)


def make_loop(config: dict, ctx: BenchContext, **dotted: Any) -> Loop:
    """A trial loop (:func:`ablate.train.loop.build_loop`) of ``config``; restores the bench's torch threads."""
    loop = build_loop(load_trial_config(trial_tree(config, ctx, **dotted)))
    torch.set_num_threads(ctx.threads)
    return loop


def random_splits(
    device: torch.device | str,
    n_pretrain: int,
    n_train: int,
    n_test: int,
    size: int = 96,
    channels: int = 3,
    recipe: str = PAPER.recipe,
    seed: int = 0,
) -> Splits:
    """STL-10-shaped splits of random uint8 images on ``device`` (the cost of training and
    evaluation does not depend on the pixels): ``n_pretrain`` unlabeled+train images, the probe's
    train split a view of their first ``n_train`` rows (as :func:`ablate.datasets.stl10.load` lays it
    out), ``n_test`` test images, 10 classes."""
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    pre = torch.randint(0, 256, (n_pretrain, channels, size, size), generator=gen, device=device, dtype=torch.uint8)
    test = torch.randint(0, 256, (n_test, channels, size, size), generator=gen, device=device, dtype=torch.uint8)
    y_train = torch.randint(0, 10, (n_train,), generator=gen, device=device)
    y_test = torch.randint(0, 10, (n_test,), generator=gen, device=device)
    y_pre = torch.cat([y_train, torch.full((n_pretrain - n_train,), -1, dtype=torch.long, device=device)])
    return Splits(
        TensorImageSet(pre, y_pre),
        TensorImageSet(pre[:n_train], y_train),
        TensorImageSet(test, y_test),
        10,
        channels,
        size,
        recipe,
    )


def per_unit(runs: list[float], units: float) -> list[float]:
    return [r / units for r in runs]


def rate(runs: list[float], units: float) -> list[float]:
    return [units / r for r in runs]
