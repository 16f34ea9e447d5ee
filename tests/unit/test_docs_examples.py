"""The example outputs of docs/run.md, status.md and export.md are what docs/tools/examples.py made by
running their commands: each marked block shows that script's commands, and every trial id in a
block is one its session's sweeps make. A change that moves the ids (a sweep file, a config default,
the id's hash) fails here until ``python docs/tools/examples.py`` regenerates the pages. Nothing is run:
the sweeps are only expanded."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

from ablate.cli import build_parser
from ablate.config.tree import parse_set
from ablate.sweep.load import read_sweep

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("docs_examples", ROOT / "docs" / "tools" / "examples.py")
examples = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = examples  # dataclasses look their module up there
_spec.loader.exec_module(examples)
TRIAL_ID = re.compile(r"\b(?=[0-9a-f]*[a-f])[0-9a-f]{12}\b")  # a 12-hex trial id (a git sha is longer)


def block(name: str) -> str:
    text = (ROOT / "docs" / examples.EXAMPLES[name].page).read_text()
    first, end = examples.blocks(text)[name]
    return "\n".join(text.splitlines()[first:end])


def session_ids(session: str) -> set[str]:
    """The trial ids of every ``ablate run`` of a session, by expanding its sweep with its --set overrides."""
    ids: set[str] = set()
    for example in examples.EXAMPLES.values():
        for command in example.commands if example.session == session else ():
            argv = shlex.split(command.removesuffix(" &"))
            if argv[:2] == ["ablate", "run"]:
                args = build_parser().parse_args(argv[1:])
                ids |= {t.trial_id for t in read_sweep(ROOT / args.sweep, parse_set(args.sets)).trials}
    return ids


def test_every_marked_block_is_an_example_and_every_example_is_marked():
    marked = {}
    for page in sorted({e.page for e in examples.EXAMPLES.values()} | {"run.md", "status.md", "export.md"}):
        marked |= {name: page for name in examples.blocks((ROOT / "docs" / page).read_text())}
    assert marked == {name: e.page for name, e in examples.EXAMPLES.items()}


@pytest.mark.parametrize("name", list(examples.EXAMPLES))
def test_a_block_shows_the_commands_that_made_it(name):
    shown = [line[2:] for line in block(name).splitlines() if line.startswith("$ ")]
    assert shown == list(examples.EXAMPLES[name].commands)


@pytest.mark.parametrize("name", list(examples.EXAMPLES))
def test_a_block_shows_only_trial_ids_its_commands_make(name):
    ids = session_ids(examples.EXAMPLES[name].session)
    assert ids
    stale = sorted(set(TRIAL_ID.findall(block(name))) - ids)
    assert not stale, (
        f"docs/{examples.EXAMPLES[name].page} ({name}): {stale} are not ids of its sweeps; run python docs/tools/examples.py"
    )
