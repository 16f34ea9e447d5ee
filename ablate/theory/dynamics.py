"""The ``linear_dynamics`` trial: integrate the gradient flow of Lemma 1 in float64.

Lemma 1 (reference doc, section 5), with M = X + X' and the residual G = -W_p W M + W_a X:
  dW_p/dt = alpha_p G W^T - eta W_p
  dW/dt   = W_p^T G - eta W
  dW_a/dt = beta (W - W_a)                        (target: ema; target: simsiam has W_a = tau W)
Variants, each a change of the vector field and nothing else:
  predictor none        W_p = I, not trained (Theorem 2: dW/dt = -W (X' + eta I) -> 0);
  predictor symmetric   dW_p/dt is symmetrised (the gradient of a symmetric parameter);
  predictor directpred  W_p = U diag(p) U^T from F = W X W^T = U diag(s) U^T at every evaluation of the
                        field (the continuous-time limit of setting it every step, freq = 1; F is the
                        exact expectation, so there is no rho-EMA), p_j = sqrt(s_j) + eps s_max (Eq. 18 as
                        printed) or sqrt(s_j / s_max) + eps (the reference code, ``directpred_norm: max``);
  stop_gradient false   the loss 1/2 E||W_p W x1 - tau W x2||^2 is also differentiated through the
                        target, adding tau (W_p W X - tau W M) to dW/dt (Theorem 2).
X and X' are diagonal in the data basis, so products with them are column scalings, O(n^2).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ablate.config.dynamics import DynamicsConfig
from ablate.results.schema import Report
from ablate.theory.metrics import balance, measure

BLOW_UP = 1e100  # a weight this large has diverged (and F = W X W^T would overflow float64)


def directpred_wp(W: np.ndarray, x: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """DirectPred's predictor from F = W X W^T (Eq. 18): W_p = U diag(p) U^T, shape (n2, n2)."""
    F = (W * x) @ W.T  # (n2, n2)
    if not np.isfinite(F).all():  # blown up inside a step: NaN makes the run end as 'diverged', not crash
        return np.full_like(F, np.nan)
    s, U = np.linalg.eigh(F)
    s = np.clip(s, 0.0, None)  # F is PSD; eigh may return -1e-17
    s_max = float(s.max(initial=0.0))
    if norm == "max":
        p = (np.sqrt(s / s_max) if s_max > 0 else np.zeros_like(s)) + eps
    else:
        p = np.sqrt(s) + eps * s_max
    return (U * p) @ U.T


