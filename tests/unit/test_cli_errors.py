"""Every mistake about a flag or the environment is ONE line ``ablate: error: ...`` and exit code 2,
found before any compute: counts below their minimum, argparse's own refusals, and output paths or
storage that could never be written. In-process (``ablate.cli.main``); nothing here trains or starts Ray."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ablate.cli import main

MISSING = "no-such-sweep.yaml"  # a positional that would fail later: each refusal must come first
LINUX_PROC = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc (read-only even for root)")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ablate: error: "), err
    return lines[0]


# ---------------------------------------------------------------- counts and levels
@pytest.mark.parametrize(
    ("argv", "flag", "minimum"),
    [
        (["run", MISSING, "--max-concurrent", "-1"], "--max-concurrent", 1),
        (["run", MISSING, "--max-concurrent", "0"], "--max-concurrent", 1),
        (["submit", MISSING, "--max-concurrent", "0"], "--max-concurrent", 1),
        (["submit", MISSING, "--nodes", "0"], "--nodes", 1),
        (["submit", MISSING, "--cpus-per-task", "-2"], "--cpus-per-task", 1),
        (["submit", MISSING, "--gpus-per-node", "-1"], "--gpus-per-node", 0),
        (["submit", MISSING, "--grace", "-5"], "--grace", 0),
        (["submit", MISSING, "--max-requeues", "-1"], "--max-requeues", 0),
        (["bench", "--threads", "0"], "--threads", 1),
        (["export", MISSING, "--trial", "ab", "--epoch", "0"], "--epoch", 1),
        (["export", MISSING, "--trial", "ab", "--head-classes", "0"], "--head-classes", 1),
        (["run", MISSING, "--max-concurrent", "two"], "--max-concurrent", 1),
    ],
)
def test_a_count_below_its_minimum_is_refused_while_parsing(argv, flag, minimum, capsys):
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert f"argument {flag}: expected a whole number >= {minimum}, got '{argv[-1]}'" in line
    assert line.endswith(f"see ablate {argv[0]} --help")


@pytest.mark.parametrize("value", ["2", "0", "1", "-0.5", "high"])
def test_a_confidence_level_outside_0_1_is_refused_before_any_results_are_read(value, capsys):
    assert main(["compare", MISSING, "--a", "k=1", "--b", "k=2", "--confidence", value]) == 2
    assert f"argument --confidence: expected a number between 0 and 1 (e.g. 0.95), got '{value}'" in one_error_line(
        capsys
    )


def test_argparse_refusals_are_one_line_naming_the_help(capsys):
    assert main(["run"]) == 2
    assert one_error_line(capsys) == (
        "ablate: error: the following arguments are required: sweep; see ablate run --help"
    )
    assert main(["runn", "x.yaml"]) == 2
    assert "invalid choice: 'runn'" in one_error_line(capsys)


# ---------------------------------------------------------------- output paths
def output_commands(path: Path) -> dict[str, list[str]]:
    """Each command that writes a file the user names, with that file as ``path``."""
    return {
        "report --out": ["report", MISSING, "--out", str(path)],
        "export --to": ["export", MISSING, "--trial", "ab", "--to", str(path)],
        "trial --out": ["trial", "--out", str(path)],
    }


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Files that could never be written, and what the one line says about each."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder.pt").mkdir()
    return {
        "under a file": (tmp_path / "a_file" / "out.parquet", r"cannot be created: .*/a_file is a file, not a folder"),
        "a folder": (tmp_path / "a_folder.pt", "is a folder; give a file name"),
    }


@pytest.mark.parametrize("command", ["report --out", "export --to", "trial --out"])
@pytest.mark.parametrize("case", ["under a file", "a folder"])
def test_an_output_file_that_cannot_be_written_is_refused_before_any_work(command, case, tmp_path, capsys):
    path, reason = bad_files(tmp_path)[case]
    argv = output_commands(path)[command]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert f"{command.split()[1]} {path}: " in line
    assert re.search(reason, line), line


@LINUX_PROC
@pytest.mark.parametrize("command", ["report --out", "export --to", "trial --out"])
@pytest.mark.parametrize("root", ["/proc", "/sys"])
def test_an_output_file_on_a_read_only_filesystem_is_refused(command, root, capsys):
    path = Path(root) / "ablate-test" / "out.parquet"
    assert main(output_commands(path)[command]) == 2
    assert f"{path}: {root} does not take new files (" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("a file", "is a file; give a folder to write results into"), ("under a file", "is a file, not a folder")],
)
def test_a_figures_folder_that_cannot_be_made_is_refused(kind, reason, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" if kind == "a file" else tmp_path / "a_file" / "figures"
    assert main(["plot", MISSING, "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert f"--out {out}: " in line and reason in line


@LINUX_PROC
def test_a_figures_folder_on_a_read_only_filesystem_is_refused(capsys):
    assert main(["plot", MISSING, "--out", "/proc/ablate-figures"]) == 2
    assert "--out /proc/ablate-figures: /proc does not take new files (" in one_error_line(capsys)


# ---------------------------------------------------------------- storage
SWEEP = """\
name: tiny
base: {train: {epochs: 1, device: cpu}}
seeds: [0]
resources: {cpu: 1}
"""


@pytest.fixture
def sweep_file(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SWEEP)
    return path


def bad_storages(tmp_path: Path) -> dict[str, tuple[str, str]]:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "tiny_is_a_file").mkdir()
    (tmp_path / "tiny_is_a_file" / "tiny").write_text("x")
    cases = {
        "a file": (str(tmp_path / "a_file"), "is a file; give a folder to write results into"),
        "a device": ("/dev/null", r"is not a folder \(a device\?\)"),
        "under a file": (str(tmp_path / "a_file" / "results"), "is a file, not a folder"),
        "its sweep folder a file": (str(tmp_path / "tiny_is_a_file"), r"tiny_is_a_file/tiny: is a file"),
    }
    if os.path.isdir("/proc/self"):
        cases["read-only"] = ("/proc/ablate-results", r"/proc does not take new files \(")
    return cases


@pytest.mark.parametrize("case", ["a file", "a device", "under a file", "its sweep folder a file", "read-only"])
@pytest.mark.parametrize("command", ["run", "submit", "check"])
def test_storage_that_cannot_hold_results_is_refused_before_anything_starts(command, case, sweep_file, capsys):
    cases = bad_storages(sweep_file.parent)
    if case not in cases:
        pytest.skip("needs Linux's /proc (read-only even for root)")
    storage, reason = cases[case]
    flag = ["--set", f"storage={storage}"] if command == "check" else ["--storage", storage]
    assert main([command, str(sweep_file), *flag]) == 2
    line = one_error_line(capsys)
    assert f"{'storage' if command == 'check' else '--storage'} {storage}" in line
    assert re.search(reason, line), line
    assert not list(sweep_file.parent.rglob("*.parquet")) and not list(sweep_file.parent.rglob("lock"))
