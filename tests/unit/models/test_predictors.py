"""Predictors: DirectPred's closed form (Eq. 18, code form), F_hat's EMA (Eq. 19), plug-in timing,
symmetric variants, the registry, the Table 1 plug-in solve, and the spectra metrics."""

import numpy as np
import pytest
import torch

from ablate.config.trial import PredictorConfig
from ablate.kinds.ssl import load_trial_config
from ablate.models.predictors import (
    PLUGIN_SOLVES,
    PREDICTORS,
    build_predictor,
    directcopy_weight,
    directpred_weight,
    plugin_weight,
    spectra,
)


def predictor(dim=4, **cfg):
    return build_predictor(load_trial_config({"predictor": cfg}).predictor, dim)


def random_psd(d, seed, rank=None):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, rank or d, generator=g, dtype=torch.float64)
    return a @ a.T / d


def numpy_directpred(f, eps, eps_inside=False):
    """Eq. 18 in the reference code's form, written out with numpy in float64."""
    s, u = np.linalg.eigh(f)
    ratio = np.maximum(s, 0) / s.max()
    p = np.sqrt(np.maximum(ratio + eps, 1e-4)) if eps_inside else np.maximum(np.sqrt(ratio) + eps, 1e-4)
    return u @ np.diag(p) @ u.T


# ------------------------------------------------------------------ directpred_weight
@pytest.mark.parametrize(
    "seed, rank, eps, inside",
    [(0, None, 0.1, False), (1, 3, 0.0, False), (2, None, 0.01, False), (3, 2, -0.05, True), (4, None, 0.1, True)],
)
def test_directpred_weight_matches_an_explicit_eigen_computation(seed, rank, eps, inside):
    f = random_psd(6, seed, rank)
    w = directpred_weight(f.float(), eps, eps_inside=inside)
    assert w.dtype == torch.float32 and w.shape == (6, 6)
    # fp32 eigenvalues near 0 carry ~1e-7 s_max of rounding, which sqrt(s / s_max) lifts to ~3e-4.
    atol = 1e-3 if rank is not None and eps == 0 else 2e-5
    np.testing.assert_allclose(w.numpy(), numpy_directpred(f.numpy(), eps, inside), atol=atol)


def test_directpred_weight_on_a_diagonal_f_has_the_known_p():
    f = torch.diag(torch.tensor([4.0, 1.0, 0.0, -1e-3]))  # a slightly negative eigenvalue is clamped
    # p = sqrt(s / s_max) + eps, floored at 1e-4
    assert torch.allclose(directpred_weight(f, 0.1), torch.diag(torch.tensor([1.1, 0.6, 0.1, 0.1])), atol=1e-6)
    assert torch.allclose(directpred_weight(f, 0.0), torch.diag(torch.tensor([1.0, 0.5, 1e-4, 1e-4])), atol=1e-7)


def test_eps_inside_puts_eps_under_the_root_table7():
    f = torch.diag(torch.tensor([4.0, 1.0, 0.0]))
    # p = sqrt(max(s / s_max + eps, 1e-4)) with eps = -c = -0.3: (0.7, -0.05, -0.3) -> (sqrt(.7), .01, .01)
    want = torch.diag(torch.tensor([0.7**0.5, 0.01, 0.01]))
    assert torch.allclose(directpred_weight(f, -0.3, eps_inside=True), want, atol=1e-6)


def test_directpred_weight_of_a_zero_f_is_finite():
    zero = torch.zeros(3, 3)
    assert torch.equal(directpred_weight(zero, 0.1), 0.1 * torch.eye(3))
    assert torch.allclose(directpred_weight(zero, 0.0), 1e-4 * torch.eye(3))


