"""Evaluation of a trial's online network: linear probe, kNN, collapse monitor, predictor spectra.

Features are extracted once per evaluation (frozen trunk in eval mode, un-augmented images) and the
probe trains on those cached features, so a 50-epoch probe costs seconds, not a re-run of the trunk.
The whole evaluation runs under a forked RNG so that how often a trial evaluates never changes the
training trajectory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.config.trial import EvalConfig
from ablate.models.spectra import spectra
from ablate.results.schema import COLLAPSE_Z_STD

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
    head = nn.Linear(xtr.shape[1], num_classes).to(xtr.device)
    with torch.no_grad():  # seeded init, independent of the training RNG
        bound = 1 / xtr.shape[1] ** 0.5
        head.weight.copy_(torch.empty(head.weight.shape).uniform_(-bound, bound, generator=gen))
        head.bias.copy_(torch.empty(head.bias.shape).uniform_(-bound, bound, generator=gen))
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
        with torch.no_grad():
            logits = head(xte)
            top1 = topk_correct(logits, test_labels, 1).float().mean()
            top5 = topk_correct(logits, test_labels, 5).float().mean()
        best = max(best, float(top1))
    return {"probe_top1": float(top1), "probe_top5": float(top5), "probe_top1_best": best}


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
        out: dict[str, object] = linear_probe(tr_y, tr_l, te_y, te_l, splits.num_classes, cfg, seed)
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
