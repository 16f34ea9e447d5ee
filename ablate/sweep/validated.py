"""A validated sweep: what :func:`ablate.sweep.load.read_sweep` makes of a sweep file and its overrides.

:class:`Sweep` holds the file's settings in their checked form, the grid axes and cases, and the
trials they expand to; :class:`SweepSource` says where in the file (or which ``--set``) each key came
from, so that an invalid trial is reported at the line that produced it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ablate.config.tree import Source, set_dotted
from ablate.config.yamlfile import ancestors
from ablate.kinds.registry import TrialKind, get_kind
from ablate.sweep.plugins import Plugin
from ablate.sweep.schema import SweepFile


@dataclass(frozen=True)
class GridAxis:
    key: str  # dotted config key (a mapping value replaces the sub-tree at key)
    values: tuple  # in file order
    line: int  # line of the key in the sweep file (0 = unknown)


@dataclass(frozen=True)
class Case:
    index: int  # position in cases:
    overrides: dict[str, Any]  # key (dotted) -> value, applied in order like grid values
    line: int


@dataclass(frozen=True, kw_only=True)
class Sweep(SweepFile):
    """A validated sweep file: its :class:`SweepFile` settings in their checked form (``resources``
    normalised, the kind's default ``metric``, ``search`` with its metric and space filled in), the grid
    and cases as axes, the plugins it loaded and the trials it expands to. ``base`` is the sparse trial
    mapping (no ``kind``, no ``seed``; ``--set`` applied); ``text`` the file as written (for reports);
    ``lines`` maps dotted paths (``grid.x``, ``cases[0].y``, list items as ``key[i]``) to 1-based lines."""

    path: str
    text: str
    lines: Mapping[str, int]
    kind: str
    grid: tuple[GridAxis, ...] = ()
    cases: tuple[Case, ...] = ()
    plugins: tuple[Plugin, ...] = ()  # the plugins loaded (its own, then installed packages' entry points)
    overrides: dict[str, Any] = field(default_factory=dict)  # the --set overrides as given
    overridden: frozenset[str] = frozenset()  # file paths they replaced (e.g. base.optim.lr)
    trials: tuple = ()  # the expanded trials (ablate.sweep.expand.Trial), in run order; () for a search
    notes: tuple[str, ...] = ()  # what ablate check points out about the expansion
    sharing: tuple[str, ...] = ()  # which trials are read from a longer one's run, and why others are not

    @functools.cached_property
    def base_lines(self) -> dict[str, int]:
        """Lines of the base's keys and items by their trial config path (``optim.lr`` for ``base.optim.lr``)."""
        return {k[5:]: v for k, v in self.lines.items() if k.startswith("base.")}

    @property
    def trial_kind(self) -> TrialKind:
        return get_kind(self.kind)

    @property
    def search_base(self) -> dict[str, Any]:
        """The mapping a search's sampled dotted keys are merged into (``base`` + the one seed)."""
        return {**self.base, "seed": self.seeds[0]} if self.trial_kind.has_seed else dict(self.base)

    def source(self, prefix: str = "") -> SweepSource:
        return SweepSource(self.path, self.lines, prefix, self.overridden)


@dataclass(frozen=True)
class SweepSource(Source):
    """A :class:`Source` that says ``--set`` for keys that came from a ``--set`` override."""

    overridden: frozenset = frozenset()

    def where(self, path: str) -> str:
        key = f"{self.prefix}.{path}" if self.prefix else path
        if any(k in self.overridden for k in ancestors(key)):
            return "--set"  # a --set key replaced this part of the file
        line = next((self.lines[k] for k in ancestors(key) if k in self.lines), None)
        return f"{self.file}:{line}" if line else self.file

    def sub(self, prefix: str) -> SweepSource:
        return SweepSource(self.file, self.lines, f"{self.prefix}.{prefix}" if self.prefix else prefix, self.overridden)


def undot(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim.lr": 1, "predictor": {...}}`` -> nested, applied in order (a mapping replaces a sub-tree)."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        set_dotted(out, str(k), undot(v) if isinstance(v, Mapping) else v)
    return out
