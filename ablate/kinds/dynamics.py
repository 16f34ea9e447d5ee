"""The ``linear_dynamics`` kind: the paper's linear-network learning dynamics (Sec. 3-4, Lemma 1,
Theorems 1-3) integrated numerically in float64 (:mod:`ablate.theory`)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ablate.config.dynamics import DynamicsConfig
from ablate.kinds.record import TrialKind, register_kind
from ablate.results.schema import Column

# Metrics of the linear-network trial (ablate.theory.dynamics), in the paper's notation (Sec. 3-4).
METRICS: list[Column] = [
    ("t", pa.float64(), "time of the flow, step * dt"),
    ("loss", pa.float64(), "1/2 E||W_p W x1 - W_a x2||^2 at t (the linear model's BYOL loss)"),
    ("w_norm", pa.float64(), "||W||_F"),
    ("wp_norm", pa.float64(), "||W_p||_F"),
    ("wa_norm", pa.float64(), "||W_a||_F"),
    (
        "tau_eff",
        pa.float64(),
        "<W_a, W> / ||W||_F^2: the target's ratio tau in W_a ~ tau W (Sec. 4; < 1 while an EMA target lags)",
    ),
    ("f_max", pa.float64(), "largest eigenvalue of F = W X W^T"),
    ("f_eigs", pa.list_(pa.float64()), "eigenvalues s_j of F = W X W^T (descending)"),
    (
        "wp_eigs",
        pa.list_(pa.float64()),
        "p_j = u_j^T W_p u_j on F's eigenvectors, in f_eigs' order (W_p's eigenvalues once aligned)",
    ),
    (
        "s_modes",
        pa.list_(pa.float64()),
        "diagonal of F in the data basis: s_j of the fixed mode j (init: modes keeps W, W_p diagonal)",
    ),
    ("p_modes", pa.list_(pa.float64()), "diagonal of W_p in the data basis: p_j of the fixed mode j"),
    ("commutator", pa.float64(), "||F W_p - W_p F||_F / (||F||_F ||W_p||_F) (Theorem 3); null when F or W_p is 0"),
    ("commutator_abs", pa.float64(), "||F W_p - W_p F||_F (Theorem 3)"),
    (
        "commutator_log10",
        pa.float64(),
        "log10 of commutator (floored at 1e-300): readable in tables; about -16 is float64's floor",
    ),
    ("eig_align", pa.float64(), "mean over F's eigenvectors u_j of cos(W_p u_j, u_j) (Fig. 2)"),
    (
        "balance_residual",
        pa.float64(),
        "||B(t) - e^{-2 eta t} B(0)||_F / (||W W^T||_F + ||W_p^T W_p||_F / alpha_p + e^{-2 eta t} ||B(0)||_F), "
        "B = W W^T - W_p^T W_p / alpha_p (Theorem 1: 0 for a trained W_p with stop-gradient)",
    ),
    ("balance_log10", pa.float64(), "log10 of balance_residual (floored at 1e-300): readable in tables"),
    (
        "parabola_gap",
        pa.float64(),
        "max_j |s_j - p_j^2 / alpha_p| over the modes (data basis for init: modes, else F's eigenvectors) "
        "(Sec. 4: shrinks as e^{-2 eta t}, so modes approach the parabola s = p^2 / alpha_p)",
    ),
    (
        "k_min",
        pa.float64(),
        "smallest eigenvalue of K = (1+sigma^2)[(alpha_p/2) F + W_p^2 - tau/(1+sigma^2) W_p] + 1.5 eta I "
        "(Theorem 3: alignment when > 0); null outside X = I, X' = sigma^2 I, target simsiam, trained W_p",
    ),
    ("n_alive", pa.int64(), "number of eigenvalues of F above collapse_tol"),
    ("collapsed", pa.bool_(), "every eigenvalue of F is below collapse_tol"),
]


def run(config: DynamicsConfig, report, checkpointer=None, artifacts=None, progress=None) -> None:
    """Integrate the flow: seconds on the CPU, so nothing to checkpoint, no weights, no epochs to show."""
    from ablate.theory.dynamics import run_linear_dynamics

    run_linear_dynamics(config, report)


def estimate(sweep: Any) -> list[str]:
    n = max(max(t.config.n1, t.config.n2) for t in sweep.trials) if sweep.trials else 0
    size = f"matrices of side {n} at most" if n else "small matrices"
    return [f"memory and compute: not estimated; each trial integrates {size} in float64 on the CPU (no GPU, no data)"]


def plot(df: Any, spec: Any, out: Any, formats: Any) -> list:
    from ablate.theory.plots import plot_theory

    return plot_theory(df, out, metric=spec.metric, x=(spec.cols or (None,))[-1], formats=formats)


DYNAMICS = register_kind(
    TrialKind(
        name="linear_dynamics",
        doc="the paper's linear-network learning dynamics (Eq. 4-6), integrated numerically",
        Config=DynamicsConfig,
        run=run,
        metrics=METRICS,
        default_metric=("f_max", "max"),  # largest eigenvalue of F: 0 once every mode collapsed
        batch_rows_s=1.0,
        estimate=estimate,
        plot=plot,
    )
)
