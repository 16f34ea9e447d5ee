"""Expansion of a sweep into trials: count, order, ids, sub-tree replacement, cases, dedupe, display."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ablate.config.trial import config_hash
from ablate.kinds.ssl import load_trial_config
from ablate.models.predictors import DirectPredConfig, MLPPredictorConfig
from ablate.sweep.describe import axes_of, describe
from ablate.sweep.expand import compact, expand, search_trial
from ablate.sweep.load import read_sweep

REPO = Path(__file__).resolve().parents[3]


def sweep_of(tmp_path: Path, text: str, name: str = "sweep.yaml", overrides: dict | None = None):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return read_sweep(path, overrides)


GRID = textwrap.dedent("""
    name: g
    base:
      predictor: {name: directpred}
      train: {epochs: 3}
    grid:
      predictor.rho: [0.3, 0.5]
      predictor.eps: [0, 0.01, 0.1]
    seeds: [0, 1]
    """)


def test_count_is_cells_times_seeds_and_order_is_seeds_outermost_then_last_key_fastest(tmp_path):
    trials = expand(sweep_of(tmp_path, GRID))
    assert len(trials) == 2 * 3 * 2
    got = [(t.axes["seed"], t.axes["predictor.rho"], t.axes["predictor.eps"]) for t in trials]
    want = [(s, r, e) for s in (0, 1) for r in (0.3, 0.5) for e in (0, 0.01, 0.1)]
    assert got == want
    # the axes are what the configs really hold
    assert [(t.config.seed, t.config.predictor.rho, t.config.predictor.eps) for t in trials] == want
    assert all(t.search == "grid" and t.kind == "ssl" and t.config.train.epochs == 3 for t in trials)


def test_expansion_is_deterministic(tmp_path):
    a = [(t.trial_id, t.axes) for t in expand(sweep_of(tmp_path, GRID))]
    b = [(t.trial_id, t.axes) for t in expand(sweep_of(tmp_path, GRID, "again.yaml"))]
    assert a == b
    assert len({tid for tid, _ in a}) == len(a)  # every trial distinct


def test_trial_id_is_the_hash_of_the_full_config_and_stable_across_sweeps(tmp_path):
    one = sweep_of(tmp_path, GRID)
    # another sweep, other name, keys in another order, nested vs dotted spelling, one shared point
    other = sweep_of(
        tmp_path,
        """
        name: other
        seeds: [1]
        grid:
          predictor.eps: [0.1]
        base:
          train:
            epochs: 3
          predictor.rho: 0.5
          predictor.name: directpred
        """,
        "other.yaml",
    )
    ids = {(t.axes["seed"], t.axes["predictor.rho"], t.axes["predictor.eps"]): t.trial_id for t in expand(one)}
    (shared,) = expand(other)
    assert shared.trial_id == ids[(1, 0.5, 0.1)]
    assert all(t.trial_id == config_hash(t.config) for t in expand(one))
    # the same config built directly has the same id; another seed or lr does not
    direct = load_trial_config(
        {"predictor": {"name": "directpred", "rho": 0.5, "eps": 0.1}, "train": {"epochs": 3}, "seed": 1}
    )
    assert config_hash(direct) == shared.trial_id
    lr = sweep_of(tmp_path, GRID, "lr.yaml", {"optim.lr": 0.05})
    assert not {t.trial_id for t in expand(lr)} & set(ids.values())
    assert ids[(0, 0.5, 0.1)] != ids[(1, 0.5, 0.1)]


def test_mapping_values_replace_the_whole_subtree(tmp_path):
    sweep = sweep_of(
        tmp_path,
        """
        name: m
        base:
          predictor: {name: mlp, hidden_dim: 64, bn_affine: true}
        grid:
          predictor:
            - {name: mlp, hidden_dim: 256}
            - {name: directpred, rho: 0.3}
          ema.tau: [0.996]
        """,
    )
    mlp, dp = expand(sweep)
    assert isinstance(mlp.config.predictor, MLPPredictorConfig)
    assert mlp.config.predictor.hidden_dim == 256
    assert mlp.config.predictor.bn_affine is False  # base's MLP setting did not leak into the grid's MLP
    assert isinstance(dp.config.predictor, DirectPredConfig)  # and no hidden_dim reached DirectPred
    assert dp.config.predictor.rho == 0.3
    assert dp.axes == {"predictor": {"name": "directpred", "rho": 0.3}, "ema.tau": 0.996, "seed": 0}


def test_dotted_key_after_a_mapping_key_applies_inside_it(tmp_path):
    sweep = sweep_of(
        tmp_path,
        """
        name: m
        grid:
          predictor: [{name: directpred, eps: 0.0}, {name: plugin}]
          predictor.rho: [0.1, 0.9]
        """,
    )
    assert [(type(t.config.predictor).__name__, t.config.predictor.rho) for t in expand(sweep)] == [
        ("DirectPredConfig", 0.1),
        ("DirectPredConfig", 0.9),
        ("PluginPredictorConfig", 0.1),
        ("PluginPredictorConfig", 0.9),
    ]


CASES = textwrap.dedent("""
    name: c
    base:
      predictor: {name: directpred}
    grid:
      predictor.rho: [0.3, 0.5]
    cases:
      - {predictor: {name: linear}}
      - {optim.lr: 0.1, ema.tau: 0.0}
    seeds: [0, 1]
    """)


def test_cases_add_are_extra_trials_after_the_grid(tmp_path):
    trials = expand(sweep_of(tmp_path, CASES))
    assert len(trials) == (2 + 2) * 2
    assert [t.search for t in trials[:4]] == ["grid", "grid", "cases", "cases"]
    assert [t.axes["seed"] for t in trials] == [0] * 4 + [1] * 4
    linear, lr = trials[2], trials[3]
    assert type(linear.config.predictor).__name__ == "LinearPredictorConfig"
    assert (lr.config.optim.lr, lr.config.ema.tau, lr.config.predictor.name) == (0.1, 0.0, "directpred")
    assert lr.axes == {"optim.lr": 0.1, "ema.tau": 0.0, "seed": 0}


def test_cases_cross_runs_every_case_at_every_grid_point(tmp_path):
    text = CASES.replace("{predictor: {name: linear}}", "{predictor.eps: 0.0}").replace(
        "seeds: [0, 1]", "cases_mode: cross"
    )
    trials = expand(sweep_of(tmp_path, text))
    assert len(trials) == 2 * 2
    got = [(t.axes["predictor.rho"], t.config.predictor.rho, t.config.predictor.eps, t.config.optim.lr) for t in trials]
    assert got == [(0.3, 0.3, 0.0, 0.03), (0.3, 0.3, 0.1, 0.1), (0.5, 0.5, 0.0, 0.03), (0.5, 0.5, 0.1, 0.1)]
    assert trials[0].axes == {"predictor.rho": 0.3, "predictor.eps": 0.0, "seed": 0}


def test_cases_without_a_grid_are_the_trials(tmp_path):
    trials = expand(
        sweep_of(
            tmp_path,
            """
        name: c
        cases:
          - {predictor.name: none}
          - {predictor.name: linear}
        """,
        )
    )
    assert [t.config.predictor.name for t in trials] == ["none", "linear"]
    assert len(expand(sweep_of(tmp_path, "name: b\n", "b.yaml"))) == 1  # no axes at all: the base alone


def test_a_case_equal_to_a_grid_point_runs_once_with_a_note(tmp_path):
    sweep = sweep_of(
        tmp_path,
        """
        name: d
        base:
          predictor: {name: directpred}
        grid:
          predictor.rho: [0.3, 0.5]
        cases:
          - {predictor: {name: directpred, rho: 0.5}}
          - {predictor: {name: linear}}
        seeds: [0, 1, 2]
        """,
    )
    trials, notes = expand(sweep), list(sweep.notes)
    assert len(trials) == (2 + 1) * 3
    assert len({t.trial_id for t in trials}) == len(trials)
    assert notes == ["cases[0] is the same config as grid point predictor.rho=0.5; dropped (3 trials)"]
    assert "trials       9 = 4 cells x 3 seeds - 3 duplicates" in describe(sweep).splitlines()


def test_notes_for_set_keys_a_grid_overrides_and_mappings_that_drop_base_keys(tmp_path):
    sweep = sweep_of(
        tmp_path,
        """
        name: n
        base:
          optim: {weight_decay: 0.0}
        grid:
          ema.tau: [0.99, 0.996]
        cases:
          - {optim: {lr: 0.1}}
        """,
        overrides={"ema.tau": 0.5},
    )
    assert list(sweep.notes) == [
        "--set ema.tau has no effect where grid.ema.tau sets it",
        "cases[0].optim: a mapping replaces all of optim and drops base's optim.weight_decay; "
        "write dotted keys (optim.x: ...) to change single keys",
    ]
    assert expand(sweep)[-1].config.optim.weight_decay == 4e-4  # what the note warns about


def test_search_sweeps_expand_to_nothing_and_sampled_points_become_trials(tmp_path):
    sweep = sweep_of(
        tmp_path,
        """
        name: s
        base:
          predictor: {name: directpred}
        seeds: [3]
        search:
          num_samples: 4
          space:
            optim.lr: {loguniform: [0.001, 0.1]}
            predictor.eps: {uniform: [0.0, 0.5]}
        """,
    )
    assert expand(sweep) == []
    t = search_trial(sweep, {"optim.lr": 0.01, "predictor.eps": 0.2})
    assert (t.config.optim.lr, t.config.predictor.eps, t.config.seed, t.search) == (0.01, 0.2, 3, "optuna")
    assert t.trial_id == config_hash(t.config)
    assert t.axes == {"optim.lr": 0.01, "predictor.eps": 0.2, "seed": 3}
    assert sweep.search_base["seed"] == 3
    text = describe(sweep)
    assert "trials       4 sampled by optuna (seed 0), maximising probe_top1_best" in text
    assert "space        optim.lr ~ loguniform(0.001, 0.1)" in text


def test_axes_of_and_labels_show_mapping_values_compactly(tmp_path):
    sweep = sweep_of(
        tmp_path,
        """
        name: a
        grid:
          predictor: [{name: none}, {name: directpred, rho: 0.3, eps: 0.1}]
          ema.tau: [0.996, 0.0]
        cases:
          - {optim.lr: 0.1}
        seeds: [0, 1]
        """,
    )
    assert axes_of(sweep) == {
        "predictor": ["none", "directpred(rho=0.3, eps=0.1)"],
        "ema.tau": [0.996, 0.0],
        "cases": ["optim.lr=0.1"],
        "seed": [0, 1],
    }
    assert expand(sweep)[2].label == "predictor=directpred(rho=0.3, eps=0.1), ema.tau=0.996, seed=0"
    assert compact({"a": True, "b": None, "c": [1, 2.5]}) == "(a=true, b=null, c=[1, 2.5])"


def test_describe_lists_what_ablate_check_promises(tmp_path):
    sweep = sweep_of(
        tmp_path,
        CASES.replace("name: c", "name: c\ndescription: |\n  First line.\n  Second line.")
        + "resources: {cpu: 2, gpu: 0.5}\nmax_concurrent: 3\n"
        "table: {rows: [predictor.rho], cols: [predictor.name], metric: knn_top1, paper: table6}\n",
    )
    lines = describe(sweep).splitlines()
    assert lines[0] == f"sweep        {sweep.path}"
    assert lines[1:4] == [
        "name         c  (kind ssl)",
        "description  First line.",
        "trials       8 = 4 cells x 2 seeds",
    ]
    for line in [
        "axes         predictor.rho (2): 0.3, 0.5",
        "cases        [0] predictor=linear",
        "             [1] optim.lr=0.1, ema.tau=0",
        "seeds        0, 1",
        "resources    cpu 2, gpu 0.5 per trial",
        "concurrency  3",
        "metric       probe_top1_best (max)",
        "table        rows predictor.rho x cols predictor.name: knn_top1 (paper table6)",
        "results      results/c/",
    ]:
        assert line in lines


def test_smoke_sweep_loads_and_expands_to_eight_trials():
    sweep = read_sweep(REPO / "sweeps" / "smoke.yaml")
    trials = expand(sweep)
    assert len(trials) == 8
    assert [(t.config.predictor.name, t.config.ema.tau) for t in trials] == [
        (p, tau) for p in ("none", "linear", "mlp", "directpred") for tau in (0.996, 0.0)
    ]
    assert all(t.config.data.name == "digits" and t.config.train.epochs >= 1 for t in trials)
    assert sweep.table is not None and sweep.table.metric == "z_std"


@pytest.mark.parametrize("seeds", [[0], [4, 2]])
def test_each_seed_gets_every_cell(tmp_path, seeds):
    trials = expand(sweep_of(tmp_path, GRID.replace("seeds: [0, 1]", f"seeds: {seeds}")))
    cells = len(trials) // len(seeds)
    for i, seed in enumerate(seeds):
        assert {t.axes["seed"] for t in trials[i * cells : (i + 1) * cells]} == {seed}
