"""The BYOL / SimSiam pair: online network, predictor, and the target branch (paper Sec. 1-2).

Online:  x -> trunk -> y -> projector -> z -> predictor -> p
Target:  x -> trunk_a -> projector_a -> t   (stop-gradient; W_a in the paper's notation)

The target is, depending on the config:
  * an EMA of the online weights, ``W_a <- tau W_a + (1 - tau) W`` (BYOL, ``ema.tau > 0``);
  * the online weights themselves under no_grad (SimSiam, ``ema.tau == 0``): no second network,
    the online projections are simply detached, exactly as SimSiam computes it;
  * the online network *with* gradient when ``loss.stop_gradient`` is false (the Theorem 2 ablation,
    W_a = W, which collapses); the EMA copy is then unused.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.config.trial import TrialConfig
from ablate.models.predictors import Predictor, build_predictor
from ablate.models.projector import Projector
from ablate.models.trunks import build_trunk

# ema.schedule -> tau at 0-based step k of K: the paper's constant rate, or BYOL's cosine rise to 1
EMA_SCHEDULES: dict[str, Callable[[float, int, int], float]] = {
    "constant": lambda tau, k, total: tau,
    "cosine": lambda tau, k, total: 1 - (1 - tau) * (math.cos(math.pi * k / max(total, 1)) + 1) / 2,
}


class Encoder(nn.Module):
    """trunk + projector: x -> (y, z)."""

    def __init__(self, cfg: TrialConfig, in_channels: int) -> None:
        super().__init__()
        self.trunk = build_trunk(cfg.model, in_channels)
        self.projector = Projector(self.trunk.feature_dim, cfg.projector)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = self.trunk(x)  # (B, D)
        return y, self.projector(y)  # (B, d)


def byol_loss(p: Tensor, t: Tensor) -> Tensor:
    """2 - 2 cos(p, t), averaged over the batch (paper Sec. 1). Computed in fp32."""
    return (2 - 2 * F.cosine_similarity(p.float(), t.float(), dim=-1)).mean()


class BYOLPair(nn.Module):
    """Online encoder + predictor + target branch, with the EMA step of Eq. (BYOL)."""

    def __init__(self, cfg: TrialConfig, in_channels: int) -> None:
        super().__init__()
        self.tau = cfg.ema.tau
        self.tau_at = EMA_SCHEDULES[cfg.ema.schedule]
        self.stop_gradient = cfg.loss.stop_gradient
        self.symmetric = cfg.loss.symmetric
        self.online = Encoder(cfg, in_channels)
        self.predictor: Predictor = build_predictor(cfg.predictor, cfg.projector.out_dim)
        self.target: Encoder | None = None
        if self.tau > 0 and self.stop_gradient:
            # The reference code starts the target from an independent random init, not a copy.
            self.target = copy.deepcopy(self.online) if cfg.ema.init == "copy" else Encoder(cfg, in_channels)
            for q in self.target.parameters():
                q.requires_grad_(False)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss for two views and the tensors the predictor hooks need (z1, z2, t1, t2 detached)."""
        # One forward per view, as the reference code does: BatchNorm sees each view's own batch.
        (_, z1), (_, z2) = self.online(x1), self.online(x2)  # (B, d) each
        if self.target is not None:
            with torch.no_grad():
                (_, t1), (_, t2) = self.target(x1), self.target(x2)
        elif self.stop_gradient:  # SimSiam: W_a = W under no_grad
            t1, t2 = z1.detach(), z2.detach()
        else:  # no stop-gradient: gradient flows through the target branch too (collapses)
            t1, t2 = z1, z2
        if self.symmetric:  # both views through the predictor, each against the other's target
            f, t = torch.cat([z1, z2]), torch.cat([t2, t1])
            loss = byol_loss(self.predictor(z1), t2) + byol_loss(self.predictor(z2), t1)
        else:  # one direction: only z1 reaches the predictor, so only z1 may feed F_hat
            f, t = z1, t2
            loss = byol_loss(self.predictor(z1), t2)
        return loss, {"f": f.detach(), "t": t.detach()}

    @torch.no_grad()
    def update_target(self, step: int = 0, total: int = 1) -> None:
        """W_a <- tau_k W_a + (1 - tau_k) W over parameters only (BN buffers are not averaged), after
        0-based step ``step`` of ``total``; tau_k follows ``ema.schedule`` (:data:`EMA_SCHEDULES`)."""
        if self.target is None:
            return
        online = [q for q in self.online.parameters()]
        target = [q for q in self.target.parameters()]
        torch._foreach_lerp_(target, online, 1.0 - self.tau_at(self.tau, step, total))
