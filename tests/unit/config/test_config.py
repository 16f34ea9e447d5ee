"""The trial config: strict building, did-you-mean, ranges, predictor variants, overrides, hashing."""

import pytest

import ablate.datasets.records  # noqa: F401  fills the dataset registry data.name is checked against, as every entry point does
from ablate.config.tree import Source, field_docs, merge, parse_set
from ablate.config.trial import TrialConfig, config_hash
from ablate.config.yamlfile import read_yaml
from ablate.errors import UserError
from ablate.kinds.ssl import load_trial_config
from ablate.models.predictors import DirectPredConfig, MLPPredictorConfig


def test_defaults_are_the_paper_recipe():
    cfg = load_trial_config({})
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.03, 0.9, 4e-4)
    assert cfg.ema.tau == 0.996 and cfg.ema.init == "independent"
    assert (cfg.projector.hidden_dim, cfg.projector.out_dim, cfg.projector.bn_affine) == (512, 128, False)
    assert cfg.eval.probe_epochs == 50 and cfg.eval.probe_lr == 3e-4


def test_predictor_variant_is_picked_by_name():
    cfg = load_trial_config({"predictor": {"name": "directpred", "rho": 0.5}})
    assert isinstance(cfg.predictor, DirectPredConfig) and cfg.predictor.rho == 0.5 and cfg.predictor.freq == 1
    assert isinstance(load_trial_config({"predictor": {"name": "mlp"}}).predictor, MLPPredictorConfig)


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"optim": {"lrr": 0.1}}, "<config>: optim.lrr: unknown key; did you mean 'lr'?"),
        ({"optim": {"lr": -0.1}}, "<config>: optim.lr: must be > 0, got -0.1"),
        ({"optim": {"lr": "fast"}}, "<config>: optim.lr: expected float, got 'fast'"),
        ({"ema": {"tau": 1.5}}, "<config>: ema.tau: must be <= 1, got 1.5"),
        ({"predictor": {"name": "directpred", "freq": 0}}, "<config>: predictor.freq: must be >= 1, got 0"),
        (
            {"predictor": {"name": "directpred", "eps": -0.1}},
            "<config>: predictor.eps: must be >= 0 unless eps_inside is true (Table 7 uses eps = -c inside the root), got -0.1",
        ),
        (
            {"predictor": {"name": "directpred", "bias": True}},
            "<config>: predictor.bias: unknown key for predictor 'directpred' (valid keys: name, rho, eps, freq, eps_inside, mode)",
        ),
        (
            {"predictor": {"name": "directpredd"}},
            "<config>: predictor.name: unknown PredictorConfig 'directpredd'; choose one of none, linear, mlp, directpred, plugin; did you mean 'directpred'?",
        ),
        ({"train": {"epochs": True}}, "<config>: train.epochs: expected int, got True"),
        (
            {"data": {"name": "stl10"}},
            "<config>: data.root: dataset 'stl10' needs data.root, the directory that holds it (get it with `ablate data fetch stl10`)",
        ),
    ],
)
def test_bad_values_are_one_line_errors(tree, message):
    with pytest.raises(UserError) as e:
        load_trial_config(tree)
    assert str(e.value) == message


def test_errors_name_file_and_line(tmp_path):
    f = tmp_path / "over.yaml"
    f.write_text("optim:\n  momentum: 0.9\n  lr: -1\n")
    tree, lines, _ = read_yaml(f)
    with pytest.raises(UserError, match=rf"^{f}:3: optim.lr: must be > 0"):
        load_trial_config(tree, Source(str(f), lines))


def test_set_overrides_parse_yaml_scalars_and_replace_subtrees():
    over = parse_set(["optim.lr=0.05", "loss.symmetric=false", "predictor={name: mlp, hidden_dim: 64}"])
    assert over == {"optim.lr": 0.05, "loss.symmetric": False, "predictor": {"name": "mlp", "hidden_dim": 64}}
    tree = merge({"predictor": {"name": "directpred", "rho": 0.3}}, over)
    assert tree["predictor"] == {"name": "mlp", "hidden_dim": 64}  # rho does not leak into mlp
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_set(["optim.lr"])


def test_config_hash_is_stable_and_sensitive():
    a = load_trial_config({"optim": {"lr": 0.05}, "seed": 1})
    b = load_trial_config({"seed": 1, "optim": {"lr": 0.05}})
    assert config_hash(a) == config_hash(b) and len(config_hash(a)) == 12
    assert config_hash(a) != config_hash(load_trial_config({"optim": {"lr": 0.05}, "seed": 2}))


def test_every_leaf_is_documented():
    rows = field_docs(TrialConfig)
    keys = [k for k, _, _ in rows]
    assert "predictor.rho" in keys and "optim.predictor_weight_decay" in keys and "seed" in keys
    assert all(meaning for _, _, meaning in rows if not meaning.startswith("(")), [r for r in rows if not r[2]]
