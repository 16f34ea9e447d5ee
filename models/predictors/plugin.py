"""The plug-in predictor (paper Sec. 5, Table 1): the optimal linear W_p solved from EMA statistics
of the projections and their targets, plugged in every ``freq`` steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ablate.config.tree import doc
from ablate.config.trial import ADDED_LATER, PredictorConfig
from ablate.models.predictors.base import (
    CorrelationEMA,
    PluggedLinearPredictor,
    batch_cross_corr,
    register_predictor,
)
from ablate.models.spectra import no_autocast, sym_eigh

_TINY = torch.finfo(torch.float32).tiny


def _ridge_eigh(corr: Tensor, ridge: float) -> tuple[Tensor, Tensor, Tensor]:
    """(s + lambda, U, the rank cut-off) from F = U diag(s) U^T, s clamped at 0, with the relative
    ridge lambda = ridge * tr(F) / d (scale-free, where the reference code's ``dyn_reg`` is absolute)."""
    s, u = sym_eigh(corr)
    s = s.clamp_min(0)
    denom = s + ridge * s.sum() / s.shape[0]
    tol = denom.max().clamp_min(_TINY) * s.shape[0] * torch.finfo(torch.float32).eps
    return denom, u, tol


def plugin_weight(corr: Tensor, cross: Tensor, ridge: float) -> Tensor:
    """The paper's plug-in predictor (Sec. 5, Table 1), fp32: W_p F = 1/2 (E[f_a f^T] + E[f f_a^T]),

      W_p = sym(C) (F + lambda I)^{-1},  C = E[t f^T] (t = f_a, the target), sym(C) = (C + C^T) / 2.

    The inverse goes through eigh(F) with eigenvalues clamped at 0; a zero ridge with a singular F
    gives the pseudo-inverse."""
    denom, u, tol = _ridge_eigh(corr, ridge)
    with no_autocast(denom.device):
        inv_s = torch.where(denom > tol, 1.0 / denom.clamp_min(_TINY), torch.zeros_like(denom))
        c = cross.float()
        return ((c + c.T) / 2) @ ((u * inv_s) @ u.T)


def plugin_weight_lyapunov(corr: Tensor, cross: Tensor, ridge: float) -> Tensor:
    """The symmetric plug-in of the reference code's ``minimal_space`` branch, fp32: the symmetric W
    solving the Lyapunov equation  F W + W F + 2 lambda W = 2 sym(C)  (the stationary point of
    E||W f - t||^2 over symmetric W). In F's eigenbasis it is diagonal in pairs:
    W'_ij = C'_ij / ((s_i + s_j) / 2 + lambda), with C' = U^T sym(C) U, W = U W' U^T."""
    denom, u, tol = _ridge_eigh(corr, ridge)
    with no_autocast(denom.device):
        c = cross.float()
        c_eig = u.T @ ((c + c.T) / 2) @ u
        pair = (denom[:, None] + denom[None, :]) / 2  # (s_i + s_j) / 2 + lambda
        w_eig = torch.where(pair > tol, c_eig / pair.clamp_min(_TINY), torch.zeros_like(pair))
        return u @ w_eig @ u.T


def plugin_weight_lstsq(corr: Tensor, cross: Tensor, ridge: float) -> Tensor:
    """The unconstrained least-squares predictor argmin_W E||W f - t||^2 = C (F + lambda I)^{-1}, fp32
    (not symmetrised; the reference's ``solve_direction=left`` computes F^{-1} C, equal only when C
    and F commute)."""
    denom, u, tol = _ridge_eigh(corr, ridge)
    with no_autocast(denom.device):
        inv_s = torch.where(denom > tol, 1.0 / denom.clamp_min(_TINY), torch.zeros_like(denom))
        return cross.float() @ ((u * inv_s) @ u.T)


# How ``predictor.solve`` of the plug-in predictor turns F and C into W_p.
PLUGIN_SOLVES = {"paper": plugin_weight, "lyapunov": plugin_weight_lyapunov, "lstsq": plugin_weight_lstsq}


@dataclass(frozen=True)
class PluginPredictorConfig(PredictorConfig):
    """Table 1: the optimal linear predictor solved from EMA statistics and plugged in every freq steps."""

    name: Literal["plugin"] = "plugin"
    rho: float = field(
        default=0.3, metadata=doc("EMA rate of the statistics F and the cross-correlation", min=0, max=1)
    )
    freq: int = field(default=1, metadata=doc("solve and plug W_p every freq steps", min=1))
    ridge: float = field(
        default=1e-4, metadata=doc("ridge added to F (relative to its trace / d) before solving", min=0)
    )
    solve: Literal["paper", "lyapunov", "lstsq"] = field(
        default="paper",
        metadata=doc(
            "paper: W_p = sym(C) (F + ridge)^-1 (W_p F = 1/2 (E[f_a f^T] + E[f f_a^T])); lyapunov: the symmetric W "
            "of F W + W F + 2 ridge W = 2 sym(C) (reference code, minimal_space); lstsq: C (F + ridge)^-1"
        ),
    )
    symmetric: bool = field(
        default=False,
        # added after the first plug-in trials ran: left out of the trial id while false (ADDED_LATER)
        metadata={
            **doc(
                "between plug-ins (freq > 1), W_p <- (W_p + W_p^T)/2 after each SGD step (the reference code's "
                "dyn_sym, true there by default)"
            ),
            ADDED_LATER: True,
        },
    )


@register_predictor
class PluginPredictor(PluggedLinearPredictor):
    """Table 1, "optimal linear predictor solved from EMA statistics, plugged in every N minibatches"
    (reference code ``predictor_reg=solve``): EMA estimates (rate ``rho``) of F = E[f f^T] and of
    C = E[t f^T], t the target each input was compared with; every ``freq`` steps W_p is solved
    from them by ``solve`` (:data:`PLUGIN_SOLVES`; the paper's sym(C) (F + ridge tr(F)/d I)^{-1})."""

    Config = PluginPredictorConfig

    def __init__(self, cfg: PluginPredictorConfig, dim: int) -> None:
        super().__init__(dim, cfg.rho, cfg.freq)
        self.c_stats = CorrelationEMA(dim, cfg.rho)
        self.ridge = cfg.ridge
        self.solve = PLUGIN_SOLVES[cfg.solve]
        self.symmetric = cfg.symmetric

    def observe(self, f: Tensor, t: Tensor) -> None:
        super().observe(f, t)
        self.c_stats.update(batch_cross_corr(f, t))

    def target_weight(self) -> Tensor:
        return self.solve(self.f_stats.value, self.c_stats.value, self.ridge)

    @torch.no_grad()
    def after_optimizer_step(self, step: int) -> None:
        """Plug W_p in every ``freq`` steps; between plug-ins, with ``symmetric``, W_p <- (W_p + W_p^T)/2
        after the SGD step (the reference's ``regulate_predictor``, ``minimal_space`` branch: when
        ``niter % predictor_freq != 0`` and ``dyn_sym``, ``w += w.t(); w /= 2``)."""
        if (step - 1) % self.freq == 0:
            super().after_optimizer_step(step)
        elif self.symmetric:
            w = self.linear.weight
            w.copy_((w + w.T) / 2)