def test_directpred_weight_is_fp32_under_bf16_autocast():
    f = random_psd(8, 5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = directpred_weight(f, 0.1)
    assert w.dtype == torch.float32 and torch.allclose(w, directpred_weight(f, 0.1), atol=1e-6)


def test_directcopy_weight_is_frobenius_normalised_f_plus_eps():
    f = random_psd(5, 6).float()
    w = directcopy_weight(3.0 * f, 0.2)  # invariant to the scale of F
    assert torch.allclose(w, f / torch.linalg.matrix_norm(f) + 0.2 * torch.eye(5), atol=1e-6)


# ------------------------------------------------------------------ F_hat and the hooks
def test_f_hat_is_the_uncentred_batch_value_first_then_an_ema():
    p = predictor(dim=2, name="directpred", rho=0.3)
    assert p.corr is None
    t = torch.zeros(2, 2)
    p.observe(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), t)
    f1 = torch.diag(torch.tensor([0.5, 2.0]))  # (z1 z1^T + z2 z2^T) / 2B
    assert torch.allclose(p.corr, f1)
    ones = torch.ones(2, 2)
    p.observe(ones, t)  # not centred: a constant batch still has F = 1 1^T
    assert torch.allclose(p.corr, 0.3 * f1 + 0.7 * torch.ones(2, 2))
    assert p.corr.dtype == torch.float32


def test_directpred_sets_w_p_on_the_reference_codes_schedule():
    """freq 3: plug-ins on steps 1, 4, 7 (reference: 0-based niter % freq == 0); SGD in between."""
    p = predictor(dim=4, name="directpred", freq=3, eps=0.1)
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    p.observe(z, z)
    target = directpred_weight(p.corr, 0.1)
    w = p.linear_weight()
    p.after_optimizer_step(1)
    assert torch.allclose(w, target, atol=1e-6)  # the first step already plugs in
    for step in (2, 3):
        sgd = w.detach().clone() + 0.01 * step  # stands in for an SGD move between plug-ins
        with torch.no_grad():
            w.copy_(sgd)
        p.after_optimizer_step(step)
        assert torch.equal(w, sgd), step  # kept
    p.after_optimizer_step(4)
    assert torch.allclose(w, target, atol=1e-6)
    with torch.no_grad():
        w.add_(1.0)
    p.after_optimizer_step(6)
    assert not torch.allclose(w, target)
    p.after_optimizer_step(7)
    assert torch.allclose(w, target, atol=1e-6)


def test_directpred_copy_mode_plugs_in_directcopy():
    p = predictor(dim=4, name="directpred", mode="copy", eps=0.3)
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    p.observe(z, z)
    p.after_optimizer_step(1)
    assert torch.allclose(p.linear_weight(), directcopy_weight(p.corr, 0.3))


def test_f_hat_survives_a_checkpoint_round_trip():
    p = predictor(dim=3, name="directpred", rho=0.5)
    z = torch.randn(4, 3)
    p.observe(z, z)
    q = predictor(dim=3, name="directpred", rho=0.5)
    q.load_state_dict(p.state_dict())
    assert torch.equal(q.corr, p.corr)
    q.observe(2 * z, z)
    p.observe(2 * z, z)
    assert torch.equal(q.corr, p.corr)  # the EMA goes on, not restarting from the batch value


def sgd_step(p, z, lr=0.5):
    """One plain SGD step on a regression loss whose gradient is not symmetric."""
    loss = (p(z) - z.flip(1) ** 2).pow(2).sum()
    loss.backward()
    with torch.no_grad():
        for q in p.parameters():
            q -= lr * q.grad


def test_symmetric_linear_stays_symmetric():
    p = predictor(dim=5, name="linear", symmetric=True, bias=True)
    w = p.linear_weight()
    assert torch.equal(w, w.T)
    sgd_step(p, torch.randn(7, 5, generator=torch.Generator().manual_seed(2)))
    assert not torch.allclose(w, w.T)  # the SGD step broke it...
    before = w.detach().clone()
    p.after_optimizer_step(1)
    assert torch.equal(w, w.T) and torch.allclose(w, (before + before.T) / 2)  # ...the hook restores it


def test_symmetric_two_layer_ties_w2_to_w1_transposed():
    p = predictor(dim=4, name="mlp", hidden_dim=6, symmetric=True)
    w1, w2 = p.layers[0].weight, p.layers[3].weight
    assert torch.equal(w2, w1.T)
    sgd_step(p, torch.randn(8, 4, generator=torch.Generator().manual_seed(3)))
    assert not torch.allclose(w2, w1.T)
    b1, b2 = w1.detach().clone(), w2.detach().clone()
    p.after_optimizer_step(1)
    assert torch.equal(w2, w1.T) and torch.allclose(w1, (b1 + b2.T) / 2)


