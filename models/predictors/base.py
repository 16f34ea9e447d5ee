"""What every predictor is: the hooks the training loop calls, the registration that makes a predictor
a record of :data:`PREDICTORS`, and the pieces the closed-form predictors share (EMA statistics of
the projections, a Linear(d, d) overwritten every ``freq`` steps).

A predictor is ONE class: a :class:`Predictor` subclass whose ``Config`` attribute is its frozen
config dataclass (a :class:`~ablate.config.trial.PredictorConfig` whose ``name`` default is the
predictor's name). :func:`register_predictor` checks that shape and registers it; ``predictor.name``
then picks it, and exactly its ``Config`` keys are accepted under ``predictor.``. Built-ins and
plugins register the same way (docs/plugins.md).
"""

from __future__ import annotations

import dataclasses
import typing

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ablate.config.registry import PREDICTORS, Registry
from ablate.config.trial import PredictorConfig
from ablate.errors import UserError
from ablate.models.spectra import no_autocast

__all__ = ["PREDICTORS", "Predictor", "PredictorConfig", "register_predictor"]


class Predictor(nn.Module):
    """Base class: the hooks the training loop calls, in this order per step (reference code
    ``byol_trainer.py``, paper Sec. 2 and Sec. 5)::

      forward(z) -> p;  observe(f, t) (detached);  optimizer step;
      after_optimizer_step(step) (1-based count of optimizer steps);  then the EMA update of the target.

    Defaults do nothing. A subclass is built as ``cls(cfg, dim)``: its ``Config`` instance and d."""

    Config: typing.ClassVar[type[PredictorConfig]]
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


def register_predictor(cls: type[Predictor]) -> type[Predictor]:
    """Register a predictor class (a decorator): a :class:`Predictor` subclass whose ``Config`` is a
    frozen dataclass subclassing :class:`PredictorConfig` with a string ``name`` default. Anything
    else is a one-line :class:`UserError` naming what is wrong."""
    what = getattr(cls, "__qualname__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, Predictor)):
        raise UserError(f"register_predictor: {what} is not a subclass of ablate.models.predictors.Predictor")
    config = cls.__dict__.get("Config")
    if not (isinstance(config, type) and issubclass(config, PredictorConfig) and dataclasses.is_dataclass(config)):
        raise UserError(
            f"register_predictor: {what}.Config must be a dataclass subclassing ablate.config.trial.PredictorConfig "
            "(its name default is the predictor's name)"
        )
    if not config.__dataclass_params__.frozen:
        raise UserError(f"register_predictor: {what}.Config must be frozen: @dataclass(frozen=True)")
    name = config.__dataclass_fields__["name"].default
    if not isinstance(name, str):
        raise UserError(f"register_predictor: {what}.Config.name needs a string default: the predictor's name")
    return PREDICTORS.register(name, cls)


def build_predictor(cfg: PredictorConfig, dim: int, registry: Registry[type[Predictor]] = PREDICTORS) -> Predictor:
    """The predictor ``cfg.name`` names, acting on d = ``dim`` projections."""
    return registry[cfg.name](cfg, dim)


# ------------------------------------------------------------------- statistics of the projections
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


def global_mean(m: Tensor) -> Tensor:
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
        return global_mean(f.T @ f / f.shape[0])


def batch_cross_corr(f: Tensor, t: Tensor) -> Tensor:
    """E[t f^T] pairing each predictor input f with the target it was compared with -> (d, d), rows
    indexed by t (symmetric loss, reference code: ``cross_corr = (E[t2 z1^T] + E[t1 z2^T]) / 2``)."""
    with no_autocast(f.device):
        f, t = f.detach().float(), t.detach().float()
        return global_mean(t.T @ f / f.shape[0])


class PluggedLinearPredictor(Predictor):
    """A bias-free Linear(d, d) whose weight is overwritten by :meth:`target_weight` (computed from
    EMA statistics of the projections) every ``freq`` optimizer steps: on the 1-based steps
    1, 1 + freq, 1 + 2 freq, ... (the reference code's ``niter % freq == 0`` on its 0-based
    counter, so the first step already plugs in), after the optimizer step and before the target's
    EMA update. The predictor's optimizer keeps stepping, so SGD moves W_p between plug-ins
    (``freq`` > 1), as in the reference code. F_hat (``corr``) is the EMA of E[f f^T] over both
    views' online projections f (detached, not centred, fp32; first step = batch value)."""

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
