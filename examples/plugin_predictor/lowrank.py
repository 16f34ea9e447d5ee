"""A plugin predictor for ablate: W_p of rank r, p = U V^T z (d x r factors), trained by SGD like the
linear W_p of the paper's Table 2. Named in sweep.yaml's ``plugins:``; docs/plugins.md says how it plugs in."""

from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor, nn

from ablate.config.tree import doc
from ablate.models.predictors import Predictor, PredictorConfig, register_predictor


@dataclass(frozen=True)
class LowRankConfig(PredictorConfig):
    name: Literal["lowrank"] = "lowrank"
    rank: int = field(default=8, metadata=doc("rank r of W_p = U V^T (at most the projection dimension d)", min=1))


@register_predictor
class LowRankPredictor(Predictor):
    """p = U (V^T z): the linear predictor restricted to rank r."""

    Config = LowRankConfig

    def __init__(self, cfg: LowRankConfig, dim: int) -> None:
        super().__init__(dim)
        rank = min(cfg.rank, dim)
        self.v, self.u = nn.Linear(dim, rank, bias=False), nn.Linear(rank, dim, bias=False)

    def forward(self, z: Tensor) -> Tensor:  # (B, d) -> (B, d)
        return self.u(self.v(z))

    def linear_weight(self) -> Tensor:  # W_p = U V^T (d, d): ablate records its spectra against F
        return self.u.weight @ self.v.weight
