"""The paper's linear-network claims (reference doc, section 5) as assertions on the simulated flow.

Every test integrates Lemma 1's gradient flow with ``run_linear_dynamics`` and checks a number the
theory predicts; none copies a number from a run. Sizes are small so the file runs in seconds.
"""

import math

import numpy as np
import pytest

from ablate.config.dynamics import load_dynamics_config
from ablate.kinds.single import run_many
from ablate.theory.dynamics import Flow, basin_boundary, collapse_bound, run_linear_dynamics


def simulate(**kw):
    rows = []
    run_linear_dynamics(load_dynamics_config(kw), rows.append)
    return rows


# ---------------------------------------------------------------- reporting
def test_rows_are_reported_on_schedule_and_fit_the_schema():
    rows = simulate(n1=4, n2=3, steps=25, report_every=10, dt=0.1)
    assert [r["step"] for r in rows] == [0, 10, 20, 25]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert [r["is_final"] for r in rows] == [False, False, False, True]
    assert rows[-1]["t"] == pytest.approx(2.5) and all(r["status"] == "ok" for r in rows)
    assert len(rows[0]["f_eigs"]) == 3 and rows[0]["f_eigs"] == sorted(rows[0]["f_eigs"], reverse=True)
    df = run_many([load_dynamics_config({"n1": 4, "n2": 3, "steps": 5})])  # raises on a column not in the schema
    assert df["trial_id"].nunique() == 1 and df["collapsed"].dtype == bool


def test_log_spaced_reports_are_dense_early():
    steps = [r["step"] for r in simulate(n1=3, n2=3, steps=1000, report_every=50, report_spacing="log")]
    assert steps[0] == 0 and steps[-1] == 1000 and steps == sorted(set(steps))
    assert len(steps) <= 1000 // 50 + 2 and steps[5] <= 10 and steps[-1] - steps[-2] > 50


@pytest.mark.parametrize("predictor", ["linear", "directpred"])
def test_a_blown_up_state_ends_the_trial_as_diverged(predictor):
    rows = simulate(predictor=predictor, method="euler", dt=5.0, steps=200, report_every=50, init_scale=3.0)
    assert rows[-1]["status"] == "diverged" and rows[-1]["is_final"] and "lower dt" in rows[-1]["error"]
    assert sum(r["is_final"] for r in rows) == 1 and rows[-1]["step"] < 200


# ---------------------------------------------------------------- integrator
def _endpoint(dt: float, method: str) -> np.ndarray:
    cfg = load_dynamics_config(
        {"n1": 6, "n2": 5, "target": "ema", "beta": 0.4, "eta": 0.04, "sigma2": 0.1, "dt": dt, "method": method}
    )
    flow = Flow(cfg)
    y = flow.initial()
    for _ in range(int(round(10.0 / dt))):  # horizon T = 10
        y = flow.step(y, dt)
    return y


@pytest.mark.parametrize("method, order, tol", [("rk4", 4, 1e-7), ("euler", 1, 2e-2)])
def test_integrator_converges_with_its_order_as_dt_halves(method, order, tol):
    y1, y2, y3 = (_endpoint(dt, method) for dt in (0.1, 0.05, 0.025))
    d1, d2 = np.linalg.norm(y1 - y2), np.linalg.norm(y2 - y3)
    assert d2 / np.linalg.norm(y3) < tol  # halving dt from 0.05 changes the endpoint by less than tol (relative)
    assert d1 / d2 == pytest.approx(2**order, rel=0.25)  # error ~ dt^order


def test_reported_rows_describe_the_integrated_state():
    cfg = load_dynamics_config({"n1": 5, "n2": 5, "steps": 40, "report_every": 40, "dt": 0.1, "eta": 0.02})
    flow = Flow(cfg)
    y = flow.initial()
    for _ in range(40):
        y = flow.step(y, cfg.dt)
    W, Wp, _ = flow.unpack(y)
    rows = []
    run_linear_dynamics(cfg, rows.append)
    assert rows[-1]["w_norm"] == pytest.approx(np.linalg.norm(W), rel=1e-12)
    assert rows[-1]["f_eigs"] == pytest.approx(sorted(np.linalg.eigvalsh(W @ W.T), reverse=True), abs=1e-12)


# ---------------------------------------------------------------- Theorem 2: collapse
@pytest.mark.parametrize(
    "arm",
    [
        {"predictor": "none"},
        {"predictor": "linear", "stop_gradient": False},
        {"predictor": "directpred", "stop_gradient": False},
    ],
)
def test_without_predictor_or_stop_gradient_W_collapses(arm):
    rows = simulate(n1=6, n2=6, sigma2=0.1, eta=0.02, dt=0.1, steps=1500, report_every=500, **arm)
    assert rows[-1]["collapsed"] and rows[-1]["w_norm"] < 1e-3 * rows[0]["w_norm"]