def test_registry_builds_every_variant_with_the_right_shapes():
    assert set(PREDICTORS) == set(PredictorConfig.variants)
    z = torch.randn(8, 16)
    for name in PREDICTORS:
        p = predictor(dim=16, name=name)
        assert p(z).shape == (8, 16), name
        assert p.uses_sgd == any(True for _ in p.parameters()), name
        w = p.linear_weight()
        assert (w is None) == (name in ("none", "mlp")), name
        assert w is None or w.shape == (16, 16)
        p.observe(z, z)
        assert (p.corr is not None) == (name in ("directpred", "plugin")), name
        p.after_optimizer_step(1)
        assert p(z).shape == (8, 16), name
    assert torch.equal(predictor(name="none")(z[:, :4]), z[:, :4])
    assert predictor(name="linear", bias=True).linear.bias is not None
    assert predictor(name="mlp", bias=False).layers[0].bias is None


# ------------------------------------------------------------------ plug-in (Table 1)
def test_plugin_recovers_a_known_symmetric_map():
    """Targets t = A f with A symmetric: C = A F, so the Lyapunov and least-squares solves give back
    A; the paper's sym(C) F^-1 = (A + F A F^-1) / 2 does only where A and F commute."""
    g = torch.Generator().manual_seed(4)
    d, n = 5, 400
    b = torch.randn(d, d, generator=g)
    a = (b + b.T) / 2
    f = torch.randn(n, d, generator=g) * torch.linspace(0.3, 2.0, d)  # anisotropic F
    for solve, recovers in (("lyapunov", True), ("lstsq", True), ("paper", False)):
        p = predictor(dim=d, name="plugin", ridge=0.0, solve=solve)
        p.observe(f, f @ a.T)
        p.after_optimizer_step(1)
        assert torch.allclose(p.linear_weight(), a, atol=1e-3) == recovers, solve


@pytest.mark.parametrize("symmetric", [False, True])
def test_plugin_symmetrises_w_p_between_plug_ins_as_the_reference_does(symmetric):
    """The reference's regulate_predictor, minimal_space branch, after every optimizer step: on
    ``niter % predictor_freq == 0`` it plugs W in, else ``if self.dyn_sym: w += w.t(); w /= 2``
    (dyn_sym: true by default). ``predictor.symmetric`` is that option; off, SGD's W_p stays as it is."""
    p = predictor(dim=4, name="plugin", freq=3, solve="lyapunov", symmetric=symmetric)
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    p.observe(z, z.flip(1))
    w = p.linear_weight()
    p.after_optimizer_step(1)
    plugged = w.detach().clone()
    assert torch.allclose(plugged, plugged.T, atol=1e-6)  # the Lyapunov solve is symmetric
    skew = torch.triu(torch.ones(4, 4), 1)  # stands in for an SGD step that breaks the symmetry
    for step in (2, 3):
        sgd = w.detach().clone() + 0.01 * step * skew
        with torch.no_grad():
            w.copy_(sgd)
        p.after_optimizer_step(step)
        assert torch.equal(w, (sgd + sgd.T) / 2 if symmetric else sgd), step
    p.after_optimizer_step(4)
    assert torch.allclose(w, plugged, atol=1e-6)  # same statistics: the same plug-in


def test_plugin_symmetric_off_keeps_the_trial_ids_of_before_it_existed():
    """``predictor.symmetric`` came after plug-in trials had run: at its default (false) it is left out of
    the trial id (ablate.config.trial.ADDED_LATER), so their ids are what they were; on, it is part of it.
    The ids below were computed at commit 172e923, before the key existed."""
    from ablate.kinds.registry import SSL

    before = {
        "691bf77d1661": {"predictor": {"name": "plugin"}},
        "55452298f8cc": {"predictor": {"name": "plugin", "solve": "lyapunov", "freq": 2}, "ema": {"tau": 0.0}},
    }
    for tid, mapping in before.items():
        assert SSL.trial_id(load_trial_config(mapping)) == tid
        on = {**mapping, "predictor": {**mapping["predictor"], "symmetric": True}}
        assert SSL.trial_id(load_trial_config(on)) != tid


