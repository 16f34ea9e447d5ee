"""The documentation: the generated reference pages cover every config key and results column and are
what the code makes now; the docs build's own checks catch a misspelt flag or a sweep example that
does not load; the README stays a front door; CI runs the README's commands and builds the site."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ablate.config.dynamics import DynamicsConfig
from ablate.config.tree import field_docs
from ablate.config.trial import TrialConfig
from ablate.kinds.registry import KINDS, PREDICTORS
from ablate.results.schema import COMMON_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "tools"))

import reference  # noqa: E402
import sphinx_checks  # noqa: E402

README = (ROOT / "README.md").read_text()


def _builtin(registry):
    return [n for n in registry if registry.origin(n).builtin]


def test_the_config_reference_has_every_key():
    page = (DOCS / "config.md").read_text()
    keys = [k for k, _, _ in field_docs(TrialConfig)] + [k for k, _, _ in field_docs(DynamicsConfig)]
    for name in _builtin(PREDICTORS):
        keys += [k for k, _, _ in field_docs(PREDICTORS[name].Config, "predictor")]
    from ablate.sweep.schema import SweepFile

    keys += [r.key for r in reference.rows(SweepFile)]
    missing = sorted({k for k in keys if f"`{k}`" not in page})
    assert not missing, f"docs/config.md lacks {missing}; run `make docs-gen`"
    assert "`predictor.name: directpred`" in page and "`table.over_epochs`" in page


def test_the_results_page_has_every_column():
    page = (DOCS / "results.md").read_text()
    columns = [n for n, _, _ in COMMON_COLUMNS]
    for name in _builtin(KINDS):
        columns += [n for n, _, _ in KINDS[name].metrics]
    missing = sorted({c for c in columns if f"`{c}`" not in page})
    assert not missing, f"docs/results.md lacks {missing}; run `make docs-gen`"


def test_the_generated_pages_are_what_the_code_makes_now():
    # a fresh process: no plugin a test registered in this one can reach the pages
    proc = subprocess.run(
        [sys.executable, str(DOCS / "tools" / "reference.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_a_stale_region_is_rewritten_and_an_unknown_one_refused():
    made = {"config-kinds": "| the table |"}
    begin = reference.BEGIN.format("config-kinds")
    old = f"prose\n{begin}\n| an old table |\n| row |\n{reference.END}\nmore prose\n"
    assert reference.render(old, made) == f"prose\n{begin}\n| the table |\n{reference.END}\nmore prose\n"
    with pytest.raises(KeyError, match="config-kindz"):
        reference.render(old.replace("config-kinds", "config-kindz"), made)


def test_generated_cells_escape_what_markdown_would_eat():
    assert reference._cell("||F||_F, a <storage> and a*b") == "\\|\\|F\\|\\|_F, a \\<storage> and a\\*b"
    assert reference._cell("`a|b` and `x*y`") == "`a\\|b` and `x*y`"
    assert reference.bounds({"min": 0, "max": 1}) == "0 ≤ x ≤ 1" and reference.bounds({"gt": 0}) == "0 < x"


def test_a_command_line_in_the_docs_must_name_real_flags():
    assert sphinx_checks.command_problem("ablate run sweeps/smoke.yaml --max-concurrent 2 --set a=b") is None
    assert "no flag --max-concurent" in sphinx_checks.command_problem("ablate run x.yaml --max-concurent 2")
    assert "no command 'runn'" in sphinx_checks.command_problem("ablate runn x.yaml")
    assert sphinx_checks._command_lines("$ ablate table r --paper | head -3 && ablate plot r \\\n  --format png") == [
        "ablate table r --paper",
        "ablate plot r    --format png",
    ]


def test_a_sweep_example_that_does_not_load_is_a_warning(monkeypatch):
    said = []
    monkeypatch.setattr(sphinx_checks.logger, "warning", lambda *a, **k: said.append(a[0] % a[1:]))
    sphinx_checks._check_sweep("name: ok\nbase: {optim: {lr: 0.1}}\nseeds: [0]\n", None)
    assert said == []
    sphinx_checks._check_sweep("name: bad\nbase: {optim: {lrr: 0.1}}\nseeds: [0]\n", None)
    assert len(said) == 1 and "optim.lrr: unknown key; did you mean 'lr'?" in said[0]


def test_the_readme_is_a_front_door():
    assert len(README.splitlines()) <= 300, "README.md is the front door (<= 300 lines); the manual is docs/"
    assert "make test" in README.split("##")[1] and "make smoke" in README.split("##")[1]  # the set-up section


def test_ci_runs_the_readme_commands_and_builds_the_docs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make docs\n" in ci  # the strict build; make test opens it in a browser
    assert "make docs-check" in (ROOT / "Makefile").read_text()
    assert "python -m pytest" in (ROOT / "Makefile").read_text()


def test_every_command_has_a_docs_page_linked_from_the_readme_and_the_commands_page():
    from ablate.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = (DOCS / "commands.md").read_text()
    for name in sub.choices:
        assert (DOCS / f"{name}.md").is_file(), f"docs/ lacks a page for {name}"
        assert f"(docs/{name}.md)" in README and f"({name}.md)" in commands, name
