"""Evaluation of a trial's online network: linear probe, kNN, collapse monitor, predictor spectra.

Features are extracted once per evaluation (frozen trunk in eval mode, un-augmented images) and the
paper's probe trains on those cached features, so a 50-epoch probe costs seconds, not a re-run of
the trunk; BYOL's protocol (``eval.protocol: byol``, :data:`PROBES`) re-encodes augmented crops every
probe epoch, as BYOL's ImageNet evaluation does.
The whole evaluation runs under a forked RNG so that how often a trial evaluates never changes the
training trajectory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.config.trial import EvalConfig
from ablate.datasets.recipes import Recipe
from ablate.models.spectra import spectra
from ablate.results.schema import COLLAPSE_Z_STD
from ablate.train.augment import BatchAugment

Transform = Callable[[Tensor], Tensor]


@torch.no_grad()
def extract(
    encoder: nn.Module,
    images,
    transform: Transform,
    batch_size: int,
    autocast: contextlib.AbstractContextManager | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Trunk features y (N, D), projections z (N, d) and labels (N,) of an ImageSet, in fp32."""
    was_training = encoder.training
    encoder.eval()
    ys, zs, labels = [], [], []
    for x, label in images.batches(batch_size, shuffle=False, generator=None, drop_last=False):
        with autocast or contextlib.nullcontext():
            y, z = encoder(transform(x))
        ys.append(y.float())
        zs.append(z.float())
        labels.append(label)
    encoder.train(was_training)
    return torch.cat(ys), torch.cat(zs), torch.cat(labels)


def z_std(z: Tensor) -> float:
    """Collapse monitor: std over samples of l2-normalised projections, mean over dims, x sqrt(d).

    About 1 for well-spread projections, 0 when every image maps to the same direction.
    """
    zn = F.normalize(z.float(), dim=1)
    return float(zn.std(dim=0).mean() * z.shape[1] ** 0.5)


def topk_correct(logits: Tensor, labels: Tensor, k: int) -> Tensor:
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)


def _seeded_head(dim: int, num_classes: int, gen: torch.Generator, device: torch.device) -> nn.Linear:
    """Linear(dim, C) with PyTorch's default init drawn from ``gen``, independent of the training RNG."""
    head = nn.Linear(dim, num_classes).to(device)
    with torch.no_grad():
        bound = 1 / dim**0.5
        head.weight.copy_(torch.empty(head.weight.shape).uniform_(-bound, bound, generator=gen))
        head.bias.copy_(torch.empty(head.bias.shape).uniform_(-bound, bound, generator=gen))
    return head


def _test_accuracy(head: nn.Module, test_y: Tensor, test_labels: Tensor) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        logits = head(test_y)
        return topk_correct(logits, test_labels, 1).float().mean(), topk_correct(logits, test_labels, 5).float().mean()


