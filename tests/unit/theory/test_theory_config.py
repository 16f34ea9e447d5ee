"""The linear_dynamics config: strict building, cross-field rules, the sweep files, the results schema."""

from pathlib import Path

import pytest

from ablate.config.dynamics import DynamicsConfig, load_dynamics_config
from ablate.errors import UserError
from ablate.kinds.registry import DYNAMICS
from ablate.theory.dynamics import basin_boundary, collapse_bound

SWEEPS = sorted((Path(__file__).resolve().parents[3] / "sweeps").glob("theory_*.yaml"))


def test_defaults_and_derived_spectra():
    cfg = load_dynamics_config({})
    assert cfg.kind == "linear_dynamics" and cfg.predictor == "linear" and cfg.stop_gradient
    assert cfg.isotropic() and list(cfg.x_diag()) == [1.0] * 10 and list(cfg.xp_diag()) == [0.0] * 10
    cfg = load_dynamics_config({"n1": 3, "x_eigs": [2, 1, 0.5], "sigma2": 0.1})
    assert cfg.x_eigs == (2.0, 1.0, 0.5) and not cfg.isotropic()
    assert list(cfg.xp_diag()) == [0.1, 0.1, 0.1]


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"alpha": 1.0}, "<config>: alpha: unknown key; did you mean 'alpha_p'?"),
        ({"eta": -0.1}, "<config>: eta: must be >= 0, got -0.1"),
        ({"alpha_p": 0}, "<config>: alpha_p: must be > 0, got 0.0"),
        (
            {"predictor": "mlp"},
            "<config>: predictor: must be one of 'none', 'linear', 'symmetric', 'directpred', got 'mlp'",
        ),
        ({"kind": "ssl"}, "<config>: kind: must be one of 'linear_dynamics', got 'ssl'"),
        ({"n1": 3, "x_eigs": [1, 2]}, "<config>: x_eigs: needs n1 = 3 values (one per input dimension), got 2"),
        ({"n1": 2, "xp_eigs": [0.1, -1]}, "<config>: xp_eigs: must be >= 0 (a covariance spectrum), got [0.1, -1.0]"),
        (
            {"stop_gradient": False, "target": "ema"},
            "<config>: stop_gradient: false needs target: simsiam (the gradient flows through W_a = tau W); "
            "an EMA target is not a function of W",
        ),
        ({"s0": [1.0]}, "<config>: s0: is used only with init: modes; remove it or set init: modes"),
        ({"init": "modes"}, "<config>: s0: init: modes needs s0, the initial eigenvalues of F (one per mode)"),
        ({"init": "modes", "s0": [1.0, 0.5]}, "<config>: p0: needs one value per mode of s0 (2), got 0"),
        ({"init": "modes", "n2": 1, "s0": [1.0, 0.5], "p0": [1, 1]}, "<config>: s0: has 2 modes but min(n1, n2) = 1"),
    ],
)
def test_bad_values_are_one_line_errors(tree, message):
    with pytest.raises(UserError) as e:
        load_dynamics_config(tree)
    assert str(e.value) == message


def test_modes_without_p0_are_fine_for_untrained_predictors():
    cfg = load_dynamics_config({"init": "modes", "s0": [1.0], "predictor": "directpred"})
    assert cfg.p0 == ()


def test_bound_and_basin_boundary_agree():
    tau, sigma2 = 1.0, 0.1
    bound = collapse_bound(tau, sigma2)
    assert bound == pytest.approx(1 / 4.4)
    lo, hi = basin_boundary(tau, sigma2, 0.5 * bound)
    for p in (lo, hi):  # fixed points of p (tau - (1 + sigma^2) p) = eta
        assert p * (tau - (1 + sigma2) * p) == pytest.approx(0.5 * bound)
    assert lo < tau / (2 * (1 + sigma2)) < hi
    assert basin_boundary(tau, sigma2, 1.01 * bound) is None


def test_metrics_do_not_clash_with_common_or_config_columns():
    schema = DYNAMICS.schema
    assert len(schema.names) == len(set(schema.names))
    assert {"f_eigs", "commutator", "balance_residual", "collapsed", "eta", "alpha_p", "p0"} <= set(schema.names)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_theory_sweeps_load_and_expand(path):
    from ablate.sweep.expand import expand
    from ablate.sweep.load import read_sweep

    sweep = read_sweep(path)
    trials = expand(sweep)
    assert sweep.kind == "linear_dynamics" and sweep.name == path.stem
    assert trials and all(isinstance(t.config, DynamicsConfig) for t in trials)
    assert len({t.trial_id for t in trials}) == len(trials)
    assert sweep.description.strip() and sweep.table is not None
    assert len(SWEEPS) == 6
