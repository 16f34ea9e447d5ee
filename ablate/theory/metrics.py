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
import pyarrow as pa

from ablate.theory.config import DynamicsConfig

THEORY_METRICS: list[tuple[str, pa.DataType, str]] = [
    ("t", pa.float64(), "time of the flow, step * dt"),
    ("loss", pa.float64(), "1/2 E||W_p W x1 - W_a x2||^2 at t (the linear model's BYOL loss)"),
    ("w_norm", pa.float64(), "||W||_F"),
    ("wp_norm", pa.float64(), "||W_p||_F"),
    ("wa_norm", pa.float64(), "||W_a||_F"),
    ("tau_eff", pa.float64(), "<W_a, W> / ||W||_F^2: the target's ratio tau in W_a ~ tau W (Sec. 4; < 1 while an EMA target lags)"),
    ("f_max", pa.float64(), "largest eigenvalue of F = W X W^T"),
    ("f_eigs", pa.list_(pa.float64()), "eigenvalues s_j of F = W X W^T (descending)"),
    ("wp_eigs", pa.list_(pa.float64()), "p_j = u_j^T W_p u_j on F's eigenvectors, in f_eigs' order (W_p's eigenvalues once aligned)"),
    ("s_modes", pa.list_(pa.float64()), "diagonal of F in the data basis: s_j of the fixed mode j (init: modes keeps W, W_p diagonal)"),
    ("p_modes", pa.list_(pa.float64()), "diagonal of W_p in the data basis: p_j of the fixed mode j"),
    ("commutator", pa.float64(), "||F W_p - W_p F||_F / (||F||_F ||W_p||_F) (Theorem 3); null when F or W_p is 0"),
    ("commutator_abs", pa.float64(), "||F W_p - W_p F||_F (Theorem 3)"),
    ("commutator_log10", pa.float64(), "log10 of commutator (floored at 1e-300): readable in tables; about -16 is float64's floor"),
    ("eig_align", pa.float64(), "mean over F's eigenvectors u_j of cos(W_p u_j, u_j) (Fig. 2)"),
    ("balance_residual", pa.float64(), "||B(t) - e^{-2 eta t} B(0)||_F / (||W W^T||_F + ||W_p^T W_p||_F / alpha_p + e^{-2 eta t} ||B(0)||_F), "
                                       "B = W W^T - W_p^T W_p / alpha_p (Theorem 1: 0 for a trained W_p with stop-gradient)"),
    ("balance_log10", pa.float64(), "log10 of balance_residual (floored at 1e-300): readable in tables"),
    ("parabola_gap", pa.float64(), "max_j |s_j - p_j^2 / alpha_p| over the modes (data basis for init: modes, else F's eigenvectors) (Sec. 4: shrinks as e^{-2 eta t}, so modes approach the parabola s = p^2 / alpha_p)"),
    ("k_min", pa.float64(), "smallest eigenvalue of K = (1+sigma^2)[(alpha_p/2) F + W_p^2 - tau/(1+sigma^2) W_p] + 1.5 eta I "
                            "(Theorem 3: alignment when > 0); null outside X = I, X' = sigma^2 I, target simsiam, trained W_p"),
    ("n_alive", pa.int64(), "number of eigenvalues of F above collapse_tol"),
    ("collapsed", pa.bool_(), "every eigenvalue of F is below collapse_tol"),
]


def balance(W: np.ndarray, Wp: np.ndarray, alpha_p: float) -> np.ndarray:
    """B = W W^T - W_p^T W_p / alpha_p, shape (n2, n2) (Theorem 1)."""
    return W @ W.T - (Wp.T @ Wp) / alpha_p


def _fro(a: np.ndarray) -> float:
    return float(np.linalg.norm(a))


