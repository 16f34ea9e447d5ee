"""Configuration of the ``linear_dynamics`` trial kind: the paper's linear-network model (Sec. 3-4).

The model (reference doc, section 5): online weights W (n2 x n1), target W_a (n2 x n1), predictor
W_p (n2 x n2); input correlation X = E[xbar xbar^T] and augmentation covariance X', both diagonal in
one shared basis (the "data basis"). The config is flat on purpose: every knob is a top-level key,
so sweep grids and result columns read ``eta``, ``alpha_p``, ``predictor``, ``tau``.

Built strictly with :func:`ablate.config.tree.build` (unknown keys, types, ranges, cross-field rules),
exactly like the pretraining trial's config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ablate.config.tree import Source, build, doc

MAX_ROWS = 1_000_000  # rows one trial reports (a figure shows a few hundred)


@dataclass(frozen=True)
class DynamicsConfig:
    """One integration of Lemma 1's gradient flow (a ``kind: linear_dynamics`` trial)."""

    kind: Literal["linear_dynamics"] = field(
        default="linear_dynamics",
        metadata=doc("trial kind: linear_dynamics (the paper's linear-network gradient flow, Lemma 1)"),
    )
    seed: int = field(default=0, metadata=doc("random seed of the random init (a sweep's seeds axis sets it)", min=0))
    # ---- dimensions and data
    n1: int = field(default=10, metadata=doc("input dimension n1 (columns of W)", min=1, max=4096))
    n2: int = field(default=10, metadata=doc("output dimension n2 (rows of W; W_p is n2 x n2)", min=1, max=4096))
    x_scale: float = field(default=1.0, metadata=doc("data correlation X = x_scale * I (Sec. 4 uses X = I)", gt=0))
    x_eigs: tuple[float, ...] = field(
        default=(), metadata=doc("eigenvalues of X (length n1, >= 0) in the data basis; overrides x_scale when given")
    )
    sigma2: float = field(
        default=0.0, metadata=doc("augmentation covariance X' = sigma2 * I (sigma^2 of Sec. 4)", min=0)
    )
    xp_eigs: tuple[float, ...] = field(
        default=(), metadata=doc("eigenvalues of X' (length n1, >= 0) in the data basis; overrides sigma2 when given")
    )
    # ---- architecture
    predictor: Literal["none", "linear", "symmetric", "directpred"] = field(
        default="linear",
        metadata=doc(
            "none (W_p = I), linear (W_p trained), symmetric (W_p trained with the symmetrised gradient), "
            "directpred (W_p = U diag(p) U^T set from F = W X W^T, never trained)"
        ),
    )
    eps: float = field(
        default=0.0,
        metadata=doc(
            "directpred: eps of p_j (norm none: p_j = sqrt(s_j) + eps * s_max; norm max: p_j = sqrt(s_j/s_max) + eps)",
            min=0,
        ),
    )
    directpred_norm: Literal["none", "max"] = field(
        default="none",
        metadata=doc(
            "directpred: none = Eq. 18 as printed (p_j = sqrt(s_j) + eps s_max, the parabola s = p^2 with "
            "alpha_p = 1); max = the reference code's scale-free p_j = sqrt(s_j/s_max) + eps (collapses in this "
            "model: its loss is not scale-invariant)"
        ),
    )
    stop_gradient: bool = field(
        default=True,
        metadata=doc(
            "stop-gradient on the target; false lets the gradient flow through W_a = tau W "
            "(needs target: simsiam; Theorem 2)"
        ),
    )
    target: Literal["ema", "simsiam"] = field(
        default="simsiam",
        metadata=doc("ema: dW_a/dt = beta (W - W_a) with W_a(0) = W(0); simsiam: W_a = tau W at all times"),
    )
    beta: float = field(default=1.0, metadata=doc("ema: EMA rate beta (discrete: 1 - m = lr * beta)", min=0))
    tau: float = field(
        default=1.0,
        metadata=doc("simsiam: W_a = tau W (1 = SimSiam; < 1 is Sec. 4's stand-in for a lagging EMA target)", min=0),
    )
    eta: float = field(default=0.0, metadata=doc("weight decay eta of W and W_p (discrete: wd = lr * eta)", min=0))
    alpha_p: float = field(
        default=1.0, metadata=doc("relative predictor learning rate alpha_p (predictor lr = alpha_p lr)", gt=0)
    )
    # ---- initial state
    init: Literal["random", "modes"] = field(
        default="random",
        metadata=doc(
            "random: Gaussian W and W_p; modes: aligned diagonal start with F = diag(s0), W_p = diag(p0) "
            "(Sec. 4 per-mode)"
        ),
    )
    init_scale: float = field(default=0.5, metadata=doc("random: W_ij ~ N(0, init_scale^2 / n1)", min=0))
    wp_init_scale: float = field(
        default=0.5,
        metadata=doc("random: (W_p)_ij ~ N(0, wp_init_scale^2 / n2), symmetrised for predictor symmetric", min=0),
    )
    s0: tuple[float, ...] = field(
        default=(),
        metadata=doc("modes: initial eigenvalues s_j of F (one per mode, at most min(n1, n2); other modes start at 0)"),
    )
    p0: tuple[float, ...] = field(
        default=(),
        metadata=doc("modes: initial eigenvalues p_j of W_p (same length as s0; ignored by predictor none/directpred)"),
    )
    # ---- integration and reporting
    method: Literal["rk4", "euler"] = field(
        default="rk4",
        metadata=doc("integrator of the flow: rk4 (classic Runge-Kutta, error O(dt^4)) or euler (explicit, O(dt))"),
    )
    dt: float = field(default=0.05, metadata=doc("integration step size (time units of the flow)", gt=0))
    steps: int = field(default=2000, metadata=doc("number of steps; the horizon is T = steps * dt", min=1))
    report_every: int = field(
        default=100, metadata=doc("report a row every N steps (plus step 0 and the last step)", min=1)
    )
    report_spacing: Literal["linear", "log"] = field(
        default="linear",
        metadata=doc(
            "linear: every report_every steps; log: as many rows, log-spaced in steps "
            "(dense early, for fast transients)"
        ),
    )
    collapse_tol: float = field(
        default=1e-6,
        metadata=doc("a mode of F is collapsed when its eigenvalue is below this; the trial when all are", gt=0),
    )

    def check(self) -> tuple[str, str] | None:
        rows = self.steps // self.report_every + 1
        if rows > MAX_ROWS:  # the steps that report are listed up front (report_steps)
            return "report_every", (
                f"{self.steps} steps / {self.report_every} make {rows:,} rows, more than {MAX_ROWS:,} a trial may "
                f"report; raise report_every to at least {-(-self.steps // (MAX_ROWS - 1))}"
            )
        for key in ("x_eigs", "xp_eigs"):
            eigs = getattr(self, key)
            if eigs and len(eigs) != self.n1:
                return key, f"needs n1 = {self.n1} values (one per input dimension), got {len(eigs)}"
            if any(v < 0 for v in eigs):
                return key, f"must be >= 0 (a covariance spectrum), got {list(eigs)}"
        if self.x_eigs and max(self.x_eigs) == 0:
            return "x_eigs", "needs at least one positive value (X = 0 has nothing to learn)"
        if not self.stop_gradient and self.target != "simsiam":
            return "stop_gradient", (
                "false needs target: simsiam (the gradient flows through W_a = tau W); "
                "an EMA target is not a function of W"
            )
        if self.init == "random":
            if self.s0 or self.p0:
                return "s0" if self.s0 else "p0", "is used only with init: modes; remove it or set init: modes"
            return None
        n_modes = min(self.n1, self.n2)
        if not self.s0:
            return "s0", "init: modes needs s0, the initial eigenvalues of F (one per mode)"
        if len(self.s0) > n_modes:
            return "s0", f"has {len(self.s0)} modes but min(n1, n2) = {n_modes}"
        if any(v < 0 for v in self.s0):
            return "s0", f"must be >= 0 (eigenvalues of F = W X W^T), got {list(self.s0)}"
        if self.predictor in ("linear", "symmetric") and len(self.p0) != len(self.s0):
            return "p0", f"needs one value per mode of s0 ({len(self.s0)}), got {len(self.p0)}"
        if any(self.x_diag()[j] == 0 and s > 0 for j, s in enumerate(self.s0)):
            return "s0", "a mode with s0 > 0 needs a positive eigenvalue of X in that data direction"
        return None

    # ---- derived quantities (never written back into the config)
    def report_steps(self) -> set[int]:
        """The steps that get a row (always 0 and the last)."""
        if self.report_spacing == "log":
            n = self.steps // self.report_every + 1
            steps = np.unique(np.round(np.geomspace(1, self.steps, n)).astype(int))
            return {0, self.steps, *map(int, steps)}
        return {0, self.steps, *range(self.report_every, self.steps + 1, self.report_every)}

    def x_diag(self) -> np.ndarray:
        """Diagonal of X in the data basis, shape (n1,)."""
        return np.asarray(self.x_eigs, float) if self.x_eigs else np.full(self.n1, self.x_scale)

    def xp_diag(self) -> np.ndarray:
        """Diagonal of X' in the data basis, shape (n1,)."""
        return np.asarray(self.xp_eigs, float) if self.xp_eigs else np.full(self.n1, self.sigma2)

    def isotropic(self) -> bool:
        """X = I and X' = sigma^2 I: the setting of Sec. 4 (Theorem 3, per-mode dynamics, threshold)."""
        x, xp = self.x_diag(), self.xp_diag()
        return bool(np.all(x == 1.0) and np.all(xp == xp[0]))


def load_dynamics_config(data: Mapping[str, Any] | None = None, src: Source | None = None) -> DynamicsConfig:
    """Strictly build a :class:`DynamicsConfig` from a sparse mapping."""
    return build(DynamicsConfig, data or {}, src)