def direct_solves(f: np.ndarray, c: np.ndarray, lam: float) -> dict[str, np.ndarray]:
    """Each solve written out in float64 without the eigenbasis: the paper's W = sym(C) (F + lam I)^-1,
    the Lyapunov equation F W + W F + 2 lam W = 2 sym(C) as one linear system in vec(W), and lstsq."""
    d = len(f)
    sym, reg = (c + c.T) / 2, f + lam * np.eye(d)
    kron = np.kron(np.eye(d), reg) + np.kron(reg.T, np.eye(d))  # vec(F' W + W F') = kron vec(W)
    lyap = np.linalg.solve(kron, (2 * sym).reshape(-1, order="F")).reshape(d, d, order="F")
    return {"paper": sym @ np.linalg.inv(reg), "lyapunov": lyap, "lstsq": c @ np.linalg.inv(reg)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plugin_solves_match_a_direct_solve(seed):
    g = torch.Generator().manual_seed(seed)
    d, ridge = 6, 0.05
    f = random_psd(d, seed + 10).float()
    c = torch.randn(d, d, generator=g)  # a cross-correlation is not symmetric
    lam = ridge * float(torch.trace(f)) / d
    want = direct_solves(f.double().numpy(), c.double().numpy(), lam)
    for name, solve in PLUGIN_SOLVES.items():
        got = solve(f, c, ridge)
        assert got.dtype == torch.float32
        np.testing.assert_allclose(got.double().numpy(), want[name], rtol=1e-3, atol=1e-4, err_msg=name)
    lyap = PLUGIN_SOLVES["lyapunov"](f, c, ridge)
    assert torch.allclose(lyap, lyap.T, atol=1e-5)  # symmetric by construction
    assert not torch.allclose(PLUGIN_SOLVES["paper"](f, c, ridge), PLUGIN_SOLVES["lstsq"](f, c, ridge), atol=1e-3)


def test_plugin_weight_ridge_is_relative_to_the_trace():
    f = torch.diag(torch.tensor([3.0, 1.0]))
    # lambda = ridge * tr(F) / d = 0.5 * 2 = 1 -> W = C diag(1/4, 1/2)
    assert torch.allclose(plugin_weight(f, torch.eye(2), 0.5), torch.diag(torch.tensor([0.25, 0.5])))
    assert torch.allclose(
        plugin_weight(torch.diag(torch.tensor([2.0, 0.0])), torch.eye(2), 0.0), torch.diag(torch.tensor([0.5, 0.0]))
    )  # singular F, no ridge: pseudo-inverse


# ------------------------------------------------------------------ spectra
def test_spectra_of_an_aligned_w_p_and_of_a_random_one():
    f = random_psd(8, 7).float()
    aligned = spectra(f, directpred_weight(f, 0.1))
    assert aligned["eig_align"] == pytest.approx(1.0, abs=1e-4)
    assert aligned["commutator"] < 1e-5
    s = aligned["f_eigs"]
    assert s == sorted(s, reverse=True) and len(s) == 8
    want_p = [(max(x, 0) / s[0]) ** 0.5 + 0.1 for x in s]
    assert aligned["wp_eigs"] == pytest.approx(want_p, abs=1e-4)
    rand = spectra(f, torch.randn(8, 8, generator=torch.Generator().manual_seed(8)))
    assert rand["eig_align"] < 0.5 and rand["commutator"] > 0.1


@pytest.mark.parametrize("seed", range(20))
def test_eig_align_is_a_cosine_even_where_fp32_rounds_past_one(seed):
    """W_p = F: every u_j is an eigenvector, so each cosine is 1 up to fp32 rounding, which lands on
    either side of 1 (1 + 2 ulp for most of these seeds before the clamp)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(16, 16, generator=g)
    f = a @ a.T / 16
    got = spectra(f, f.clone())["eig_align"]
    assert -1.0 <= got <= 1.0 and got == pytest.approx(1.0, abs=1e-3)  # eigh of an ill-conditioned F: ~1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_directpred_on_cuda_under_bf16_autocast_keeps_f_hat_and_w_p_in_fp32():
    p = predictor(dim=16, name="directpred").cuda()
    z = torch.randn(64, 16, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        zb = torch.nn.functional.linear(z, torch.eye(16, device="cuda"))  # a bf16 projection, as in training
        assert zb.dtype == torch.bfloat16
        p.observe(zb[:32], zb[32:], zb[:32], zb[32:])
        p.after_optimizer_step(1)
    assert p.corr.dtype == torch.float32 and p.linear_weight().dtype == torch.float32
    want = directpred_weight(p.corr.cpu(), 0.1)
    assert torch.allclose(p.linear_weight().cpu(), want, atol=1e-4)
