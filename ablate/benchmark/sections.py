"""The compute sections of ``ablate bench`` (see :mod:`ablate.benchmark.suite` for what each compares and why).

Every section returns a list of :class:`ablate.benchmark.core.Measurement`. Ours is always the real code path a
sweep runs (``BatchAugment``, ``build_loop`` + ``train_epoch``, ``evaluate``, ``run_sweep``); the
baseline is the plain way of doing the same work, built from the same model, images and recipe.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ablate.benchmark.core import BenchContext, Measurement, Target, cuda_sync, interleave, median
from ablate.benchmark.sizes import PAPER
from ablate.benchmark.workloads import make_loop, per_unit, random_splits, rate
from ablate.train.augment import build_augment, torchvision_transform
from ablate.train.cost import THROUGHPUT, step_flops
from ablate.train.evaluate import evaluate, extract, knn_top1, linear_probe
from ablate.train.loop import autocast_for, train_epoch

# ---------------------------------------------------------------- 1. augmentation


class PerSampleDataset(torch.utils.data.Dataset):
    """The usual worker-side pipeline: one ``torchvision.transforms.v2`` call per image."""

    def __init__(self, images: torch.Tensor, transform: Callable) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.images[i])


def bench_augment(ctx: BenchContext) -> list[Measurement]:
    """Our batched STL-10 recipe (per-image parameters, on the device) vs torchvision's per-sample
    transforms in a DataLoader with ``threads`` workers, over the same random 96x96 uint8 images,
    one view per image on both sides. On CUDA the baseline's batches are pinned and copied to the
    device, as a GPU trial would need them."""
    s = ctx.sizes
    dev = torch.device(ctx.device)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (s.aug_images, 3, s.aug_size, s.aug_size), generator=gen, dtype=torch.uint8)
    on_dev = images.to(dev)
    aug = build_augment(PAPER.recipe, s.aug_size, PAPER.channels)
    aug_gen = torch.Generator(device=dev).manual_seed(1)
    workers = s.aug_workers if s.aug_workers is not None else ctx.threads

    def ours() -> None:
        for i in range(0, on_dev.shape[0], s.aug_batch):
            aug(on_dev[i : i + s.aug_batch], aug_gen, view=0)  # (B, 3, S, S) float

    held = {
        "loader": DataLoader(
            PerSampleDataset(images, torchvision_transform(PAPER.recipe, s.aug_size, PAPER.channels)),
            batch_size=s.aug_batch,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=dev.type == "cuda",
        )
    }

    def baseline() -> None:
        for x in held["loader"]:
            if dev.type == "cuda":
                x.to(dev, non_blocking=True)

    try:
        runs = interleave({"ours": ours, "baseline": baseline}, s.repeats, s.warmup, cuda_sync(dev))
    finally:
        held.clear()  # the last reference: stops the persistent workers
    n = s.aug_images
    return [
        Measurement(
            "augment",
            f"STL-10 recipe, {s.aug_size}px, one view",
            n / median(runs["ours"]),
            n / median(runs["baseline"]),
            "img/s",
            Target("ratio", ">=", 3.0, "ratio >= 3"),
            note=f"baseline: torchvision v2 per sample, DataLoader with {workers} workers, batch {s.aug_batch}; "
            f"ours: BatchAugment on {ctx.device}, batch {s.aug_batch}",
            ours_runs=rate(runs["ours"], n),
            baseline_runs=rate(runs["baseline"], n),
        )
    ]


# ---------------------------------------------------------------- 2. training step


class PlainStep:
    """The textbook BYOL step (paper Sec. 2), written out by hand on a copy of the loop's model
    and one fixed batch: views x1, x2 by the same augmentation; z = online(x), p = W_p z,
    t = target(x) under no_grad; loss 2 - 2cos(p1, t2) + 2 - 2cos(p2, t1); torch's default SGD
    (one group); EMA W_a <- tau W_a + (1 - tau) W parameter by parameter. Linear predictor only:
    it is the baseline every variant's overhead is measured against."""

    def __init__(self, loop: Any) -> None:
        cfg = loop.cfg
        pair = copy.deepcopy(loop.pair)
        self.online, self.target = pair.online, pair.target
        self.predictor = pair.predictor.linear  # nn.Linear(d, d): the linear predictor's W_p
        params = list(self.online.parameters()) + list(self.predictor.parameters())
        self.opt = torch.optim.SGD(
            params, lr=cfg.optim.lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
        )
        self.tau = cfg.ema.tau
        self.x = next(
            iter(loop.splits.pretrain.batches(cfg.train.batch_size, shuffle=False, generator=None, drop_last=True))
        )[0]  # (B, C, H, W) uint8
        self.augment = loop.augment
        self.gen = torch.Generator(device=loop.device).manual_seed(cfg.seed + 1)
        self.autocast = autocast_for(cfg, loop.device)
        self.channels_last = cfg.train.channels_last

    @staticmethod
    def loss_fn(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (2 - 2 * F.cosine_similarity(p.float(), t.float(), dim=-1)).mean()

    def loss(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """The symmetric BYOL loss of views x1, x2 (B, C, S, S)."""
        with self.autocast:
            z1, z2 = self.online(x1)[1], self.online(x2)[1]  # (B, d)
            p1, p2 = self.predictor(z1), self.predictor(z2)
            with torch.no_grad():
                t1, t2 = self.target(x1)[1], self.target(x2)[1]
        return self.loss_fn(p1, t2) + self.loss_fn(p2, t1)

    def step(self) -> None:
        x1, x2 = self.augment(self.x, self.gen, view=0), self.augment(self.x, self.gen, view=1)
        if self.channels_last:
            x1, x2 = x1.contiguous(memory_format=torch.channels_last), x2.contiguous(memory_format=torch.channels_last)
        loss = self.loss(x1, x2)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            for w_a, w in zip(self.target.parameters(), self.online.parameters()):
                w_a.mul_(self.tau).add_(w, alpha=1 - self.tau)

    def __call__(self, k: int) -> None:
        for _ in range(k):
            self.step()


def ours_steps(loop: Any, k: int) -> Callable[[], None]:
    """k steps of the real trial loop (``train_epoch`` capped at k steps: batching, lr schedule,
    augmentation, forward, predictor hooks, optimizer, EMA, loss accumulation, epoch-end read)."""

    def run() -> None:
        loop.steps_per_epoch = k
        train_epoch(loop)

    return run


def describe_config(loop: Any) -> str:
    c = loop.cfg
    return (
        f"{c.model.trunk} on {c.data.name} {c.data.image_size or loop.splits.native_size}px, batch "
        f"{c.train.batch_size}, {c.train.precision}{', channels_last' if c.train.channels_last else ''}"
    )


def bench_step(ctx: BenchContext) -> list[Measurement]:
    """One BYOL step of the trial loop vs :class:`PlainStep` on the same model and batch size."""
    s = ctx.sizes
    loop = make_loop(s.step_config, ctx, **{"predictor": {"name": "linear"}})
    plain = PlainStep(loop)
    k = s.step_k
    runs = interleave(
        {"ours": ours_steps(loop, k), "baseline": lambda: plain(k)}, s.repeats, s.warmup, cuda_sync(loop.device)
    )
    ours_s, base_s = median(runs["ours"]) / k, median(runs["baseline"]) / k
    flops = step_flops(loop.cfg)[0]  # counted on meta, as `ablate check` counts a sweep's
    return [
        Measurement(
            "step",
            "BYOL step, linear predictor",
            ours_s,
            base_s,
            "s/step",
            Target("ratio", "<=", 1.10, "ratio <= 1.10"),
            note=f"{describe_config(loop)}; {k} steps per timed call",
            ours_runs=per_unit(runs["ours"], k),
            baseline_runs=per_unit(runs["baseline"], k),
        ),
        # the throughput `ablate check` turns a sweep's counted FLOPs into hours with (ablate.train.cost)
        Measurement("step", THROUGHPUT, flops / ours_s, flops / base_s, "FLOP/s", note=f"{flops:.3g} FLOPs per step"),
    ]


# ---------------------------------------------------------------- 3. DirectPred


def directpred_update(loop: Any) -> Callable[[], None]:
    """DirectPred's own work in one step, isolated: F_hat <- rho F_hat + (1 - rho) E[f f^T] from
    the views' projections (Eq. 19), then W_p <- U diag(p) U^T from eigh(F_hat) (Eq. 18)."""
    b, d = loop.cfg.train.batch_size, loop.cfg.projector.out_dim
    gen = torch.Generator(device=loop.device).manual_seed(0)
    f = torch.randn(2 * b, d, generator=gen, device=loop.device)  # both views' projections (2B, d)
    pred = copy.deepcopy(loop.pair.predictor)  # leave the loop's F_hat alone

    def run() -> None:
        pred.observe(f, f)
        pred.after_optimizer_step(pred.freq)  # a refresh step

    return run


def bench_directpred(ctx: BenchContext) -> list[Measurement]:
    """The trial loop's step with DirectPred (F_hat EMA every step, eigh + W_p every freq steps)
    vs the same loop with the linear predictor (same model, data, batch); and DirectPred's
    update alone (no noise from the rest of the step) against the linear step."""
    s = ctx.sizes
    k = s.directpred_k
    loops = {
        "linear": make_loop(s.step_config, ctx, predictor={"name": "linear"}),
        "freq1": make_loop(s.step_config, ctx, predictor={"name": "directpred", "freq": 1}),
        "freq5": make_loop(s.step_config, ctx, predictor={"name": "directpred", "freq": 5}),
    }
    fns = {name: ours_steps(lp, k) for name, lp in loops.items()}
    update = directpred_update(loops["freq1"])
    fns["update"] = lambda: [update() for _ in range(k)]
    runs = interleave(fns, s.directpred_repeats, s.warmup, cuda_sync(loops["linear"].device))
    base = median(runs["linear"]) / k
    note = f"{describe_config(loops['linear'])}; {k} steps per timed call"
    out = []
    for name, freq, target in (("freq1", 1, Target("ratio", "<=", 1.15, "ratio <= 1.15")), ("freq5", 5, None)):
        out.append(
            Measurement(
                "directpred",
                f"step, DirectPred freq {freq} vs linear",
                median(runs[name]) / k,
                base,
                "s/step",
                target,
                note=note if freq == 1 else "",
                ours_runs=per_unit(runs[name], k),
                baseline_runs=per_unit(runs["linear"], k),
            )
        )
    out.append(
        Measurement(
            "directpred",
            "DirectPred update alone (F_hat EMA + eigh) vs linear step",
            median(runs["update"]) / k,
            base,
            "s/step",
            None,
            note="ratio = the extra cost of freq 1, without the noise of timing two full steps",
            ours_runs=per_unit(runs["update"], k),
            baseline_runs=per_unit(runs["linear"], k),
            part_of=out[0].what,  # a step with freq 1 does this update and the rest
        )
    )
    return out


# ---------------------------------------------------------------- 4. evaluation


EVALUATION = "evaluation (extract + probe + kNN) vs 1 epoch"  # the whole, which the probe and kNN are parts of


def bench_eval(ctx: BenchContext) -> list[Measurement]:
    """One evaluation (feature extraction, 50-epoch linear probe, kNN, spectra) vs one training
    epoch of the same trial; the probe and the kNN alone (on cached features) say which dominates."""
    s = ctx.sizes
    loop = make_loop(s.eval_config, ctx)
    if s.eval_splits:
        loop.splits = random_splits(loop.device, *s.eval_splits)
    cfg, b = loop.cfg, loop.cfg.train.batch_size
    epoch_steps = len(loop.splits.pretrain) // b
    autocast = autocast_for(cfg, loop.device)
    train_epoch_fn = ours_steps(loop, epoch_steps)
    tr_y, _, tr_l = extract(loop.pair.online, loop.splits.probe_train, loop.transform, b, autocast)
    te_y, _, te_l = extract(loop.pair.online, loop.splits.probe_test, loop.transform, b, autocast)
    n_cls = loop.splits.num_classes
    fns = {
        "epoch": train_epoch_fn,
        "evaluate": lambda: evaluate(loop.pair, loop.splits, loop.transform, cfg.eval, b, cfg.seed, autocast),
        "probe": lambda: linear_probe(tr_y, tr_l, te_y, te_l, n_cls, cfg.eval, cfg.seed),
        "knn": lambda: knn_top1(tr_y, tr_l, te_y, te_l, n_cls, cfg.eval.knn_k, cfg.eval.knn_t),
    }
    runs = interleave(fns, s.eval_repeats, s.warmup, cuda_sync(loop.device))
    epoch = median(runs["epoch"])
    sizes = (
        f"{len(loop.splits.pretrain)} pretraining images ({epoch_steps} steps), "
        f"{len(loop.splits.probe_train)} probe-train, {len(loop.splits.probe_test)} test; "
        f"probe {cfg.eval.probe_epochs} epochs, kNN k={cfg.eval.knn_k}"
    )
    return [
        Measurement(
            "eval",
            what,
            median(runs[key]),
            epoch,
            "s",
            None,
            note=f"{describe_config(loop)}; {sizes}" if key == "evaluate" else "",
            ours_runs=runs[key],
            baseline_runs=runs["epoch"],
            part_of=EVALUATION if key != "evaluate" else "",
        )
        for key, what in (
            ("evaluate", EVALUATION),
            ("probe", "linear probe alone vs 1 epoch"),
            ("knn", "kNN alone vs 1 epoch"),
        )
    ]