def test_with_predictor_and_stop_gradient_W_survives():
    rows = simulate(n1=6, n2=6, sigma2=0.1, eta=0.02, dt=0.1, steps=1500, report_every=500)
    assert not rows[-1]["collapsed"] and rows[-1]["n_alive"] >= 1 and rows[-1]["w_norm"] > 0.5


def test_no_predictor_flow_is_the_closed_form_decay():
    # W_p = I, W_a = W: dW/dt = -W (X' + eta I), so ||W(t)|| = ||W(0)|| e^{-(sigma^2 + eta) t}
    rows = simulate(n1=5, n2=4, predictor="none", sigma2=0.1, eta=0.03, dt=0.1, steps=300, report_every=100)
    for r in rows:
        assert r["w_norm"] == pytest.approx(rows[0]["w_norm"] * math.exp(-0.13 * r["t"]), rel=1e-8)


# ---------------------------------------------------------------- Theorem 1: balance
@pytest.mark.parametrize(
    "setting",
    [
        {"eta": 0.0},
        {"eta": 0.05, "alpha_p": 2.0},
        {"eta": 0.1, "alpha_p": 0.5, "target": "ema", "beta": 0.4},
        {"eta": 0.02, "n2": 4, "x_eigs": [2.0, 1.0, 0.5, 0.25, 0.1, 0.05]},
    ],
)
def test_balance_decays_as_exp_minus_two_eta_t(setting):
    rows = simulate(**{"n1": 6, "n2": 6, "sigma2": 0.1, "dt": 0.05, "steps": 1000, "report_every": 100, **setting})
    assert max(r["balance_residual"] for r in rows) < 1e-6


def test_balance_breaks_without_stop_gradient():
    rows = simulate(n1=6, n2=6, sigma2=0.1, eta=0.02, stop_gradient=False, dt=0.05, steps=400, report_every=100)
    assert rows[-1]["balance_residual"] > 1e-2


def test_balance_residual_is_euler_integration_error():
    res = [
        max(
            r["balance_residual"]
            for r in simulate(n1=5, n2=5, eta=0.05, method="euler", dt=dt, steps=int(round(5 / dt)), report_every=10)
        )
        for dt in (0.02, 0.01)
    ]
    assert res[0] / res[1] == pytest.approx(2.0, rel=0.15)


# ---------------------------------------------------------------- Theorem 3: alignment
def test_symmetric_predictor_aligns_with_F():
    rows = simulate(
        n1=8, n2=8, predictor="symmetric", sigma2=0.1, eta=0.03, tau=1.0, dt=0.1, steps=2000, report_every=500
    )
    assert rows[0]["commutator"] > 1e-2 and rows[-1]["commutator"] < 1e-10
    assert rows[-1]["k_min"] > 0  # Theorem 3's condition K > 0 holds at the end
    # aligned: W_p u_j = p_j u_j, so cos(W_p u_j, u_j) = sign(p_j) for every eigenvector u_j of F
    assert rows[-1]["eig_align"] == pytest.approx(np.mean(np.sign(rows[-1]["wp_eigs"])), abs=1e-6)
    assert rows[0]["eig_align"] != pytest.approx(np.mean(np.sign(rows[0]["wp_eigs"])), abs=1e-2)


def test_linear_predictor_aligns_only_with_weight_decay():
    final = {
        eta: simulate(n1=8, n2=8, sigma2=0.1, eta=eta, dt=0.1, steps=2000, report_every=1000)
        for eta in (0.0, 0.03, 0.06)
    }
    flat = final[0.0]
    assert flat[-1]["commutator"] > 0.5 * flat[1]["commutator"] > 1e-2  # plateau at eta = 0
    assert final[0.06][-1]["commutator"] < final[0.03][-1]["commutator"] < 1e-3 * final[0.03][0]["commutator"]


# ---------------------------------------------------------------- the parabola s = p^2 / alpha_p
@pytest.mark.parametrize("eta, alpha_p", [(0.04, 2.0), (0.0, 1.0)])
def test_modes_approach_the_parabola_as_exp_minus_two_eta_t(eta, alpha_p):
    rows = simulate(
        n1=4,
        n2=4,
        init="modes",
        s0=[0.05, 1.2, 0.9, 0.3],
        p0=[0.9, 0.3, 0.05, 0.15],
        eta=eta,
        alpha_p=alpha_p,
        target="ema",
        beta=0.4,
        dt=0.05,
        steps=3000,
        report_every=500,
    )
    gap0 = rows[0]["parabola_gap"]
    assert gap0 > 0.5
    for r in rows:
        assert r["parabola_gap"] == pytest.approx(gap0 * math.exp(-2 * eta * r["t"]), rel=1e-5)


