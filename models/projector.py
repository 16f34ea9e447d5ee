"""The projector MLP g: trunk feature y (B, D) -> projection z (B, d) (paper Sec. 3 recipe)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ablate.config.trial import ProjectorConfig
from ablate.models.spectra import no_autocast


class Projector(nn.Module):
    """Linear(D, hidden) -> BatchNorm1d(hidden, affine=cfg.bn_affine) -> ReLU -> Linear(hidden, d).

    The paper (and the reference code's MLPHead) uses 512 -> 512 -> 128 with a non-affine BN and
    biases in both linear layers. The last layer runs in fp32 even under bf16 autocast: z feeds
    DirectPred's F_hat and the loss, and the fp32 reference never rounds it to bf16's 8 bits (a
    512 x 128 matmul: a negligible share of the step)."""

    def __init__(self, in_dim: int, cfg: ProjectorConfig) -> None:
        super().__init__()
        self.out_dim = cfg.out_dim
        self.layers = nn.Sequential(
            nn.Linear(in_dim, cfg.hidden_dim),
            nn.BatchNorm1d(cfg.hidden_dim, affine=cfg.bn_affine),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden_dim, cfg.out_dim),
        )

    def forward(self, y: Tensor) -> Tensor:
        h = self.layers[:-1](y)  # (B, hidden)
        if h.device.type == "meta" or not torch.is_autocast_enabled(h.device.type):  # meta: the memory estimate
            return self.layers[-1](h)
        with no_autocast(h.device):
            return self.layers[-1](h.float())  # (B, d), fp32
