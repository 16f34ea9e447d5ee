"""The trained predictors: none (identity), linear W_p and the two-layer MLP (Tables 2, 3 and 9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from ablate.config.tree import doc
from ablate.config.trial import MAX_WIDTH, PredictorConfig
from ablate.models.predictors.base import Predictor, register_predictor


@dataclass(frozen=True)
class NoPredictorConfig(PredictorConfig):
    """Identity predictor: the "no predictor" ablation (collapses, Theorem 2)."""

    name: Literal["none"] = "none"


@register_predictor
class IdentityPredictor(Predictor):
    """p = z: the "no predictor" ablation (collapses, Theorem 2)."""

    Config = NoPredictorConfig
    uses_sgd = False

    def __init__(self, cfg: NoPredictorConfig, dim: int) -> None:
        super().__init__(dim)

    def forward(self, z: Tensor) -> Tensor:
        return z


@dataclass(frozen=True)
class LinearPredictorConfig(PredictorConfig):
    name: Literal["linear"] = "linear"
    bias: bool = field(default=False, metadata=doc("bias term (linear default false; mlp default true)"))
    symmetric: bool = field(
        default=False,
        metadata=doc("linear: W_p <- (W_p + W_p^T)/2 after each step; mlp: symmetric square weights (Table 3)"),
    )


@register_predictor
class LinearPredictor(Predictor):
    """p = W_p z (+ b): one Linear(d, d). ``symmetric``: W_p <- (W_p + W_p^T)/2 at init and after
    every optimizer step (Table 3; the reference code's ``predictor_reg=symmetric``)."""

    Config = LinearPredictorConfig

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


@dataclass(frozen=True)
class MLPPredictorConfig(PredictorConfig):
    name: Literal["mlp"] = "mlp"
    hidden_dim: int = field(
        default=512, metadata=doc("hidden width (paper: 512; BYOL ImageNet: 4096)", min=1, max=MAX_WIDTH)
    )
    bn_affine: bool = field(default=False, metadata=doc("affine BatchNorm in the hidden layer"))
    symmetric: bool = field(default=False, metadata=doc("symmetric variant (Table 3)"))
    bias: bool = field(default=True, metadata=doc("bias in the two linear layers"))


@register_predictor
class MLPPredictor(Predictor):
    """Linear(d, h) -> BatchNorm1d(h, affine) -> ReLU -> Linear(h, d), biases per ``cfg.bias``
    (paper: 128 -> 512 -> 128, BN affine off; BYOL ImageNet: 4096 hidden).

    ``symmetric`` (Table 3, "2-layer symmetric") follows the reference code's two-linear-layer
    branch of ``regulate_predictor``: the layers are tied, W2 = W1^T, by setting
    W = (W1 + W2^T)/2, W1 <- W, W2 <- W^T after every optimizer step (and here also at init).
    Biases and BN are left alone there, and so here."""

    Config = MLPPredictorConfig

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
