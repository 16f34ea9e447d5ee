"""Strict construction of frozen-dataclass config trees from nested dicts, and the dotted-key helpers.

One generic mechanism serves every config in the project (the SSL trial, the linear-dynamics
trial, sweep files): unknown keys fail with a did-you-mean, wrong types fail with the expected
type and the value, numbers out of range fail with the allowed range; whatever the field, a float
must be finite and an int must fit 64 bits (a float is never taken for an int). Errors name the
dotted key path and, when known, the file and line (:class:`Source`, filled by
:mod:`ablate.config.yamlfile`).

Field metadata understood here:
  ``doc``   one-line meaning, used by the config reference (docs/config.md, generated);
  ``min`` / ``max``  inclusive numeric bounds; ``gt``  exclusive lower bound (on each item of a tuple).

A dataclass with a class attribute ``variants: dict[str, type]`` is polymorphic: the ``name``
key of its mapping picks the subclass (the predictor registry uses this), so keys that belong to
another variant are rejected instead of silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from ablate.config.yamlfile import parse_value
from ablate.errors import UserError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a mapping came from: a file and the line of every dotted key in it."""

    file: str = "<config>"
    lines: Mapping[str, int] = dataclasses.field(default_factory=dict)
    prefix: str = ""  # dotted path of the mapping inside the file, e.g. "base" or "grid"

    def where(self, path: str) -> str:
        key = f"{self.prefix}.{path}" if self.prefix else path
        line = self.lines.get(key)
        while line is None and "." in key:  # fall back to the nearest enclosing key
            key = key.rsplit(".", 1)[0]
            line = self.lines.get(key)
        return f"{self.file}:{line}" if line else self.file

    def sub(self, prefix: str) -> Source:
        return Source(self.file, self.lines, f"{self.prefix}.{prefix}" if self.prefix else prefix)


def fail(src: Source, path: str, message: str) -> UserError:
    return UserError(f"{src.where(path)}: {path}: {message}")


def did_you_mean(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def doc(text: str, **bounds: float) -> dict[str, Any]:
    """Field metadata: the one-line meaning (docs/config.md) and numeric bounds (``min``/``max``/``gt``)."""
    return {"doc": text, **bounds}


# ---------------------------------------------------------------- dict <-> dataclass
def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if _is_optional(tp):
        return f"{_type_name(_unwrap_optional(tp))} or null"
    return getattr(tp, "__name__", str(tp))


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _unwrap_optional(tp: Any) -> Any:
    return next(a for a in typing.get_args(tp) if a is not type(None))


def _coerce(tp: Any, value: Any, path: str, src: Source) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in canonical form."""
    if _is_optional(tp):
        return None if value is None else _coerce(_unwrap_optional(tp), value, path, src)
    origin = typing.get_origin(tp)
    bad = fail(src, path, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = did_you_mean(str(value), [str(c) for c in choices])
            raise fail(src, path, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise fail(src, path, f"expected a mapping of {tp.__name__} keys, got {value!r}")
        return build(tp, value, src, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = typing.get_args(tp)[:1]
        return tuple(_coerce(item, v, f"{path}[{i}]", src) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        if not INT64_MIN <= value <= INT64_MAX:  # results hold 64-bit integers; torch and numpy take no more
            raise fail(src, path, f"must be an integer from -2**63 to 2**63 - 1, got {_number(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        try:
            number = float(value)
        except OverflowError:  # an int beyond the largest float
            number = math.inf
        if not math.isfinite(number):
            raise fail(src, path, f"must be a finite number (not .nan or .inf), got {_number(value)}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise bad
        return dict(value)
    return value


def _number(value: Any) -> str:
    """A number for a message; an integer of hundreds of digits by its size instead."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def _check_range(f: dataclasses.Field, value: Any, path: str, src: Source) -> None:
    """The field's bounds on a number, or on each number of a tuple (``key[i]``)."""
    if isinstance(value, tuple):
        for i, v in enumerate(value):
            _check_range(f, v, f"{path}[{i}]", src)
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    lo, hi, gt = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("gt")
    if lo is not None and value < lo:
        raise fail(src, path, f"must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise fail(src, path, f"must be <= {hi}, got {value}")
    if gt is not None and value <= gt:
        raise fail(src, path, f"must be > {gt}, got {value}")


def resolve_variant(cls: type, data: Mapping[str, Any], src: Source, path: str) -> type:
    variants: dict[str, type] | None = getattr(cls, "variants", None)
    if not variants:
        return cls
    name = data.get("name", cls.__dataclass_fields__["name"].default)
    if name not in variants:
        hint = did_you_mean(str(name), variants)
        raise fail(
            src,
            f"{path}.name" if path else "name",
            f"unknown {cls.__name__} {name!r}; choose one of {', '.join(variants)}{hint}",
        )
    return variants[name]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(cls: type, data: Mapping[str, Any], src: Source | None = None, path: str = "") -> Any:
    """Build the frozen dataclass ``cls`` from a (sparse) nested mapping; defaults fill the rest."""
    src = src or Source()
    cls = resolve_variant(cls, data, src, path)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        kpath = f"{path}.{key}" if path else str(key)
        if key not in fields:
            owner = f" for {path} {getattr(cls, 'name', None)!r}" if getattr(cls, "variants", None) else ""
            hint = did_you_mean(str(key), fields)
            valid = f" (valid keys: {', '.join(fields)})" if owner else ""
            raise fail(src, kpath, f"unknown key{owner}{hint}{valid}")
        kwargs[key] = _coerce(_hints(cls)[key], value, kpath, src)
        _check_range(fields[key], kwargs[key], kpath, src)
    for name, f in fields.items():  # nested dataclass fields default to their own defaults
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise fail(src, f"{path}.{name}" if path else name, "is required")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        problem = check()
        if problem:
            key, msg = problem
            raise fail(src, f"{path}.{key}" if path else key, msg)
    return obj


def to_dict(obj: Any) -> Any:
    """The full nested mapping of a config (tuples become lists), suitable for YAML/JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``; lists stay values."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict in place. A mapping value replaces the whole sub-tree."""
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[parts[-1]] = value


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply dotted-key ``overrides`` to a deep copy of ``base``."""
    out = json.loads(json.dumps(base))
    for k, v in overrides.items():
        set_dotted(out, k, json.loads(json.dumps(v)))
    return out


def parse_set(items: typing.Iterable[str]) -> dict[str, Any]:
    """``["a.b=0.1", "c=[1,2]"]`` -> dotted overrides; values are read as YAML the way a file's are
    (``1e-3`` is a float), within the same limits."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set optim.lr=0.03")
        out[key.strip()] = parse_value(raw, f"--set: {key.strip()}") if raw.strip() else ""
    return out


def field_docs(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, default, meaning)`` for every leaf (the leaves docs/config.md must document)."""
    rows: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            variants = getattr(tp, "variants", None)
            if not variants:
                rows += field_docs(tp, key)
                continue
            owners: dict[str, list[str]] = {}  # a variant key -> the variants that accept it
            # keys of the base class itself (``name``) are documented from the base
            first: dict[str, tuple[str, str, str]] = {r[0]: r for r in field_docs(tp, key)}
            for name, variant in variants.items():
                for row in field_docs(variant, key):
                    owners.setdefault(row[0], []).append(name)
                    first.setdefault(row[0], row)
            for k, (_, d, m) in first.items():
                only = "" if len(owners[k]) == len(variants) else f"({', '.join(owners[k])}) "
                rows.append((k, d, only + m))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((key, json.dumps(to_dict(default)), f.metadata.get("doc", "")))
    return rows
