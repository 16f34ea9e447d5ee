"""Predictors W_p: projection z (B, d) -> prediction p (B, d), as a registry keyed by ``predictor.name``.

The training loop talks to every predictor through the hooks of :class:`Predictor`, in this order
per step (reference code ``byol_trainer.py``, paper Sec. 2 and Sec. 5):

  forward(z) -> p;  observe(z1, z2, t1, t2) (detached);  optimizer step;
  after_optimizer_step(step) (1-based count of optimizer steps);  then the EMA update of the target.

Variants (``PREDICTORS``): ``none`` (identity: the no-predictor ablation), ``linear`` (W_p, optionally
symmetrised, Table 2/3), ``mlp`` (two layers with BN, optionally symmetric, Table 3/9), ``directpred``
(W_p set from the eigen-decomposition of F_hat, Eq. 18-19, Tables 6-8) and ``plugin`` (the optimal
linear predictor solved from EMA statistics, Table 1).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ablate.config.trial import (
    DirectPredConfig,
    LinearPredictorConfig,
    MLPPredictorConfig,
    NoPredictorConfig,
    PluginPredictorConfig,
    PredictorConfig,
)
from ablate.models.spectra import no_autocast, spectra, sym_eigh

__all__ = [
    "PREDICTORS",
    "Predictor",
    "build_predictor",
    "directpred_weight",
    "directcopy_weight",
    "plugin_weight",
    "spectra",
]

_TINY = torch.finfo(torch.float32).tiny


class Predictor(nn.Module):
    """Base class: the hooks the training loop calls. Defaults do nothing."""

    #: whether the predictor has parameters the optimizer should move (False: no parameters).
    uses_sgd: bool = True

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, z: Tensor) -> Tensor:  # (B, d) -> (B, d)
        raise NotImplementedError

    def observe(self, z1: Tensor, z2: Tensor, t1: Tensor, t2: Tensor) -> None:
        """Every step, right after the forward pass: detached online z1, z2 and target t1, t2 (B, d)."""

    def after_optimizer_step(self, step: int) -> None:
        """After optimizer step number ``step`` (1-based), before the EMA update of the target."""

    def linear_weight(self) -> Tensor | None:
        """The current W_p (d, d) of a linear-type predictor (p = W_p z), else None."""
        return None

    @property
    def corr(self) -> Tensor | None:
        """F_hat (d, d) fp32 for predictors that track it (directpred, plugin), else None."""
        return None


class CorrelationEMA(nn.Module):
    """M <- rho M + (1 - rho) M_batch, where the first update sets M = M_batch (the reference code's
    ``Accumulator`` with ``dyn_lambda = rho``; paper Eq. 19). fp32 buffers, so checkpoints carry it."""

    def __init__(self, dim: int, rho: float) -> None:
        super().__init__()
        self.rho = rho
        self.register_buffer("value", torch.zeros(dim, dim, dtype=torch.float32))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        # The weight is a tensor so the first-step test needs no host sync on CUDA.
        w = torch.where(self.count == 0, 1.0, 1.0 - self.rho).to(self.value.dtype)
        self.value.lerp_(batch.to(self.value.dtype), w)
        self.count += 1


def _global_mean(m: Tensor) -> Tensor:
    """Average a batch statistic over data-parallel ranks, so every rank sets the same W_p
    (the reference code's DataParallel saw the whole batch in one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(m)
        m /= dist.get_world_size()
    return m


def batch_corr(z1: Tensor, z2: Tensor) -> Tensor:
    """E[f f^T] over f = cat(z1, z2) (2B, d): detached, NOT centred, fp32 -> (d, d)."""
    with no_autocast(z1.device):
        f = torch.cat([z1, z2]).detach().float()  # (2B, d)
        return _global_mean(f.T @ f / f.shape[0])


def batch_cross_corr(z1: Tensor, z2: Tensor, t1: Tensor, t2: Tensor) -> Tensor:
    """E[t f^T] pairing each view's online projection f with the OTHER view's target t -> (d, d),
    rows indexed by t (reference code: ``cross_corr = (E[t2 z1^T] + E[t1 z2^T]) / 2``)."""
    with no_autocast(z1.device):
        f = torch.cat([z1, z2]).detach().float()  # (2B, d)
        t = torch.cat([t2, t1]).detach().float()  # (2B, d): the target of the other view
        return _global_mean(t.T @ f / f.shape[0])


# ------------------------------------------------------------------- closed-form W_p
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


def plugin_weight(corr: Tensor, cross: Tensor, ridge: float) -> Tensor:
    """Least-squares linear predictor of the target from the online projection, fp32:

      W_p = argmin_W E||W f - t||^2 = C (F + lambda I)^{-1},  C = E[t f^T], F = E[f f^T],
      lambda = ridge * tr(F) / d   (a ridge relative to F's mean eigenvalue, so it is scale-free).

    The inverse goes through eigh(F) with eigenvalues clamped at 0, as the reference code's
    ``predictor_reg=solve`` does (its ``dyn_reg`` is absolute); a zero ridge with a singular F gives
    the pseudo-inverse. The reference's default ``solve_direction=left`` computes F^{-1} C instead;
    that equals C F^{-1} only when C and F commute; we use the least-squares form."""
    s, u = sym_eigh(corr)
    with no_autocast(s.device):
        s = s.clamp_min(0)
        denom = s + ridge * s.sum() / s.shape[0]
        tol = denom.max().clamp_min(_TINY) * s.shape[0] * torch.finfo(torch.float32).eps
        inv_s = torch.where(denom > tol, 1.0 / denom.clamp_min(_TINY), torch.zeros_like(denom))
        return cross.float() @ ((u * inv_s) @ u.T)


# ------------------------------------------------------------------- variants
class IdentityPredictor(Predictor):
    """p = z: the "no predictor" ablation (collapses, Theorem 2)."""

    uses_sgd = False

    def __init__(self, cfg: NoPredictorConfig, dim: int) -> None:
        super().__init__(dim)

    def forward(self, z: Tensor) -> Tensor:
        return z


class LinearPredictor(Predictor):
    """p = W_p z (+ b): one Linear(d, d). ``symmetric``: W_p <- (W_p + W_p^T)/2 at init and after
    every optimizer step (Table 3; the reference code's ``predictor_reg=symmetric``)."""

    def __init__(self, cfg: LinearPredictorConfig, dim: int) -> None:
        super().__init__(dim)
        self.linear = nn.Linear(dim, dim, bias=cfg.bias)
        self.symmetric = cfg.symmetric
        if self.symmetric:
            self._symmetrise()

    def forward(self, z: Tensor) -> Tensor:
        return self.linear(z)

    @torch.no_grad()
    def _symmetrise(self) -> None:
        w = self.linear.weight
        w.copy_((w + w.T) / 2)

    def after_optimizer_step(self, step: int) -> None:
        if self.symmetric:
            self._symmetrise()

    def linear_weight(self) -> Tensor:
        return self.linear.weight


class MLPPredictor(Predictor):
    """Linear(d, h) -> BatchNorm1d(h, affine) -> ReLU -> Linear(h, d), biases per ``cfg.bias``
    (paper: 128 -> 512 -> 128, BN affine off; BYOL ImageNet: 4096 hidden).

    ``symmetric`` (Table 3, "2-layer symmetric") follows the reference code's two-linear-layer
    branch of ``regulate_predictor``: the layers are tied, W2 = W1^T, by setting
    W = (W1 + W2^T)/2, W1 <- W, W2 <- W^T after every optimizer step (and here also at init).
    Biases and BN are left alone there, and so here."""

    def __init__(self, cfg: MLPPredictorConfig, dim: int) -> None:
        super().__init__(dim)
        self.layers = nn.Sequential(
            nn.Linear(dim, cfg.hidden_dim, bias=cfg.bias),
            nn.BatchNorm1d(cfg.hidden_dim, affine=cfg.bn_affine),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden_dim, dim, bias=cfg.bias),
        )
        self.symmetric = cfg.symmetric
        if self.symmetric:
            self._tie()

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z)

    @torch.no_grad()
    def _tie(self) -> None:
        w1, w2 = self.layers[0].weight, self.layers[3].weight  # (h, d), (d, h)
        w = (w1 + w2.T) / 2
        w1.copy_(w)
        w2.copy_(w.T)

    def after_optimizer_step(self, step: int) -> None:
        if self.symmetric:
            self._tie()


