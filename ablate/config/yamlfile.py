"""YAML files with the line of every key and list item, and ``${VAR}`` expansion from the environment.

The one YAML reader of the project (sweep files, trial override files), so that every error names
``<file>:<line>``. Lines are
keyed by dotted paths: mapping keys ``a.b``, list items ``a[0]``, keys inside items ``a[0].b``.
"""

from __future__ import annotations

import codecs
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


# ---------------------------------------------------------------- limits of a YAML file
# A sweep or trial config file is a few kilobytes of settings; these bound the time and memory of
# reading anything else before it is read (PyYAML parses about 0.4 MiB a second in pure Python).
MAX_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 64  # mappings / lists inside each other (PyYAML composes recursively)
MAX_NODES = 500_000  # values once every alias is expanded: an alias repeats a whole subtree
# byte-order marks of encodings other than UTF-8 (UTF-32 first: its LE mark starts with UTF-16's)
_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


class _Refused(Exception):
    """A YAML text beyond the limits: ``problem`` and ``fix`` of the message, ``line`` 1-based (0: unknown)."""

    def __init__(self, line: int, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.line, self.problem, self.fix = line, problem, fix


def decode_text(data: bytes, file: str) -> str:
    """The text of a YAML file's bytes: UTF-8 (with or without its byte-order mark), else a UserError
    naming the line of the first byte that is not."""
    for bom, encoding in _BOMS.items():
        if data.startswith(bom):
            raise UserError(f"{file}: is {encoding} text; save it as UTF-8 (YAML files here are UTF-8)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)
        raise UserError(
            f"{file}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at column {column}); "
            "give a YAML text file saved as UTF-8 (is this the file you meant?)"
        ) from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise UserError(f"{file}:{line}: holds NUL bytes, so it is not a YAML text file; save it as UTF-8 text")
    return text


# ---------------------------------------------------------------- YAML with lines of keys and items
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``; users write 1e-3),
    and refuses nesting deeper than :data:`MAX_DEPTH` as it composes (before Python's stack runs out)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.depth >= MAX_DEPTH:
            line = self.peek_event().start_mark.line + 1
            raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels", "a config is a shallow tree: flatten it")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python turns into an int (sys.get_int_max_str_digits)
            raise _Refused(
                node.start_mark.line + 1, f"an integer of {len(node.value)} digits", "no setting needs one"
            ) from None


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose expanded tree (every alias replaced by what it names) has more than
    :data:`MAX_NODES` values, is deeper than :data:`MAX_DEPTH`, or contains itself. Each distinct node
    is measured once (aliases share nodes), so an alias bomb costs the size of its text."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) of its expanded tree
    open_: set[int] = set()  # nodes whose subtree is being measured: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key, line = id(node), node.start_mark.line + 1
        if children_done:
            kids = [done[id(k)] for k in _children(node)]
            size, depth = 1 + sum(s for s, _ in kids), 1 + max((d for _, d in kids), default=0)
            if size > MAX_NODES:
                raise _Refused(
                    line,
                    f"expands to more than {MAX_NODES:,} values (aliases *x repeat what &x names)",
                    "write each value once; use aliases to reuse a setting, not to multiply it",
                )
            if depth > MAX_DEPTH:
                raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels once aliases are expanded", "flatten it")
            done[key] = (size, depth)
            open_.discard(key)
        elif key in open_:
            raise _Refused(line, "contains an alias of itself", "a config is a tree: remove the alias")
        elif key not in done:
            open_.add(key)
            stack.append((node, True))
            stack.extend((k, False) for k in _children(node) if id(k) not in done)


def _load(text: str, file: str | None = None) -> tuple[Any, dict[str, int]]:
    """(data, lines) of a one-document YAML text within the limits; raises yaml.YAMLError or _Refused.
    The lines (of the text of ``file``; none without it) are taken from the node graph before it is
    constructed, because construction rewrites merge keys (``<<: *x``) into the mappings."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_expansion(node)
        lines = _lines(node, file) if file is not None else {}
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


def _lines(root: yaml.Node, file: str) -> dict[str, int]:
    """{dotted path: 1-based line} of every key and list item; a key given twice is a UserError."""
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

    walk(root, "")
    return lines


def read_yaml(path: str | Path) -> tuple[Any, dict[str, int], str]:
    """Parse a YAML file: (data, {dotted path: 1-based line}, text). See :func:`parse_yaml`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a sweep YAML file (e.g. sweeps/smoke.yaml)")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)  # never more than the limit, whatever the file's size
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    if len(data) > MAX_BYTES:
        size = path.stat().st_size
        raise UserError(
            f"{path}: {size:,} bytes, more than the {MAX_BYTES:,} (1 MiB) a sweep or config file may have; "
            "give the YAML file of the settings (is this the file you meant?)"
        )
    return parse_yaml(decode_text(data, str(path)), str(path))


def parse_yaml(text: str, file: str) -> tuple[Any, dict[str, int], str]:
    """Parse YAML ``text`` read from ``file``: (data, {dotted path: 1-based line}, text). Mapping keys
    are ``a.b``, list items ``a[0]``; a key given twice in one mapping is an error (YAML would
    silently keep the last). Text beyond the limits above is refused."""
    try:
        data, lines = _load(text, file)
    except _Refused as e:
        raise UserError(f"{file}:{e.line}: {e.problem}; {e.fix}") from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow; PyYAML says where in characters
        line = text.count("\n", 0, e.position) + 1
        column = e.position - text.rfind("\n", 0, e.position)
        raise UserError(
            f"{file}:{line}: control character U+{e.character:04X} at column {column} is not allowed in YAML; "
            "delete it (inside double quotes write a tab as \\t, a newline as \\n)"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else file
        problem = " ".join(str(getattr(e, "problem", None) or e).split())  # PyYAML's own text spans lines
        raise UserError(f"{where}: not valid YAML ({problem}); fix the syntax") from None
    return data, lines, text


def parse_value(raw: str, where: str) -> Any:
    """A command-line value (``--set key=value``) read as YAML by the file reader, with its limits;
    text that is not valid YAML stays the text itself."""
    try:
        return _load(raw)[0]
    except _Refused as e:
        raise UserError(f"{where}: {e.problem}; {e.fix}") from None
    except yaml.YAMLError:
        return raw


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
