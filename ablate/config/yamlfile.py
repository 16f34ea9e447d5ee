"""YAML files with the line of every key and list item, and ``${VAR}`` expansion from the environment.

The one YAML reader of the project (sweep files, trial override files), so that every error names
``<file>:<line>``. Lines are
keyed by dotted paths: mapping keys ``a.b``, list items ``a[0]``, keys inside items ``a[0].b``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import UserError


def ancestors(path: str) -> list[str]:
    """``a.b[1].c`` -> ``[a.b[1].c, a.b[1], a.b, a]`` (the path, then each enclosing key or item)."""
    out = []
    while path:
        out.append(path)
        path = re.sub(r"(\[\d+\]|\.[^.\[\]]+|^[^.\[\]]+)$", "", path)
    return out


def line_of(lines: Mapping[str, int], path: str) -> int:
    """Line of ``path`` or of its nearest enclosing key / list item; 0 if none is known."""
    return next((lines[k] for k in ancestors(path) if k in lines), 0)


# ---------------------------------------------------------------- YAML with lines of keys and items
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``; users write 1e-3)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def read_yaml(path: str | Path) -> tuple[Any, dict[str, int], str]:
    """Parse a YAML file: (data, {dotted path: 1-based line}, text). See :func:`parse_yaml`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a sweep YAML file (e.g. sweeps/smoke.yaml)")
    return parse_yaml(path.read_text(), str(path))


def parse_yaml(text: str, file: str) -> tuple[Any, dict[str, int], str]:
    """Parse YAML ``text`` read from ``file``: (data, {dotted path: 1-based line}, text). Mapping keys
    are ``a.b``, list items ``a[0]``; a key given twice in one mapping is an error (YAML would
    silently keep the last)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else file
        raise UserError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e}); fix the syntax") from None
    lines: dict[str, int] = {}

    def walk(n: yaml.Node, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in n.value:
                if k.value == "<<":  # YAML merge key: its keys land in this mapping
                    continue
                key = f"{prefix}.{k.value}" if prefix else str(k.value)
                line = k.start_mark.line + 1
                if key in first:
                    raise UserError(f"{file}:{line}: {key}: given twice (also on line {first[key]}); keep one")
                first[key] = lines[key] = line
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines[f"{prefix}[{i}]"] = v.start_mark.line + 1
                walk(v, f"{prefix}[{i}]")

    if node is not None:
        walk(node, "")
    return data, lines, text


# ---------------------------------------------------------------- ${VAR} expansion
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")


def expand_env(value: str, where: str, key: str, env: Mapping[str, str] | None = None) -> str:
    """``${VAR}`` -> the variable (unset is an error), ``${VAR:-default}`` -> it, or ``default`` when
    unset or empty (as in sh); ``$$`` -> a literal ``$``. The result stays a string."""
    env = os.environ if env is None else env

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        var, has_default, default = m.group(1), m.group(2), m.group(3)
        got = env.get(var)
        if has_default is not None:
            return got if got else default
        if got is None:
            raise UserError(
                f"{where}: {key}: environment variable {var} is not set; export {var}=... or write ${{{var}:-default}}"
            )
        return got

    out = _VAR.sub(sub, value)
    if "${" in _VAR.sub("", value):
        raise UserError(f"{where}: {key}: malformed variable in {value!r}; write ${{VAR}} or ${{VAR:-default}}")
    return out


def expand_tree(data: Any, file: str, lines: Mapping[str, int], path: str = "") -> Any:
    """:func:`expand_env` on every string value of a parsed YAML tree (keys are left alone)."""
    if isinstance(data, dict):
        return {k: expand_tree(v, file, lines, f"{path}.{k}" if path else str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_tree(v, file, lines, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, str) and "$" in data:
        line = line_of(lines, path)
        return expand_env(data, f"{file}:{line}" if line else file, path)
    return data
