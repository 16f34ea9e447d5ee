"""Sweep files: loading, env expansion, --set, and strict validation with exact one-line messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ablate.config.yamlfile import read_yaml
from ablate.errors import UserError
from ablate.kinds.registry import SSL
from ablate.results.layout import sweep_location_text
from ablate.sweep.load import read_sweep
from ablate.sweep.schema import Distribution

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path: Path, overrides: dict | None = None, **kw) -> str:
    with pytest.raises(UserError) as e:
        read_sweep(path, overrides, **kw)
    message = str(e.value)
    assert "\n" not in message  # one line, always
    return message


# ------------------------------------------------------------------ bad sweep files, exact messages
# (id, file text, expected message with {f} = the file's path). The line in each message is the line
# of the offending key in the text (line 1 = "name: t").
BAD = [
    (
        "unknown top-level key with did-you-mean",
        """
        name: t
        base: {}
        seed: [0, 1]
        """,
        "{f}:3: seed: unknown key; did you mean 'seeds'?",
    ),
    (
        "unknown config key in base",
        """
        name: t
        base:
          optim:
            momentun: 0.9
        """,
        "{f}:4: optim.momentun: unknown key; did you mean 'momentum'?",
    ),
    (
        "type error",
        """
        name: t
        base:
          train: {epochs: ten}
        """,
        "{f}:3: train.epochs: expected int, got 'ten'",
    ),
    (
        "lr < 0",
        """
        name: t
        base:
          optim:
            lr: -0.1
        """,
        "{f}:4: optim.lr: must be > 0, got -0.1",
    ),
    (
        "eps < 0",
        """
        name: t
        base:
          predictor:
            name: directpred
            eps: -0.1
        """,
        "{f}:5: predictor.eps: must be >= 0 unless eps_inside is true (Table 7 uses eps = -c inside the root), got -0.1",
    ),
    (
        "freq 0",
        """
        name: t
        base:
          predictor: {name: directpred, freq: 0}
        """,
        "{f}:3: predictor.freq: must be >= 1, got 0",
    ),
    (
        "tau 1.5",
        """
        name: t
        base:
          ema:
            tau: 1.5
        """,
        "{f}:4: ema.tau: must be <= 1, got 1.5",
    ),
    (
        "predictor kwarg of another predictor in base",
        """
        name: t
        base:
          predictor:
            name: linear
            hidden_dim: 512
        """,
        "{f}:5: predictor.hidden_dim: unknown key for predictor 'linear' (valid keys: name, bias, symmetric)",
    ),
    (
        "grid switches the predictor under a base kwarg: the grid line is named",
        """
        name: t
        base:
          predictor: {name: directpred, rho: 0.5}
        grid:
          ema.tau: [0.99]
          predictor.name: [directpred, linear]
        """,
        "{f}:6: predictor.rho: unknown key for predictor 'linear' (valid keys: name, bias, symmetric) "
        "(in grid point ema.tau=0.99, predictor.name=linear)",
    ),
    (
        "grid mapping value with another predictor's kwarg: the item's line",
        """
        name: t
        grid:
          predictor:
            - {name: mlp, hidden_dim: 64}
            - {name: linear, hidden_dim: 64}
        """,
        "{f}:5: predictor.hidden_dim: unknown key for predictor 'linear' (valid keys: name, bias, symmetric) "
        "(in grid point predictor=linear(hidden_dim=64))",
    ),
    (
        "grid value out of range: the item's line, not the base's",
        """
        name: t
        base:
          optim: {lr: 0.1}
        grid:
          optim.lr:
            - 0.05
            - -0.2
        """,
        "{f}:7: optim.lr: must be > 0, got -0.2 (in grid point optim.lr=-0.2)",
    ),
    (
        "unknown grid key",
        """
        name: t
        grid:
          ema.tua: [0.9, 0.99]
        """,
        "{f}:3: ema.tua: unknown key; did you mean 'tau'? (in grid point ema.tua=0.9)",
    ),
    (
        "grid value not a list",
        """
        name: t
        grid:
          optim.lr: 0.1
        """,
        "{f}:3: grid.optim.lr: expected a list of values, got 0.1; write [0.1] for a single value or move it to base",
    ),
    (
        "grid value an empty list",
        """
        name: t
        grid:
          optim.lr: []
        """,
        "{f}:3: grid.optim.lr: is an empty list (the sweep would have no trials); give at least one value or remove the key",
    ),
    (
        "grid sub-tree after its own leaf",
        """
        name: t
        grid:
          predictor.rho: [0.3]
          predictor: [{name: directpred}]
        """,
        "{f}:4: grid.predictor: replaces the whole sub-tree that grid.predictor.rho (above it) sets; "
        "list predictor before predictor.rho so the values of predictor.rho apply inside it",
    ),
    (
        "seed in the grid",
        """
        name: t
        grid:
          seed: [1, 2]
        """,
        "{f}:3: grid.seed: the seed is set by the seeds axis; remove it here and list seeds in seeds: [0, 1, 2]",
    ),
    (
        "case with another predictor's kwarg",
        """
        name: t
        cases:
          - {predictor: {name: mlp}}
          - {predictor: {name: linear, rho: 0.3}}
        """,
        "{f}:4: predictor.rho: unknown key for predictor 'linear' (valid keys: name, bias, symmetric) (in cases[1])",
    ),
    (
        "missing dataset root",
        """
        name: t
        base:
          data:
            name: stl10
            root: /nonexistent/ablate-test/stl10
        """,
        "{f}:5: data.root: directory '/nonexistent/ablate-test/stl10' does not exist; "
        "get it with `ablate data fetch stl10 --root /nonexistent/ablate-test` and check it with `ablate data check stl10 "
        "--root /nonexistent/ablate-test`, or check the rest of the sweep without it with `ablate check --no-data`",
    ),
    (
        "dataset that needs a root without one",
        """
        name: t
        base:
          data:
            name: cifar10
        """,
        "{f}:3: data.root: dataset 'cifar10' needs data.root, the directory that holds it (get it with `ablate data fetch cifar10`)",
    ),
    (
        "unknown metric",
        """
        name: t
        metric: {name: probe_top1_bset}
        """,
        "{f}:2: metric.name: unknown metric 'probe_top1_bset' for kind ssl; did you mean 'probe_top1_best'?",
    ),
    (
        "unknown table metric",
        """
        name: t
        table:
          rows: [predictor.name]
          metric: accuracy
        """,
        "{f}:4: table.metric: unknown metric 'accuracy' for kind ssl; choose one of {ssl_metrics}",
    ),
    (
        "table row that is not a config key",
        """
        name: t
        table:
          rows: [predictor.name]
          cols:
            - predictor.rh
        """,
        "{f}:5: table.cols[0]: 'predictor.rh' is not a config key of kind ssl; did you mean 'predictor.rho'?",
    ),
    (
        "search together with grid",
        """
        name: t
        grid:
          optim.lr: [0.01, 0.1]
        search:
          space:
            predictor.rho: {choice: [0.3, 0.5]}
        """,
        "{f}:2: grid: cannot be combined with search (both choose the trials); move the grid's values into "
        "search.space as {{choice: [...]}} or remove search",
    ),
    (
        "search with an unknown distribution",
        """
        name: t
        search:
          space:
            optim.lr: {logunform: [0.001, 0.1]}
        """,
        "{f}:4: search.space.optim.lr: unknown distribution 'logunform'; choose one of uniform, loguniform, "
        "quniform, randint, choice; did you mean 'loguniform'?",
    ),
    (
        "search with low > high",
        """
        name: t
        search:
          space:
            predictor.eps: {uniform: [0.5, 0.0]}
        """,
        "{f}:4: search.space.predictor.eps: low 0.5 >= high 0.0; write [low, high] with low < high",
    ),
    (
        "search with loguniform from 0",
        """
        name: t
        search:
          space:
            optim.lr: {loguniform: [0, 0.1]}
        """,
        "{f}:4: search.space.optim.lr: loguniform needs low > 0, got 0; use uniform for ranges that include 0",
    ),
    (
        "search range that leaves the config's range",
        """
        name: t
        base:
          predictor: {name: directpred}
        search:
          space:
            predictor.eps: {uniform: [-0.1, 0.5]}
        """,
        "{f}:6: predictor.eps: must be >= 0 unless eps_inside is true (Table 7 uses eps = -c inside the root), "
        "got -0.1 (in search.space predictor.eps = -0.1)",
    ),
    (
        "search over an unknown config key",
        """
        name: t
        search:
          space:
            optim.lrr: {loguniform: [0.001, 0.1]}
        """,
        "{f}:4: optim.lrr: unknown key; did you mean 'lr'? (in search.space optim.lrr = 0.001)",
    ),
    (
        "table rows not a list",
        """
        name: t
        table:
          rows: predictor.name
        """,
        "{f}:3: table.rows: expected a list, got 'predictor.name'; write ['predictor.name']",
    ),
    (
        "case not a mapping",
        """
        name: t
        cases:
          - {predictor.name: none}
          - linear
        """,
        "{f}:4: cases[1]: expected a mapping of overrides, e.g. {{predictor.name: linear}}, got 'linear'",
    ),
    (
        "search with several seeds",
        """
        name: t
        seeds: [0, 1]
        search:
          space:
            optim.lr: {loguniform: [0.001, 0.1]}
        """,
        "{f}:2: seeds: a search runs each sampled point once; give one seed, e.g. seeds: [0]",
    ),
    (
        "env var unset",
        """
        name: t
        base:
          data: {name: stl10, root: "${ABLATE_TEST_UNSET_VAR}/stl10"}
        """,
        "{f}:3: base.data.root: environment variable ABLATE_TEST_UNSET_VAR is not set; "
        "export ABLATE_TEST_UNSET_VAR=... or write ${{ABLATE_TEST_UNSET_VAR:-default}}",
    ),
    (
        "negative seed",
        """
        name: t
        seeds:
          - 0
          - -1
        """,
        "{f}:4: seeds[1]: must be >= 0, got -1",
    ),
    (
        "duplicated seed",
        """
        name: t
        seeds: [0, 1, 0]
        """,
        "{f}:2: seeds[2]: seed 0 is listed twice; list each seed once",
    ),
    (
        "seed not an int",
        """
        name: t
        seeds: [0, 1.5]
        """,
        "{f}:2: seeds[1]: expected int, got 1.5",
    ),
    (
        "seeds not a list",
        """
        name: t
        seeds: 3
        """,
        "{f}:2: seeds: expected a list, got 3; write [3]",
    ),
    (
        "negative cpu",
        """
        name: t
        resources: {cpu: -1}
        """,
        "{f}:2: resources.cpu: must be >= 0, got -1.0",
    ),
    (
        "fractional gpu above 1",
        """
        name: t
        resources:
          gpu: 1.5
        """,
        "{f}:3: resources.gpu: 1.5 GPUs is neither a fraction (< 1, shared GPU) nor a whole number; use e.g. 0.5 or 2",
    ),
    (
        "gpu and gpus_per_worker disagree",
        """
        name: t
        resources: {gpu: 1, workers: 2, gpus_per_worker: 1}
        """,
        "{f}:2: resources.gpus_per_worker: 1 x 2 workers disagrees with gpu 1; set only one of gpu (per trial) and gpus_per_worker",
    ),
    (
        "unknown tracker",
        """
        name: t
        logging: [tensorbord]
        """,
        "{f}:2: logging[0]: must be one of 'tensorboard', 'mlflow', 'wandb', got 'tensorbord'; did you mean 'tensorboard'?",
    ),
    (
        "unknown kind",
        """
        name: t
        base:
          kind: sll
        """,
        "{f}:3: base.kind: unknown trial kind 'sll'; choose one of ssl, linear_dynamics; did you mean 'ssl'?",
    ),
    (
        "bad sweep name",
        """
        name: ../x
        """,
        "{f}:1: name: '../x' is not a folder name; use letters, digits, _ . - (not starting with . or _), e.g. stl10_directpred",
    ),
    (
        "missing name",
        """
        base: {}
        """,
        "{f}: name: is required; add e.g. name: sweep (results go to results/<name>/)",
    ),
    (
        "key given twice",
        """
        name: t
        base:
          optim: {lr: 0.1}
          optim: {lr: 0.2}
        """,
        "{f}:4: base.optim: given twice (also on line 3); keep one",
    ),
    (
        "cases_mode typo",
        """
        name: t
        cases_mode: crossed
        """,
        "{f}:2: cases_mode: must be one of 'add', 'cross', got 'crossed'; did you mean 'cross'?",
    ),
    (
        "weight decay in scientific notation is still range-checked",
        """
        name: t
        base:
          optim: {lr: 1e-3, weight_decay: -4e-4}
        """,
        "{f}:3: optim.weight_decay: must be >= 0, got -0.0004",
    ),
]


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in BAD], ids=[i for i, _, _ in BAD])
def test_bad_sweep_file_gives_exact_one_line_message(tmp_path, monkeypatch, text, expected):
    monkeypatch.delenv("ABLATE_TEST_UNSET_VAR", raising=False)
    path = write(tmp_path, text)
    ssl_metrics = ", ".join(SSL.metric_names(numeric_only=True))  # the list grows with the schema
    assert error_of(path) == expected.format(f=path, ssl_metrics=ssl_metrics)


def test_bad_set_override_is_reported_as_set(tmp_path):
    path = write(tmp_path, "name: t\nbase:\n  optim: {lr: 0.1}\n")
    assert error_of(path, {"optim.lr": -1}) == "--set: optim.lr: must be > 0, got -1.0"
    assert error_of(path, {"seeds": [0, 0]}) == "--set: seeds[1]: seed 0 is listed twice; list each seed once"


# ------------------------------------------------------------------ loading
def test_set_overrides_go_to_base_or_to_the_top_level(tmp_path):
    path = write(
        tmp_path,
        """
        name: t
        base:
          train: {epochs: 100}
        seeds: [0, 1, 2, 3, 4]
        """,
    )
    sweep = read_sweep(path, {"train.epochs": 2, "base.optim.lr": 0.5, "seeds": [7], "resources.cpu": 2})
    assert sweep.base["train"] == {"epochs": 2}
    assert sweep.base["optim"] == {"lr": 0.5}
    assert sweep.seeds == (7,)
    assert sweep.resources.cpu == 2
    assert sweep.overrides == {"train.epochs": 2, "base.optim.lr": 0.5, "seeds": [7], "resources.cpu": 2}


def test_env_vars_expand_with_defaults_and_literal_dollar(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_TEST_ROOT", str(tmp_path))
    monkeypatch.delenv("ABLATE_TEST_UNSET_VAR", raising=False)
    monkeypatch.setenv("ABLATE_TEST_EMPTY", "")
    path = write(
        tmp_path,
        """
        name: t
        description: "costs $$5 and ${ABLATE_TEST_UNSET_VAR:-nothing}, ${ABLATE_TEST_EMPTY:-empty}"
        base:
          data: {name: stl10, root: "${ABLATE_TEST_ROOT}/stl10"}
        storage: ${ABLATE_TEST_UNSET_VAR:-/tmp/results}
        """,
    )
    sweep = read_sweep(path, validate_paths=False)
    assert sweep.base["data"]["root"] == f"{tmp_path}/stl10"
    assert sweep.description == "costs $5 and nothing, empty"
    assert sweep.storage == "/tmp/results"
    assert sweep_location_text(sweep.name, sweep.storage) == "/tmp/results/t"
    assert "${ABLATE_TEST_ROOT}" in sweep.text  # the raw text is kept for reports


def test_malformed_variable_is_an_error(tmp_path):
    path = write(tmp_path, 'name: t\nstorage: "${ABLATE_X"\n')
    assert (
        error_of(path) == f"{path}:2: storage: malformed variable in '${{ABLATE_X'; write ${{VAR}} or ${{VAR:-default}}"
    )


def test_validate_paths_false_skips_the_dataset_check(tmp_path):
    path = write(tmp_path, "name: t\nbase:\n  data: {name: stl10, root: /nonexistent/ablate-test}\n")
    sweep = read_sweep(path, validate_paths=False)
    assert sweep.base["data"]["root"] == "/nonexistent/ablate-test"


def test_base_invalid_alone_but_completed_by_the_grid_is_fine(tmp_path):
    (tmp_path / "d").mkdir()
    path = write(tmp_path, f"name: t\nbase:\n  data: {{name: stl10}}\ngrid:\n  data.root: [{tmp_path}/d]\n")
    assert read_sweep(path).grid[0].values == (f"{tmp_path}/d",)


def test_read_yaml_records_lines_of_keys_and_list_items_and_reads_1e_floats(tmp_path):
    path = write(
        tmp_path,
        """
        name: t
        grid:
          optim.lr:
            - 1e-3
            - 3.0e-2
          predictor: [{name: mlp}]
        """,
    )
    data, lines, text = read_yaml(path)
    assert data["grid"]["optim.lr"] == [0.001, 0.03]
    assert lines["grid.optim.lr"] == 3 and lines["grid.optim.lr[0]"] == 4 and lines["grid.optim.lr[1]"] == 5
    assert lines["grid.predictor[0].name"] == 6
    assert text.startswith("name: t")


def test_schema_defaults_and_resources_normalised(tmp_path):
    path = write(tmp_path, "name: t\nresources: {cpu: 4, gpu: 2, workers: 2}\n")
    sweep = read_sweep(path)
    assert sweep.kind == "ssl" and sweep.seeds == (0,) and sweep.cases_mode == "add"
    assert (sweep.metric.name, sweep.metric.mode) == ("probe_top1_best", "max")
    assert (sweep.resources.gpu, sweep.resources.gpus_per_worker) == (2, 1)
    assert sweep.checkpoint.every == 0 and sweep.checkpoint.keep == 2
    assert sweep_location_text(sweep.name, sweep.storage) == "results/t"
    sweep = read_sweep(write(tmp_path, "name: t\nresources: {workers: 4, gpus_per_worker: 0.5}\n", "b.yaml"))
    assert (sweep.resources.gpu, sweep.resources.gpus_per_worker) == (2, 0.5)


def test_search_sweep_loads_its_space_as_distributions(tmp_path):
    path = write(
        tmp_path,
        """
        name: t
        base:
          predictor: {name: directpred}
        metric: {name: knn_top1, mode: max}
        search:
          num_samples: 20
          space:
            optim.lr: {loguniform: [0.001, 0.1]}
            predictor.eps: {uniform: [0.0, 0.5]}
            predictor.rho: {choice: [0.3, 0.5]}
            train.epochs: {randint: [1, 5]}
        """,
    )
    search = read_sweep(path).search
    assert search.space == {
        "optim.lr": Distribution("loguniform", (0.001, 0.1)),
        "predictor.eps": Distribution("uniform", (0.0, 0.5)),
        "predictor.rho": Distribution("choice", (0.3, 0.5)),
        "train.epochs": Distribution("randint", (1, 5)),
    }
    assert (search.metric, search.mode, search.num_samples, search.algo) == ("knn_top1", "max", 20, "optuna")


def test_search_with_cases_is_refused(tmp_path):
    path = write(
        tmp_path,
        """
        name: t
        cases:
          - {optim.lr: 0.1}
        search:
          space: {optim.lr: {loguniform: [0.001, 0.1]}}
        """,
    )
    assert (
        error_of(path)
        == f"{path}:2: cases: cannot be combined with search; run the cases as a separate sweep or remove search"
    )


def test_linear_dynamics_kind_uses_its_own_metrics(tmp_path):
    pytest.importorskip("ablate.theory.dynamics")
    path = write(
        tmp_path,
        """
        name: t
        base: {kind: linear_dynamics, steps: 10}
        grid:
          eta: [0.0, 0.3]
        table: {rows: [eta], metric: w_norm, scale: 1}
        """,
    )
    sweep = read_sweep(path)
    assert sweep.kind == "linear_dynamics" and sweep.metric.name == "f_max"
    bad = write(tmp_path, "name: t\nbase: {kind: linear_dynamics}\nmetric: {name: probe_top1_best}\n", "bad.yaml")
    assert error_of(bad).startswith(f"{bad}:3: metric.name: unknown metric 'probe_top1_best' for kind linear_dynamics")


def test_every_sweep_in_the_repository_loads():
    for path in sorted((REPO / "sweeps").glob("*.yaml")):
        sweep = read_sweep(path, validate_paths=False)
        assert sweep.trial_kind.Config is not None, path
