"""The checks `make docs` adds to Sphinx's own (broken links and anchors, pages in no toctree), each a
warning that ``-W`` turns into an error:

- the generated reference (``reference.py``'s regions of docs/config.md and docs/results.md) is what
  the code makes now: a config key or results column added, removed or re-documented without
  ``make docs-gen`` fails the build;
- every sweep file shown in a page (a YAML block with ``name:`` and ``base:``, ``grid:``, ``cases:``
  or ``seeds:``) loads with ablate's own strict loader (as ``ablate check --no-data``), unless it names
  ``plugins:`` (files the page does not ship);
- every ``ablate ...`` command line in a code block names a real command and only its real flags.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path
from typing import Any

import yaml
from docutils import nodes
from sphinx.util import logging

import reference

logger = logging.getLogger(__name__)
SWEEP_KEYS = {"base", "grid", "cases", "seeds"}
SHELL = {"", "bash", "console", "shell", "sh", "text", "none", "default"}


def check_reference(app: Any) -> None:
    stale = reference.stale_pages(write=False)
    if stale:
        logger.warning(
            "the generated reference in docs/%s differs from the code: run `make docs-gen` and commit the pages",
            ", docs/".join(stale),
        )


def check_examples(app: Any, doctree: nodes.document) -> None:
    for block in doctree.findall(nodes.literal_block):
        language = (block.get("language") or "").lower()
        text = block.astext()
        if language == "yaml":
            _check_sweep(text, block)
        elif language in SHELL:
            for line in _command_lines(text):
                problem = command_problem(line)
                if problem:
                    logger.warning("example `%s`: %s", line, problem, location=block)


def _check_sweep(text: str, block: nodes.Node) -> None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # a fragment (``...`` elisions), not a sweep file
    if not (isinstance(data, dict) and "name" in data and SWEEP_KEYS & set(data)) or "plugins" in data:
        return
    from ablate.errors import UserError
    from ablate.sweep.load import read_sweep

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{data['name']}.yaml"
        path.write_text(text)
        try:
            read_sweep(path, validate_paths=False)
        except UserError as e:
            logger.warning(
                "this sweep example does not load: %s", str(e).replace(str(path), "<example>"), location=block
            )


def _command_lines(text: str) -> list[str]:
    """The ``ablate ...`` invocations of a code block (``$`` prompts dropped, ``\\`` continuations joined,
    pipes and ``&&`` split)."""
    joined = text.replace("\\\n", " ")
    out = []
    for raw in joined.splitlines():
        line = raw.strip().removeprefix("$ ")
        for part in line.replace("&&", "|").replace(";", "|").split("|"):
            part = part.strip()
            if part.startswith("ablate ") and not part.startswith("ablate: "):
                out.append(part.split(" #", 1)[0].strip())
    return out


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    flags: set[str] = set()
    for action in parser._actions:
        flags.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _flags(sub)
    return flags


def _commands() -> dict[str, argparse.ArgumentParser]:
    from ablate.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def command_problem(line: str) -> str | None:
    """Why ``line`` (``ablate COMMAND ...``) could not run as written, or None."""
    try:
        words = shlex.split(line)
    except ValueError:
        return None  # an elided or quoted fragment: nothing to check reliably
    if len(words) < 2 or words[1].startswith("-") or words[1] in ("COMMAND", "..."):
        return None
    commands = _commands()
    if words[1] not in commands:
        return f"no command {words[1]!r} (commands: {', '.join(commands)})"
    known = _flags(commands[words[1]])
    unknown = [w.split("=")[0] for w in words[2:] if w.startswith("--") and w.split("=")[0] not in known]
    return f"ablate {words[1]} has no flag {', '.join(unknown)}" if unknown else None


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", check_reference)
    app.connect("doctree-read", check_examples)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
