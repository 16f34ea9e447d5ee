"""What a ``linear_dynamics`` row records about the state (W, W_p, W_a) at time t.

Notation of the paper (Sec. 3-4): F = W X W^T = U diag(s) U^T (descending s_j); p_j = u_j^T W_p u_j
is the predictor's eigenvalue on F's mode j once the two are aligned; the balance of Theorem 1 is
B = W W^T - W_p^T W_p / alpha_p, which the flow keeps equal to e^{-2 eta t} B(0) whenever W_p is trained
with stop-gradient, for any target (EMA or SimSiam) and any X, X' (predictor linear; symmetric only
while W_p and F are aligned).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ablate.config.dynamics import DynamicsConfig


def balance(W: np.ndarray, Wp: np.ndarray, alpha_p: float) -> np.ndarray:
    """B = W W^T - W_p^T W_p / alpha_p, shape (n2, n2) (Theorem 1)."""
    return W @ W.T - (Wp.T @ Wp) / alpha_p


def _fro(a: np.ndarray) -> float:
    return float(np.linalg.norm(a))


def measure(
    cfg: DynamicsConfig, W: np.ndarray, Wp: np.ndarray, Wa: np.ndarray, B0: np.ndarray, t: float
) -> dict[str, Any]:
    """The theory metrics (the linear_dynamics kind's, :mod:`ablate.kinds.dynamics`) of one state (plain Python
    values, ready for JSON and Arrow)."""
    x, xp = cfg.x_diag(), cfg.xp_diag()
    F = (W * x) @ W.T  # (n2, n2)
    s, U = np.linalg.eigh(F)
    s, U = s[::-1], U[:, ::-1]  # descending
    V = Wp @ U  # (n2, n2) W_p u_j in column j
    p = np.einsum("ij,ij->j", U, V)  # u_j^T W_p u_j
    v_norm = np.linalg.norm(V, axis=0)
    cos = np.clip(np.divide(p, v_norm, out=np.zeros_like(p), where=v_norm > 0), -1.0, 1.0)  # rounding: |cos| <= 1

    comm = _fro(F @ Wp - Wp @ F)
    denom = _fro(F) * _fro(Wp)
    decay = math.exp(-2.0 * cfg.eta * t)
    WWt, WptWp = W @ W.T, Wp.T @ Wp
    b_num = _fro(WWt - WptWp / cfg.alpha_p - decay * B0)
    b_den = _fro(WWt) + _fro(WptWp) / cfg.alpha_p + decay * _fro(B0)
    w_norm = _fro(W)
    m = W * (x + xp)
    loss = (
        0.5 * float(np.sum((Wp @ m) * (Wp @ W)))
        - float(np.sum((Wp @ (W * x)) * Wa))
        + 0.5 * float(np.sum((Wa * (x + xp)) * Wa))
    )
    f_max = float(s[0])
    commutator = comm / denom if denom > 0 else None
    residual = b_num / b_den if b_den > 0 else 0.0
    return {
        "t": float(t),
        "loss": loss,
        "w_norm": w_norm,
        "wp_norm": _fro(Wp),
        "wa_norm": _fro(Wa),
        "tau_eff": float(np.sum(Wa * W)) / w_norm**2 if w_norm > 0 else None,
        "f_max": f_max,
        "f_eigs": s.tolist(),
        "wp_eigs": p.tolist(),
        "s_modes": np.diag(F).tolist(),
        "p_modes": np.diag(Wp).tolist(),
        "commutator": commutator,
        "commutator_abs": comm,
        "commutator_log10": _log10(commutator),
        "eig_align": float(cos.mean()),
        "parabola_gap": _parabola_gap(cfg, s, p, F, Wp),
        "balance_residual": residual,
        "balance_log10": _log10(residual),
        "k_min": _k_min(cfg, F, Wp, float(xp[0])),
        "n_alive": int(np.sum(s > cfg.collapse_tol)),
        "collapsed": f_max < cfg.collapse_tol,
    }


def _parabola_gap(cfg: DynamicsConfig, s: np.ndarray, p: np.ndarray, F: np.ndarray, Wp: np.ndarray) -> float:
    """max_j |s_j - p_j^2 / alpha_p|: on the fixed data-basis modes for init: modes (exact even when two
    modes share an eigenvalue), else on F's eigenvectors (meaningful once W_p is aligned with F)."""
    if cfg.init == "modes":
        s, p = np.diag(F), np.diag(Wp)
    return float(np.max(np.abs(s - p**2 / cfg.alpha_p)))


def _log10(v: float | None) -> float | None:
    return None if v is None else math.log10(max(v, 1e-300))


def _k_min(cfg: DynamicsConfig, F: np.ndarray, Wp: np.ndarray, sigma2: float) -> float | None:
    """min eig of Theorem 3's K, where the theorem's setting holds; else None."""
    if not (cfg.isotropic() and cfg.target == "simsiam" and cfg.predictor in ("linear", "symmetric")):
        return None
    S = 0.5 * (Wp + Wp.T)
    K = (1 + sigma2) * (0.5 * cfg.alpha_p * F + S @ S - cfg.tau / (1 + sigma2) * S) + 1.5 * cfg.eta * np.eye(len(F))
    return float(np.linalg.eigvalsh(0.5 * (K + K.T))[0])
