"""Standard output that goes away, fills up or is closed, for every command alike (``ablate.cli.main``):
a reader that closed the pipe (``| head``) ends the command quietly with 141 (128 + SIGPIPE); a
full device is one line and exit 2; a closed stdout is /dev/null (the command still runs). Each
case needs a real descriptor, so each runs ``python -m ablate.cli`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.results.layout import SweepDir

SWEEP = """\
name: tiny
base: {train: {epochs: 1, device: cpu}}
grid: {predictor.name: [linear, directpred]}
seeds: [0, 1]
resources: {cpu: 1}
"""


@pytest.fixture
def sweep_file(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SWEEP)
    return path


@pytest.fixture
def results_folder(tmp_path) -> Path:
    """A results folder as ``ablate run`` starts it (the sweep file kept; no trial finished yet)."""
    folder = tmp_path / "results" / "tiny"
    folder.mkdir(parents=True)
    SweepDir.at(folder).sweep_file.write_text(SWEEP)
    return folder


def ablate(args: list[str], cwd: Path, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args], cwd=cwd, stderr=subprocess.PIPE, text=True, timeout=120, **popen
    )


def commands(sweep_file: Path, results_folder: Path) -> dict[str, list[str]]:
    return {
        "submit --dry-run": ["submit", str(sweep_file), "--dry-run"],
        "status": ["status", str(results_folder)],
        "--help": ["--help"],
    }


@pytest.mark.parametrize("command", ["submit --dry-run", "status", "--help"])
def test_a_reader_that_went_away_ends_the_command_quietly_with_141(command, sweep_file, results_folder):
    read, write = os.pipe()
    os.close(read)  # `| head -1` after head has exited: every write gets EPIPE
    try:
        done = ablate(commands(sweep_file, results_folder)[command], sweep_file.parent, stdout=write)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["submit --dry-run", "status"])
def test_a_full_device_is_one_line_and_exit_2(command, sweep_file, results_folder):
    with open("/dev/full", "w") as full:
        done = ablate(commands(sweep_file, results_folder)[command], sweep_file.parent, stdout=full)
    assert (done.returncode, done.stderr) == (
        2,
        "ablate: error: cannot write to standard output: No space left on device\n",
    )


def close_stdout() -> None:
    os.close(1)  # `ablate ... >&-`


def test_a_closed_stdout_drops_the_output_and_the_command_runs(sweep_file, results_folder):
    for command in ("submit --dry-run", "status"):
        done = ablate(commands(sweep_file, results_folder)[command], sweep_file.parent, preexec_fn=close_stdout)
        assert (done.returncode, done.stderr) == (0, ""), command


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_closed_stdout_is_dev_null_so_no_file_the_command_opens_takes_its_number(results_folder):
    code = (
        "import os, sys; from ablate import cli; code = cli.main(['status', sys.argv[1]]); "
        "print(code, os.readlink('/proc/self/fd/1'), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(results_folder)],
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        preexec_fn=close_stdout,
    )
    assert done.stderr == f"0 {os.devnull}\n"
