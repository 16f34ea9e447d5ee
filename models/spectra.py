"""fp32 symmetric eigendecomposition and the predictor-spectra metrics of the results schema.

The paper's central claim (Sec. 3-4, Theorem 3, Fig. 2) is that a linear predictor W_p aligns its
eigenspaces with those of the correlation F = E[f f^T] of the online projections: the commutator
[F, W_p] -> 0, and for each eigenvector u_j of F, W_p u_j is parallel to u_j with eigenvalue
p_j ~ sqrt(s_j). :func:`spectra` measures exactly that.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast on ``device``: F_hat, its eigh and the predictor solves stay in fp32."""
    return torch.autocast(device_type=device.type, enabled=False)


def sym_eigh(m: Tensor) -> tuple[Tensor, Tensor]:
    """Eigen-decomposition of a symmetric matrix in fp32: (s ascending (d,), U (d, d)), m = U diag(s) U^T.

    Uses ``torch.linalg.eigh`` (the old code's ``torch.eig`` no longer exists). The input is
    symmetrised first, because an EMA of outer products is symmetric only up to rounding."""
    with no_autocast(m.device):
        m = m.float()
        return torch.linalg.eigh((m + m.T) / 2)


@torch.no_grad()
def spectra(corr: Tensor, w_p: Tensor) -> dict[str, object]:
    """Alignment of W_p (d, d) with the eigenspaces of F (d, d), for the results table.

    Returns
      ``eig_align``:  mean_j cos(W_p u_j, u_j) over the eigenvectors u_j of F (paper Fig. 2);
                      1 when every u_j is an eigenvector of W_p with a positive eigenvalue.
      ``commutator``: ||F W_p - W_p F||_F / (||F||_F ||W_p||_F) (Theorem 3); 0 when aligned.
      ``f_eigs``:     eigenvalues s_j of F, descending.
      ``wp_eigs``:    u_j^T W_p u_j in the same order, i.e. the eigenvalues p_j of the symmetric
                      part of W_p when W_p is aligned (the (s_j, p_j) pairs of Fig. 2 / Eq. 18).
    """
    with no_autocast(corr.device):
        f, w = corr.float(), w_p.float().to(corr.device)
        s, u = sym_eigh(f)
        s, u = s.flip(0), u.flip(1)  # descending, columns u_j
        wu = w @ u  # (d, d), column j = W_p u_j
        rayleigh = (u * wu).sum(0)  # u_j^T W_p u_j (u_j has unit norm)
        # a cosine is in [-1, 1]; in fp32 an aligned u_j can give 1 + 1 ulp
        cos = (rayleigh / wu.norm(dim=0).clamp_min(torch.finfo(torch.float32).tiny)).clamp(-1.0, 1.0)
        scale = (torch.linalg.matrix_norm(f) * torch.linalg.matrix_norm(w)).clamp_min(torch.finfo(torch.float32).tiny)
        commutator = torch.linalg.matrix_norm(f @ w - w @ f) / scale
    return {
        "eig_align": float(cos.mean()),
        "commutator": float(commutator),
        "f_eigs": [float(x) for x in s.cpu()],
        "wp_eigs": [float(x) for x in rayleigh.cpu()],
    }
