"""How an interrupted ``ablate run`` says to resume: the exact command, never one that starts over."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest

from ablate.cli import resume_command
from ablate.runner.recorder import RunSummary


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "x.yaml", "--restart"], ["run", "x.yaml"]),
        (
            ["run", "my sweeps/x.yaml", "--set", "grid={a: [1, 2]}", "--restart"],
            ["run", "my sweeps/x.yaml", "--set", "grid={a: [1, 2]}"],
        ),
        (
            ["run", "x.yaml", "--rest", "--storage", "s3://b/p"],
            ["run", "x.yaml", "--storage", "s3://b/p"],
        ),  # argparse's abbreviation
        (["run", "x.yaml", "--r"], ["run", "x.yaml"]),
        (["run", "x.yaml", "--max-concurrent", "2"], ["run", "x.yaml", "--max-concurrent", "2"]),  # the same command
        (["run", "--", "--restart"], ["run", "--", "--restart"]),  # after "--" a word is an argument, not the flag
    ],
)
def test_resume_command_is_the_same_command_without_restart(argv, expected):
    line = resume_command(argv)
    assert shlex.split(line) == ["ablate", *expected], line


def _summary(**kw) -> RunSummary:
    return RunSummary("results/x", SimpleNamespace(name="x"), 4, 1, 2, interrupted=True, **kw)


def test_an_interrupted_run_names_the_resuming_command():
    line = _summary(restart=True).describe(resume="ablate run x.yaml").splitlines()[-1]
    assert line == "interrupted: finished trials are saved; to resume: ablate run x.yaml"


def test_an_interrupted_restart_from_python_is_told_to_run_again_without_restart():
    assert _summary(restart=True).describe().endswith("to resume: run it again without restart")
    assert _summary().describe().endswith("to resume: run it again")
    assert "resume" not in RunSummary("r", SimpleNamespace(name="x"), 4, 1, 3).describe()
