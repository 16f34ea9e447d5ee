"""The projector MLP g: trunk feature y (B, D) -> projection z (B, d) (paper Sec. 3 recipe)."""

from __future__ import annotations

from torch import Tensor, nn

from ablate.config.trial import ProjectorConfig


class Projector(nn.Module):
    """Linear(D, hidden) -> BatchNorm1d(hidden, affine=cfg.bn_affine) -> ReLU -> Linear(hidden, d).

    The paper (and the reference code's MLPHead) uses 512 -> 512 -> 128 with a non-affine BN and
    biases in both linear layers."""

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
        return self.layers(y)  # (B, D) -> (B, d)