def test_directpred_sits_on_the_parabola_and_survives_but_scale_free_form_collapses():
    on = simulate(n1=6, n2=6, predictor="directpred", eta=0.04, dt=0.1, steps=1000, report_every=500)
    assert not on[-1]["collapsed"] and max(r["parabola_gap"] for r in on) < 1e-12  # p = sqrt(s)
    # the reference code's p = sqrt(s / s_max) + eps: the top mode has p = 1 + eps > tau/(1 + sigma^2),
    # so in this (not scale-invariant) model its s shrinks and every mode follows
    off = simulate(
        n1=6,
        n2=6,
        predictor="directpred",
        directpred_norm="max",
        eps=0.1,
        eta=0.04,
        dt=0.1,
        steps=1000,
        report_every=500,
    )
    assert off[-1]["collapsed"]


# ---------------------------------------------------------------- the weight-decay threshold
@pytest.mark.parametrize("tau", [1.0, 0.6])
def test_threshold_flips_between_just_below_and_just_above_the_bound(tau):
    bound = collapse_bound(tau, 0.1)
    kw = dict(
        n1=2,
        n2=2,
        sigma2=0.1,
        tau=tau,
        init="modes",
        p0=[1.0, 0.6],
        s0=[1.0, 0.36],
        dt=0.1,
        steps=6000,
        report_every=3000,
    )
    below, above = simulate(eta=0.9 * bound, **kw), simulate(eta=1.1 * bound, **kw)
    assert not below[-1]["collapsed"] and below[-1]["n_alive"] == 2
    assert above[-1]["collapsed"] and above[-1]["n_alive"] == 0


def test_below_the_bound_modes_under_p_minus_collapse_and_modes_above_survive():
    tau, sigma2, eta = 1.0, 0.1, 0.6 * collapse_bound(1.0, 0.1)
    p_minus, p_plus = basin_boundary(tau, sigma2, eta)
    p0 = [0.7 * p_minus, 0.85 * p_minus, 1.15 * p_minus, 1.5 * p_minus, 1.5 * p_plus]
    rows = simulate(
        n1=5,
        n2=5,
        sigma2=sigma2,
        tau=tau,
        eta=eta,
        init="modes",
        p0=p0,
        s0=[p * p for p in p0],
        dt=0.1,
        steps=3000,
        report_every=3000,
    )
    s, p = np.array(rows[-1]["s_modes"]), np.array(rows[-1]["p_modes"])
    assert list(s > 1e-6) == [False, False, True, True, True]
    assert p[2:] == pytest.approx(p_plus, rel=1e-3)  # survivors sit at the stable fixed point p*_+


# ---------------------------------------------------------------- EMA and alpha_p (Table 4 #1, #2, #8, #9)
@pytest.fixture(scope="module")
def ema_grid():
    """Final surviving modes and the smallest tau_eff, per (target, alpha_p), over seeds 0-3."""
    out = {}
    for target in ("simsiam", "ema"):
        for alpha_p in (0.1, 1.0, 10.0):
            runs = [
                simulate(
                    n1=10,
                    n2=10,
                    eta=0.04,
                    target=target,
                    beta=0.1,
                    alpha_p=alpha_p,
                    seed=seed,
                    dt=0.1,
                    steps=2000,
                    report_every=100,
                )
                for seed in range(4)
            ]
            out[target, alpha_p] = (
                np.mean([r[-1]["n_alive"] for r in runs]),
                np.mean([min(x["tau_eff"] for x in r) for r in runs]),
                np.mean([r[-1]["tau_eff"] for r in runs]),
            )
    return out


def test_ema_keeps_more_modes_alive(ema_grid):  # 1
    for alpha_p in (0.1, 1.0, 10.0):
        assert ema_grid["ema", alpha_p][0] >= ema_grid["simsiam", alpha_p][0]
    assert ema_grid["ema", 0.1][0] > ema_grid["simsiam", 0.1][0] + 1


def test_ema_target_lags_then_catches_up(ema_grid):  # 2
    assert ema_grid["ema", 1.0][1] < 0.9 and ema_grid["simsiam", 1.0][1] == pytest.approx(1.0)
    assert ema_grid["ema", 1.0][2] == pytest.approx(1.0, abs=0.01)


def test_larger_predictor_lr_keeps_more_modes_alive(ema_grid):  # 8
    for target in ("simsiam", "ema"):
        alive = [ema_grid[target, a][0] for a in (0.1, 1.0, 10.0)]
        assert alive == sorted(alive) and alive[-1] > alive[0] + 2


def test_fast_predictor_stands_in_for_ema(ema_grid):  # 9
    assert ema_grid["simsiam", 10.0][0] >= ema_grid["ema", 1.0][0]
    benefit = {a: ema_grid["ema", a][0] - ema_grid["simsiam", a][0] for a in (0.1, 10.0)}
    assert benefit[10.0] < benefit[0.1]
