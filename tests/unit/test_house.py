"""The house rules of ablate/ and models/, each checked here or in .ci/run (ruff, import-linter, vulture).

Rooms: a subpackage per job, its ``__init__`` one docstring saying that job; only cli, api, errors and
provenance at the root. Size: a module over 350 lines or a function over 60 needs a reason written
beside it (a ``# long:`` comment on or right above its first line).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ablate"
# ablate/models is a link to the repository's models/ folder, which rglob does not follow: walk both
MODULES = sorted({p.resolve(): p for p in [*PACKAGE.rglob("*.py"), *(ROOT / "models").rglob("*.py")]}.values())
MAX_MODULE, MAX_FUNCTION = 350, 60


def reason(lines: list[str], first: int) -> bool:
    """A ``# long:`` comment on the first line of a definition (1-based) or on the line above it."""
    return any("# long:" in lines[i] for i in (first - 2, first - 1) if 0 <= i < len(lines))


def test_the_root_holds_only_the_entry_points_and_each_room_says_its_job():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == [
        "__init__.py",
        "api.py",
        "cli.py",
        "errors.py",
        "provenance.py",
    ]
    rooms = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert rooms == [
        "analysis",
        "benchmark",
        "cluster",
        "config",
        "datasets",
        "kinds",
        "models",
        "results",
        "runner",
        "sweep",
        "theory",
        "train",
    ]
    for room in rooms:
        tree = ast.parse((PACKAGE / room / "__init__.py").read_text())
        doc = ast.get_docstring(tree)
        assert doc and len(tree.body) == 1, f"ablate/{room}/__init__.py: one docstring, nothing else"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_short_or_say_why(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE or reason(lines, 1) or "# long:" in "\n".join(lines[:40]), (
        f"{len(lines)} lines: split the module or say why (# long: ...)"
    )
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            length = node.end_lineno - first + 1
            assert length <= MAX_FUNCTION or reason(lines, first) or reason(lines, node.lineno), (
                f"{node.name}: {length} lines; split it or say why (# long: ...)"
            )


@pytest.mark.slow  # builds a wheel (a few seconds)
def test_installing_ablate_claims_no_generic_top_level_name(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("ablate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"ablate"}
    assert "ablate/models/pair.py" in names and "ablate/models/predictors/directpred.py" in names
