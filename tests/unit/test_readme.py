"""The README documents every config key and results column, and CI runs the README's test command."""

from pathlib import Path

from ablate.config.tree import field_docs
from ablate.config.trial import TrialConfig
from ablate.kinds.registry import SSL
from ablate.results.schema import COMMON_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_config_key_is_in_the_reference():
    missing = [k for k, _, _ in field_docs(TrialConfig) if f"`{k}`" not in README]
    assert not missing, f"README config reference lacks {missing}"


def test_every_results_column_is_documented():
    missing = [n for n, _, _ in COMMON_COLUMNS + list(SSL.metrics) if f"`{n}`" not in README]
    assert not missing, f"README results schema lacks {missing}"


def test_ci_runs_the_readme_test_command():
    assert "make test" in README.split("##")[1]  # the set-up section at the top
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in (ROOT / "Makefile").read_text()


def test_every_command_has_a_docs_page():
    from ablate.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [name for name in sub.choices if not (ROOT / "docs" / f"{name}.md").is_file()]
    assert not missing, f"docs/ lacks pages for {missing}"