class PluggedLinearPredictor(Predictor):
    """A bias-free Linear(d, d) whose weight is overwritten by :meth:`target_weight` (computed from
    EMA statistics of the projections) every ``freq`` optimizer steps: on the 1-based steps
    1, 1 + freq, 1 + 2 freq, ... (the reference code's ``niter % freq == 0`` on its 0-based
    counter, so the first step already plugs in), after the optimizer step and before the target's EMA update. The
    predictor's optimizer keeps stepping, so SGD moves W_p between plug-ins (``freq`` > 1), as in
    the reference code. F_hat (``corr``) is the EMA of E[f f^T] over both views' online
    projections f (detached, not centred, fp32; first step = batch value)."""

    def __init__(self, dim: int, rho: float, freq: int) -> None:
        super().__init__(dim)
        self.linear = nn.Linear(dim, dim, bias=False)
        self.f_stats = CorrelationEMA(dim, rho)
        self.freq = freq

    def forward(self, z: Tensor) -> Tensor:
        return self.linear(z)

    def observe(self, z1: Tensor, z2: Tensor, t1: Tensor, t2: Tensor) -> None:
        self.f_stats.update(batch_corr(z1, z2))

    def target_weight(self) -> Tensor:
        """The W_p (d, d, fp32) the next plug-in sets, from the current statistics."""
        raise NotImplementedError

    @torch.no_grad()
    def after_optimizer_step(self, step: int) -> None:
        if (step - 1) % self.freq == 0:
            self.linear.weight.copy_(self.target_weight())

    def linear_weight(self) -> Tensor:
        return self.linear.weight

    @property
    def corr(self) -> Tensor | None:
        return self.f_stats.value if int(self.f_stats.count) > 0 else None


