"""Predictors W_p: projection z (B, d) -> prediction p (B, d), as a registry keyed by ``predictor.name``.

The training loop talks to every predictor through the hooks of :class:`Predictor`, in this order
per step (reference code ``byol_trainer.py``, paper Sec. 2 and Sec. 5):

  forward(z) -> p;  observe(f, t) (detached);  optimizer step;
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
    "plugin_weight_lyapunov",
    "plugin_weight_lstsq",
    "PLUGIN_SOLVES",
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

    def observe(self, f: Tensor, t: Tensor) -> None:
        """Every step, right after the forward pass: the projections the predictor was fed, f (n, d),
        and the target each was compared with, t (n, d), detached. Symmetric loss: f = cat(z1, z2),
        t = cat(t2, t1), n = 2B; one-direction loss: f = z1, t = t2, n = B."""

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


def batch_corr(f: Tensor) -> Tensor:
    """E[f f^T] over the predictor's inputs f (n, d): detached, NOT centred, fp32 -> (d, d)."""
    with no_autocast(f.device):
        f = f.detach().float()
        return _global_mean(f.T @ f / f.shape[0])


def batch_cross_corr(f: Tensor, t: Tensor) -> Tensor:
    """E[t f^T] pairing each predictor input f with the target it was compared with -> (d, d), rows
    indexed by t (symmetric loss, reference code: ``cross_corr = (E[t2 z1^T] + E[t1 z2^T]) / 2``)."""
    with no_autocast(f.device):
        f, t = f.detach().float(), t.detach().float()
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

    def observe(self, f: Tensor, t: Tensor) -> None:
        self.f_stats.update(batch_corr(f))

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
    C = E[t f^T], t the target each input was compared with; every ``freq`` steps W_p is solved
    from them by ``solve`` (:data:`PLUGIN_SOLVES`; the paper's sym(C) (F + ridge tr(F)/d I)^{-1})."""

    def __init__(self, cfg: PluginPredictorConfig, dim: int) -> None:
        super().__init__(dim, cfg.rho, cfg.freq)
        self.c_stats = CorrelationEMA(dim, cfg.rho)
        self.ridge = cfg.ridge
        self.solve = PLUGIN_SOLVES[cfg.solve]

    def observe(self, f: Tensor, t: Tensor) -> None:
        super().observe(f, t)
        self.c_stats.update(batch_cross_corr(f, t))

    def target_weight(self) -> Tensor:
        return self.solve(self.f_stats.value, self.c_stats.value, self.ridge)


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