def measure(cfg: DynamicsConfig, W: np.ndarray, Wp: np.ndarray, Wa: np.ndarray, B0: np.ndarray,
            t: float) -> dict[str, Any]:
    """The :data:`THEORY_METRICS` of one state (plain Python values, ready for JSON and Arrow)."""
    x, xp = cfg.x_diag(), cfg.xp_diag()
    F = (W * x) @ W.T  # (n2, n2)
    s, U = np.linalg.eigh(F)
    s, U = s[::-1], U[:, ::-1]  # descending
    V = Wp @ U  # (n2, n2) W_p u_j in column j
    p = np.einsum("ij,ij->j", U, V)  # u_j^T W_p u_j
    v_norm = np.linalg.norm(V, axis=0)
    cos = np.divide(p, v_norm, out=np.zeros_like(p), where=v_norm > 0)

    comm = _fro(F @ Wp - Wp @ F)
    denom = _fro(F) * _fro(Wp)
    decay = math.exp(-2.0 * cfg.eta * t)
    WWt, WptWp = W @ W.T, Wp.T @ Wp
    b_num = _fro(WWt - WptWp / cfg.alpha_p - decay * B0)
    b_den = _fro(WWt) + _fro(WptWp) / cfg.alpha_p + decay * _fro(B0)
    w_norm = _fro(W)
    m = W * (x + xp)
    loss = 0.5 * float(np.sum((Wp @ m) * (Wp @ W))) - float(np.sum((Wp @ (W * x)) * Wa)) \
        + 0.5 * float(np.sum((Wa * (x + xp)) * Wa))
    f_max = float(s[0])
    commutator = comm / denom if denom > 0 else None
    residual = b_num / b_den if b_den > 0 else 0.0
    return {
        "t": float(t), "loss": loss, "w_norm": w_norm, "wp_norm": _fro(Wp), "wa_norm": _fro(Wa),
        "tau_eff": float(np.sum(Wa * W)) / w_norm ** 2 if w_norm > 0 else None,
        "f_max": f_max, "f_eigs": s.tolist(), "wp_eigs": p.tolist(),
        "s_modes": np.diag(F).tolist(), "p_modes": np.diag(Wp).tolist(),
        "commutator": commutator, "commutator_abs": comm, "commutator_log10": _log10(commutator),
        "eig_align": float(cos.mean()),
        "parabola_gap": _parabola_gap(cfg, s, p, F, Wp),
        "balance_residual": residual, "balance_log10": _log10(residual),
        "k_min": _k_min(cfg, F, Wp, float(xp[0])),
        "n_alive": int(np.sum(s > cfg.collapse_tol)), "collapsed": f_max < cfg.collapse_tol,
    }


def _parabola_gap(cfg: DynamicsConfig, s: np.ndarray, p: np.ndarray, F: np.ndarray, Wp: np.ndarray) -> float:
    """max_j |s_j - p_j^2 / alpha_p|: on the fixed data-basis modes for init: modes (exact even when two
    modes share an eigenvalue), else on F's eigenvectors (meaningful once W_p is aligned with F)."""
    if cfg.init == "modes":
        s, p = np.diag(F), np.diag(Wp)
    return float(np.max(np.abs(s - p ** 2 / cfg.alpha_p)))


def _log10(v: float | None) -> float | None:
    return None if v is None else math.log10(max(v, 1e-300))


def _k_min(cfg: DynamicsConfig, F: np.ndarray, Wp: np.ndarray, sigma2: float) -> float | None:
    """min eig of Theorem 3's K, where the theorem's setting holds; else None."""
    if not (cfg.isotropic() and cfg.target == "simsiam" and cfg.predictor in ("linear", "symmetric")):
        return None
    S = 0.5 * (Wp + Wp.T)
    K = (1 + sigma2) * (0.5 * cfg.alpha_p * F + S @ S - cfg.tau / (1 + sigma2) * S) + 1.5 * cfg.eta * np.eye(len(F))
    return float(np.linalg.eigvalsh(0.5 * (K + K.T))[0])