class DirectPredPredictor(PluggedLinearPredictor):
    """DirectPred (paper Sec. 5, Eq. 18-19; reference code ``predictor_reg=corr``,
    ``balance_type=boost_scale``): F_hat <- rho F_hat + (1 - rho) E[f f^T] every step, and every
    ``freq`` steps W_p <- :func:`directpred_weight` (``mode=eigen``) or :func:`directcopy_weight`
    (``mode=copy``, DirectCopy)."""

    def __init__(self, cfg: DirectPredConfig, dim: int) -> None:
        super().__init__(dim, cfg.rho, cfg.freq)
        self.eps, self.eps_inside, self.mode = cfg.eps, cfg.eps_inside, cfg.mode

    def target_weight(self) -> Tensor:
        f = self.f_stats.value
        return (
            directcopy_weight(f, self.eps) if self.mode == "copy" else directpred_weight(f, self.eps, self.eps_inside)
        )


class PluginPredictor(PluggedLinearPredictor):
    """Table 1, "optimal linear predictor solved from EMA statistics, plugged in every N minibatches"
    (reference code ``predictor_reg=solve``): EMA estimates (rate ``rho``) of F = E[f f^T] and of
    C = E[t f^T], t the other view's target projection; every ``freq`` steps
    W_p <- :func:`plugin_weight` = C (F + ridge tr(F)/d I)^{-1}."""

    def __init__(self, cfg: PluginPredictorConfig, dim: int) -> None:
        super().__init__(dim, cfg.rho, cfg.freq)
        self.c_stats = CorrelationEMA(dim, cfg.rho)
        self.ridge = cfg.ridge

    def observe(self, z1: Tensor, z2: Tensor, t1: Tensor, t2: Tensor) -> None:
        super().observe(z1, z2, t1, t2)
        self.c_stats.update(batch_cross_corr(z1, z2, t1, t2))

    def target_weight(self) -> Tensor:
        return plugin_weight(self.f_stats.value, self.c_stats.value, self.ridge)


PREDICTORS: dict[str, type[Predictor]] = {
    "none": IdentityPredictor,
    "linear": LinearPredictor,
    "mlp": MLPPredictor,
    "directpred": DirectPredPredictor,
    "plugin": PluginPredictor,
}


def build_predictor(cfg: PredictorConfig, dim: int) -> Predictor:
    """The predictor of ``cfg.name`` acting on d = ``dim`` projections (the config's variant
    registry admits exactly these names)."""
    return PREDICTORS[cfg.name](cfg, dim)