def linear_probe(
    train_y: Tensor,
    train_labels: Tensor,
    test_y: Tensor,
    test_labels: Tensor,
    num_classes: int,
    cfg: EvalConfig,
    seed: int,
) -> dict[str, float]:
    """The paper's probe: features standardised with train statistics, Linear(D, C), Adam
    (lr 3e-4, wd 1e-3), batch 128, ``cfg.probe_epochs`` epochs; test accuracy after every epoch.

    Returns the final epoch's top-1/top-5 and the best top-1 over epochs (the paper reports the
    best, which is optimistic; both are recorded so a table can name its protocol)."""
    mean, std = train_y.mean(0), train_y.std(0).clamp_min(1e-6)
    xtr, xte = (train_y - mean) / std, (test_y - mean) / std
    gen = torch.Generator(device="cpu").manual_seed(seed)
    head = _seeded_head(xtr.shape[1], num_classes, gen, xtr.device)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.probe_lr, weight_decay=cfg.probe_weight_decay)
    n, best = xtr.shape[0], 0.0
    top1 = top5 = torch.zeros((), device=xtr.device)
    for _ in range(cfg.probe_epochs):
        order = torch.randperm(n, generator=gen).to(xtr.device)
        for i in range(0, n, cfg.probe_batch_size):
            idx = order[i : i + cfg.probe_batch_size]
            loss = F.cross_entropy(head(xtr[idx]), train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        top1, top5 = _test_accuracy(head, xte, test_labels)
        best = max(best, float(top1))
    return {"probe_top1": float(top1), "probe_top5": float(top5), "probe_top1_best": best}


@dataclass(frozen=True)
class ProbeInputs:
    """What a probe protocol may use: the frozen online encoder, the splits, the un-augmented
    transform, the cached features of that transform (train and test) and the settings."""

    encoder: nn.Module
    splits: Any
    transform: Transform
    cfg: EvalConfig
    seed: int
    features: tuple[Tensor, Tensor, Tensor, Tensor]  # train y, train labels, test y, test labels
    autocast: contextlib.AbstractContextManager | None


def paper_probe(p: ProbeInputs) -> dict[str, float]:
    return linear_probe(*p.features[:2], *p.features[2:], p.splits.num_classes, p.cfg, p.seed)


def byol_probe_lr(cfg: EvalConfig) -> float:
    """BYOL's probe lr: its base lr scaled by the batch, ``probe_lr`` x ``probe_batch_size`` / 256
    (deepmind-research byol/utils/schedules.py, learning_schedule: ``scaled_lr = base_learning_rate *
    batch_size / 256.``; byol/configs/eval.py: base 0.2, so 0.8 at batch 1024)."""
    return cfg.probe_lr * cfg.probe_batch_size / 256


def byol_probe(p: ProbeInputs) -> dict[str, float]:
    """BYOL's linear evaluation (Grill et al. 2020, App. C.1): a Linear(D, C) trained by SGD with
    Nesterov momentum 0.9 (the base ``probe_lr`` scaled by batch / 256, :func:`byol_probe_lr`,
    cosine-decayed to 0 over the probe's steps, ``probe_weight_decay``, BYOL: none) on random-resized
    crops (scale 0.08-1) and flips of the probe's
    train images, re-encoded by the frozen trunk (eval mode) every epoch; features are not
    standardised; test images are the un-augmented transform's (resize + centre crop)."""
    t, cfg = p.transform, p.cfg
    spatial = BatchAugment(
        Recipe(crop_scale=(0.08, 1.0), flip=True, mean=t.recipe.mean, std=t.recipe.std), t.size, t.channels
    )
    _, train_labels, test_y, test_labels = p.features
    device = test_y.device
    gen = torch.Generator(device="cpu").manual_seed(p.seed)
    aug_gen = torch.Generator(device=device).manual_seed(p.seed + 2)
    head = _seeded_head(test_y.shape[1], p.splits.num_classes, gen, device)
    opt = torch.optim.SGD(
        head.parameters(), lr=byol_probe_lr(cfg), momentum=0.9, nesterov=True, weight_decay=cfg.probe_weight_decay
    )
    steps_per_epoch = -(-len(train_labels) // cfg.probe_batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.probe_epochs * steps_per_epoch)
    best, top1, top5 = 0.0, torch.zeros(()), torch.zeros(())
    was_training = p.encoder.training
    p.encoder.eval()
    for _ in range(cfg.probe_epochs):
        for x, labels in p.splits.probe_train.batches(
            cfg.probe_batch_size, shuffle=True, generator=gen, drop_last=False
        ):
            with torch.no_grad(), p.autocast or contextlib.nullcontext():
                y, _ = p.encoder(spatial(x, aug_gen))
            loss = F.cross_entropy(head(y.float()), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        top1, top5 = _test_accuracy(head, test_y, test_labels)
        best = max(best, float(top1))
    p.encoder.train(was_training)
    return {"probe_top1": float(top1), "probe_top5": float(top5), "probe_top1_best": best}


# eval.protocol -> the linear probe that fills probe_top1 / probe_top5 / probe_top1_best
PROBES: dict[str, Callable[[ProbeInputs], dict[str, float]]] = {"paper": paper_probe, "byol": byol_probe}


@torch.no_grad()
def knn_top1(
    train_y: Tensor,
    train_labels: Tensor,
    test_y: Tensor,
    test_labels: Tensor,
    num_classes: int,
    k: int,
    t: float,
    chunk: int = 1024,
) -> float:
    """Weighted kNN on cosine similarity (InstDisc protocol): votes exp(sim / t) of the k nearest."""
    train_n = F.normalize(train_y.float(), dim=1)
    test_n = F.normalize(test_y.float(), dim=1)
    k = min(k, train_n.shape[0])
    correct = torch.zeros((), device=train_n.device)
    for i in range(0, test_n.shape[0], chunk):
        sim, idx = (test_n[i : i + chunk] @ train_n.T).topk(k, dim=1)  # (b, k)
        votes = torch.zeros(sim.shape[0], num_classes, device=sim.device)
        votes.scatter_add_(1, train_labels[idx], (sim / t).exp())
        correct += (votes.argmax(1) == test_labels[i : i + chunk]).sum()
    return float(correct) / test_n.shape[0]


COLLAPSE_BATCH = 512  # probe-train images a collapse-only check projects: z_std's noise is ~1/sqrt(n)


@torch.no_grad()
def collapse_check(
    pair: nn.Module, splits, transform: Transform, autocast: contextlib.AbstractContextManager | None = None
) -> dict[str, object]:
    """The collapse monitor alone (``eval.collapse_every``): z_std of the online projections of the
    first :data:`COLLAPSE_BATCH` probe-train images (always the same images), no probe, no kNN."""
    device = next(pair.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        x, _ = next(iter(splits.probe_train.batches(COLLAPSE_BATCH, shuffle=False, generator=None, drop_last=False)))
        was_training = pair.online.training
        pair.online.eval()
        with autocast or contextlib.nullcontext():
            _, z = pair.online(transform(x))
        pair.online.train(was_training)
    value = z_std(z.float())
    return {"z_std": value, "collapsed": value < COLLAPSE_Z_STD}


def evaluate(
    pair: nn.Module,
    splits,
    transform: Transform,
    cfg: EvalConfig,
    batch_size: int,
    seed: int,
    autocast: contextlib.AbstractContextManager | None = None,
) -> dict[str, object]:
    """All evaluation metrics of the results schema for the pair's current online network."""
    device = next(pair.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        tr_y, tr_z, tr_l = extract(pair.online, splits.probe_train, transform, batch_size, autocast)
        te_y, _, te_l = extract(pair.online, splits.probe_test, transform, batch_size, autocast)
        probe = ProbeInputs(pair.online, splits, transform, cfg, seed, (tr_y, tr_l, te_y, te_l), autocast)
        out: dict[str, object] = dict(PROBES[cfg.protocol](probe))
        out["knn_top1"] = knn_top1(tr_y, tr_l, te_y, te_l, splits.num_classes, cfg.knn_k, cfg.knn_t)
        out["z_std"] = z_std(tr_z)
        out["collapsed"] = out["z_std"] < COLLAPSE_Z_STD
        w_p = pair.predictor.linear_weight()
        if cfg.spectra and w_p is not None:
            # DirectPred/plug-in keep F_hat from training; for a plain linear predictor, F is the
            # (uncentred) correlation of the online projections of the probe images.
            corr = pair.predictor.corr if pair.predictor.corr is not None else tr_z.T @ tr_z / tr_z.shape[0]
            out.update(spectra(corr.float(), w_p.detach().float()))
    return out
