"""A sweep file's own limits, each one line before any trial is built: how many trials it makes
(counted before anything is expanded), its numbers, its name; a sweep file given to ``ablate trial``;
the fix that a missing dataset suggests."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from ablate.config.trial import TrialConfig
from ablate.errors import UserError
from ablate.sweep import expand
from ablate.sweep.load import read_sweep
from ablate.sweep.schema import MAX_TRIALS, NAME_MAX, SweepFile

REPO = Path(__file__).resolve().parents[3]


def error_of(tmp_path: Path, text: str, overrides: dict | None = None) -> tuple[Path, str]:
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    with pytest.raises(UserError) as e:
        read_sweep(path, overrides, validate_paths=False)
    assert "\n" not in str(e.value)
    return path, str(e.value)


def test_a_sweep_of_too_many_trials_is_refused_before_it_is_expanded(tmp_path, monkeypatch):
    def expanded(*_):
        raise AssertionError("the grid was expanded before its size was checked")

    monkeypatch.setattr(expand, "cells", expanded)
    axes = "".join(f"  {k}: [{', '.join(str(v) for v in range(2, 12))}]\n" for k in ("train.epochs", "eval.every"))
    # five more axes: keys no config has, as the count is checked before any trial is built
    axes += "".join(f"  x{i}: [{', '.join(str(v) for v in range(10))}]\n" for i in range(5))
    path, message = error_of(tmp_path, f"name: t\nbase: {{}}\ngrid:\n{axes}")
    assert message == (
        f"{path}:3: grid: makes 10,000,000 trials (10 x 10 x 10 x 10 x 10 x 10 x 10 grid points x 1 seed), more "
        f"than the {MAX_TRIALS:,} a sweep may have; split it into several sweep files, or sample the space with search:"
    )
    seeds = list(range(MAX_TRIALS + 1))
    path, message = error_of(
        tmp_path, "name: t\nbase: {}\ncases: [{optim.lr: 0.1}, {optim.lr: 0.2}]\n", {"seeds": seeds}
    )
    assert message.startswith(
        f"{path}:3: cases: makes {2 * len(seeds):,} trials (2 cases x {len(seeds)} seeds), more than "
    )


@pytest.mark.parametrize(
    "text,message",
    [
        ("resources: {cpu: .inf}", "{f}:3: resources.cpu: must be a finite number (not .nan or .inf), got inf"),
        ("resources: {gpu: .nan}", "{f}:3: resources.gpu: must be a finite number (not .nan or .inf), got nan"),
        ("resources: {cpu: 1e300}", "{f}:3: resources.cpu: must be <= 4096, got 1e+300"),
        ("table: {scale: .nan}", "{f}:3: table.scale: must be a finite number (not .nan or .inf), got nan"),
        (
            "seeds: [0, 18446744073709551616]",
            "{f}:3: seeds[1]: must be an integer from -2**63 to 2**63 - 1, got 18446744073709551616",
        ),
        (
            "max_concurrent: 100000000000000000000",
            "{f}:3: max_concurrent: must be an integer from -2**63 to 2**63 - 1, got 100000000000000000000",
        ),
        ("max_failures: 1000000", "{f}:3: max_failures: must be <= 1000, got 1000000"),
        (
            "grid: {optim.lr: [0.1, .nan]}",
            "{f}:3: optim.lr: must be a finite number (not .nan or .inf), got nan (in grid point optim.lr=nan)",
        ),
        (
            "search: {space: {optim.lr: {uniform: [0.01, .inf]}}}",
            "{f}:3: search.space.optim.lr: uniform needs [low, high] (finite numbers), got [0.01, inf]",
        ),
        (
            "search: {seed: 4294967296, space: {optim.lr: {choice: [0.1]}}}",  # Optuna's sampler takes < 2**32
            "{f}:3: search.seed: must be <= 4294967295, got 4294967296",
        ),
        (
            "search: {num_samples: 1000000000, space: {optim.lr: {choice: [0.1]}}}",
            f"{{f}}:3: search.num_samples: must be <= {MAX_TRIALS}, got 1000000000",
        ),
    ],
)
def test_the_sweeps_own_numbers_are_bounded(tmp_path, text, message):
    path, got = error_of(tmp_path, f"name: t\nbase: {{}}\n{text}\n")
    assert got == message.format(f=path)


@pytest.mark.parametrize(
    "name,problem",
    [
        ("a" * (NAME_MAX + 1), f"is {NAME_MAX + 1} characters long; at most {NAME_MAX} (it names the results folder)"),
        ("paper", "'paper' is taken: results/paper/ holds the paper's numbers; choose another name"),
        ("Bench", "'Bench' is taken: results/bench/ is where ablate bench writes; choose another name"),
        ("smoke.old-20250101-120000", "'smoke.old-20250101-120000' has '.old-' in it, the mark of the folders"),
    ],
)
def test_names_that_cannot_be_a_results_folder_of_their_own_are_refused(tmp_path, name, problem):
    path, message = error_of(tmp_path, f"name: {name}\nbase: {{}}\n")
    assert message.startswith(f"{path}:1: name: {problem}")


def test_a_sweep_file_given_to_trial_says_to_run_it():
    from ablate.kinds.single import SWEEP_ONLY_KEYS, trial_config

    smoke = REPO / "sweeps" / "smoke.yaml"
    with pytest.raises(UserError) as e:
        trial_config(smoke, {})
    assert str(e.value) == (
        f"{smoke} is a sweep file; run it with `ablate run {smoke}` (ablate trial takes one trial's config)"
    )
    sweep_keys = {f.name for f in dataclasses.fields(SweepFile)}
    trial_keys = {f.name for f in dataclasses.fields(TrialConfig)}
    assert set(SWEEP_ONLY_KEYS) <= sweep_keys - trial_keys


def test_a_missing_dataset_names_the_command_that_can_skip_the_check(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: t\nbase: {data: {name: stl10, root: /nonexistent/ablate-test/stl10}}\n")
    with pytest.raises(UserError) as e:
        read_sweep(path)
    assert str(e.value).endswith("or check the rest of the sweep without it with `ablate check --no-data`")