class Flow:
    """Lemma 1's vector field on a flat float64 state y = [W, W_p (if trained), W_a (if ema)]."""

    def __init__(self, cfg: DynamicsConfig) -> None:
        self.cfg = cfg
        self.x = cfg.x_diag()  # (n1,) diagonal of X
        self.m = self.x + cfg.xp_diag()  # (n1,) diagonal of M = X + X'
        self.n1, self.n2 = cfg.n1, cfg.n2
        self.trains_wp = cfg.predictor in ("linear", "symmetric")
        self.has_wa = cfg.target == "ema"
        nw, nwp = self.n2 * self.n1, self.n2 * self.n2
        self._slices = (
            slice(0, nw),
            slice(nw, nw + nwp * self.trains_wp),
            slice(nw + nwp * self.trains_wp, nw + nwp * self.trains_wp + nw * self.has_wa),
        )
        self.size = self._slices[2].stop
        self._eye = np.eye(self.n2)

    # ---- state <-> matrices
    def pack(self, W: np.ndarray, Wp: np.ndarray, Wa: np.ndarray) -> np.ndarray:
        parts = [W.ravel()]
        if self.trains_wp:
            parts.append(Wp.ravel())
        if self.has_wa:
            parts.append(Wa.ravel())
        return np.concatenate(parts)

    def unpack(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(W, W_p, W_a) of a state, with the untrained ones derived from W (views, no copies)."""
        cfg = self.cfg
        W = y[self._slices[0]].reshape(self.n2, self.n1)
        if self.trains_wp:
            Wp = y[self._slices[1]].reshape(self.n2, self.n2)
        elif cfg.predictor == "directpred":
            Wp = directpred_wp(W, self.x, cfg.eps, cfg.directpred_norm)
        else:
            Wp = self._eye
        Wa = y[self._slices[2]].reshape(self.n2, self.n1) if self.has_wa else cfg.tau * W
        return W, Wp, Wa

    def initial(self) -> np.ndarray:
        """The initial state: Gaussian (init: random) or aligned diagonal modes (init: modes)."""
        cfg, n1, n2 = self.cfg, self.n1, self.n2
        if cfg.init == "random":
            rng = np.random.default_rng(cfg.seed)
            W = cfg.init_scale * rng.standard_normal((n2, n1)) / math.sqrt(n1)
            Wp = cfg.wp_init_scale * rng.standard_normal((n2, n2)) / math.sqrt(n2)
        else:
            k = len(cfg.s0)
            W = np.zeros((n2, n1))
            idx = np.arange(k)
            # F = W X W^T = diag(s0): W_jj = sqrt(s_j / X_jj); check() guarantees X_jj > 0 where s_j > 0
            W[idx, idx] = np.sqrt(np.divide(cfg.s0, self.x[:k], out=np.zeros(k), where=self.x[:k] > 0))
            Wp = np.zeros((n2, n2))
            Wp[idx[: len(cfg.p0)], idx[: len(cfg.p0)]] = cfg.p0
        if cfg.predictor == "symmetric":
            Wp = 0.5 * (Wp + Wp.T)
        return self.pack(W, Wp, W.copy())  # W_a(0) = W(0)

    # ---- the vector field
    def __call__(self, y: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        W, Wp, Wa = self.unpack(y)
        WM = W * self.m  # (n2, n1) W (X + X')
        G = Wa * self.x - Wp @ WM  # (n2, n1) residual W_a X - W_p W (X + X')
        dW = Wp.T @ G - cfg.eta * W
        if not cfg.stop_gradient:  # gradient through the target W_a = tau W as well
            dW += cfg.tau * (Wp @ (W * self.x) - cfg.tau * WM)
        parts = [dW.ravel()]
        if self.trains_wp:
            dWp = cfg.alpha_p * (G @ W.T) - cfg.eta * Wp
            if cfg.predictor == "symmetric":
                dWp = 0.5 * (dWp + dWp.T)
            parts.append(dWp.ravel())
        if self.has_wa:
            parts.append((cfg.beta * (W - Wa)).ravel())
        return np.concatenate(parts)

    def step(self, y: np.ndarray, dt: float) -> np.ndarray:
        """One step of the configured integrator."""
        if self.cfg.method == "euler":
            return y + dt * self(y)
        k1 = self(y)
        k2 = self(y + 0.5 * dt * k1)
        k3 = self(y + 0.5 * dt * k2)
        k4 = self(y + dt * k3)
        return y + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def run_linear_dynamics(cfg: DynamicsConfig, report: Report) -> None:
    """Integrate the flow for ``cfg.steps`` steps of ``cfg.dt``; report a row at step 0, every
    ``report_every`` steps (or log-spaced, ``report_spacing: log``) and at the last step (``is_final``). A state
    that blows up (non-finite or an entry above ``BLOW_UP``) ends the trial with
    one ``diverged`` row. Rows hold epoch (report index), step, is_final, status, error, wall_s and the
    metric columns (:mod:`ablate.kinds.dynamics`); the runner adds the identity, config and
    provenance columns.
    """
    t0 = time.perf_counter()
    flow = Flow(cfg)
    y = flow.initial()
    B0 = balance(*flow.unpack(y)[:2], cfg.alpha_p)
    index = 0

    def emit(step: int, state: np.ndarray, final: bool) -> None:
        nonlocal index
        W, Wp, Wa = flow.unpack(state)
        report(
            {
                "epoch": index,
                "step": step,
                "is_final": final,
                "status": "ok",
                "error": None,
                "wall_s": time.perf_counter() - t0,
                **measure(cfg, W, Wp, Wa, B0, step * cfg.dt),
            }
        )
        index += 1

    when = cfg.report_steps()
    emit(0, y, False)
    with np.errstate(all="ignore"):  # overflow is detected below and reported as 'diverged'
        for k in range(1, cfg.steps + 1):
            y = flow.step(y, cfg.dt)
            if not np.abs(y).max() < BLOW_UP:  # also catches NaN and inf
                report(
                    {
                        "epoch": index,
                        "step": k,
                        "is_final": True,
                        "status": "diverged",
                        "error": f"state blew up at step {k} (t = {k * cfg.dt:g}; |entry| > {BLOW_UP:g} "
                        "or not finite); lower dt",
                        "wall_s": time.perf_counter() - t0,
                        "t": k * cfg.dt,
                    }
                )
                return
            if k in when:
                emit(k, y, k == cfg.steps)


def collapse_bound(tau: float, sigma2: float) -> float:
    """Weight decay above which every mode collapses: eta > tau^2 / (4 (1 + sigma^2)) (Sec. 4)."""
    return tau**2 / (4.0 * (1.0 + sigma2))


def basin_boundary(tau: float, sigma2: float, eta: float) -> tuple[float, float] | None:
    """Fixed points (p*_-, p*_+) of a mode on the parabola, p (tau - (1 + sigma^2) p) = eta.

    Modes with p below p*_- collapse, above it they go to p*_+. ``None`` above the collapse bound.
    """
    disc = tau**2 - 4.0 * eta * (1.0 + sigma2)
    if disc < 0:
        return None
    root = disc**0.5
    return (tau - root) / (2.0 * (1.0 + sigma2)), (tau + root) / (2.0 * (1.0 + sigma2))
