"""Predictors W_p: projection z (B, d) -> prediction p (B, d), one registered class per predictor.

Built in: ``none`` (identity: the no-predictor ablation), ``linear`` (W_p, optionally symmetrised,
Tables 2-3), ``mlp`` (two layers with BN, optionally symmetric, Tables 3 and 9), ``directpred``
(W_p set from the eigen-decomposition of F_hat, Eq. 18-19, Tables 6-8) and ``plugin`` (the optimal
linear predictor solved from EMA statistics, Table 1). Importing this package registers them in
:data:`PREDICTORS`; a plugin registers its own with :func:`register_predictor` (docs/plugins.md).
"""

from ablate.models.predictors.base import (
    PREDICTORS,
    Predictor,
    PredictorConfig,
    build_predictor,
    register_predictor,
)

# isort: split
# registered in this order, the order messages and the docs list them in
from ablate.models.predictors.linear import LinearPredictorConfig, MLPPredictorConfig, NoPredictorConfig

# isort: split
from ablate.models.predictors.directpred import DirectPredConfig, directcopy_weight, directpred_weight

# isort: split
from ablate.models.predictors.plugin import (
    PLUGIN_SOLVES,
    PluginPredictorConfig,
    plugin_weight,
    plugin_weight_lstsq,
    plugin_weight_lyapunov,
)
from ablate.models.spectra import spectra

__all__ = [
    "PLUGIN_SOLVES",
    "PREDICTORS",
    "DirectPredConfig",
    "LinearPredictorConfig",
    "MLPPredictorConfig",
    "NoPredictorConfig",
    "PluginPredictorConfig",
    "Predictor",
    "PredictorConfig",
    "build_predictor",
    "directcopy_weight",
    "directpred_weight",
    "plugin_weight",
    "plugin_weight_lstsq",
    "plugin_weight_lyapunov",
    "register_predictor",
    "spectra",
]
