"""DirectPred (paper Sec. 5, Eq. 18-19; Tables 6-8): W_p set from the eigen-decomposition of F_hat,
and DirectCopy (W_p = F_hat, normalised, + eps I)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ablate.config.tree import doc
from ablate.config.trial import PredictorConfig
from ablate.models.predictors.base import PluggedLinearPredictor, register_predictor
from ablate.models.spectra import no_autocast, sym_eigh

_TINY = torch.finfo(torch.float32).tiny


def directpred_weight(corr: Tensor, eps: float, eps_inside: bool = False) -> Tensor:
    """DirectPred's W_p = U diag(p) U^T from F_hat = U diag(s) U^T (paper Eq. 18, code form), fp32.

    Code form (authoritative, ``compute_w_corr`` with ``balance_type=boost_scale``):
      p_j = max(sqrt(max(s_j, 0) / s_max) + eps, 1e-4)
    ``eps_inside`` (Table 7 with eps = -c):  p_j = sqrt(max(max(s_j, 0) / s_max + eps, 1e-4)).
    The paper prints p_j = sqrt(s_j) + eps max_j s_j instead; the code normalises by s_max first.
    When s_max <= 0 (F_hat = 0) every p_j is max(eps, 1e-4) (resp. sqrt(max(eps, 1e-4))): no NaN.
    The eigh runs in fp32 with autocast disabled."""
    s, u = sym_eigh(corr)  # ascending (d,), (d, d)
    with no_autocast(s.device):
        s = s.clamp_min(0)
        ratio = s / s.max().clamp_min(_TINY)
        p = (ratio + eps).clamp_min(1e-4).sqrt() if eps_inside else (ratio.sqrt() + eps).clamp_min(1e-4)
        return (u * p) @ u.T


def directcopy_weight(corr: Tensor, eps: float) -> Tensor:
    """DirectCopy's W_p = F_hat / ||F_hat||_F + eps I (no eigen-decomposition), fp32.

    The reference code's ``directcopy`` branch sets W_p = F_hat + eps I unnormalised; then eps has
    no fixed scale (F_hat's scale follows the projection norms, which drift during training). We
    divide by the Frobenius norm, which costs O(d^2) and keeps the method free of any
    eigen-decomposition (the point of DirectCopy); the loss is scale-invariant in W_p, so only the
    ratio of F_hat to eps I matters, and that ratio is now fixed."""
    with no_autocast(corr.device):
        f = corr.float()
        f = f / torch.linalg.matrix_norm(f).clamp_min(_TINY)
        return f + eps * torch.eye(f.shape[0], dtype=f.dtype, device=f.device)


@dataclass(frozen=True)
class DirectPredConfig(PredictorConfig):
    name: Literal["directpred"] = "directpred"
    rho: float = field(default=0.3, metadata=doc("EMA rate of F_hat: F <- rho F + (1-rho) E[f f^T]", min=0, max=1))
    eps: float = field(
        default=0.1,
        metadata=doc("eps in p_j = sqrt(s_j / s_max) + eps (Eq. 18, code form); Table 7 uses eps_inside with eps = -c"),
    )
    freq: int = field(default=1, metadata=doc("set W_p every freq steps; SGD moves it in between", min=1))
    eps_inside: bool = field(default=False, metadata=doc("p_j = sqrt(max(s_j/s_max + eps, 1e-4)) (Table 7 variant)"))
    mode: Literal["eigen", "copy"] = field(
        default="eigen", metadata=doc("eigen (Eq. 18) or copy (DirectCopy: W_p = F/||F|| + eps I)")
    )

    def check(self) -> tuple[str, str] | None:
        if self.eps < 0 and not self.eps_inside:
            return (
                "eps",
                f"must be >= 0 unless eps_inside is true (Table 7 uses eps = -c inside the root), got {self.eps}",
            )
        return None


@register_predictor
class DirectPredPredictor(PluggedLinearPredictor):
    """DirectPred (paper Sec. 5, Eq. 18-19; reference code ``predictor_reg=corr``,
    ``balance_type=boost_scale``): F_hat <- rho F_hat + (1 - rho) E[f f^T] every step, and every
    ``freq`` steps W_p <- :func:`directpred_weight` (``mode=eigen``) or :func:`directcopy_weight`
    (``mode=copy``, DirectCopy)."""

    Config = DirectPredConfig

    def __init__(self, cfg: DirectPredConfig, dim: int) -> None:
        super().__init__(dim, cfg.rho, cfg.freq)
        self.eps, self.eps_inside, self.mode = cfg.eps, cfg.eps_inside, cfg.mode

    def target_weight(self) -> Tensor:
        f = self.f_stats.value
        return (
            directcopy_weight(f, self.eps) if self.mode == "copy" else directpred_weight(f, self.eps, self.eps_inside)
        )
