"""A validated :class:`~ablate.sweep.schema.Sweep` -> the list of trials to run (pure and deterministic).

Order: seeds OUTERMOST (every cell with the first seed comes first, so a half-finished sweep
already has one run of every cell), then the grid in file order with the last key fastest, then
the cases (``cases_mode: add``) -- or, with ``cases_mode: cross``, every case after every grid
point, as if the cases were one more (fastest) grid axis.

A grid value or case value that is a mapping REPLACES the whole sub-tree at its key (so MLP
settings never leak into a DirectPred trial); dotted keys change single leaves. The
``trial_id`` is the hash of the full resolved config (seed included), so the same trial in two
sweeps has the same id. Configs that come out identical (a case equal to a grid point) run once;
:func:`expansion_notes` says what was dropped.

Search sweeps (``search:``) have no pre-expanded trials: :func:`expand` returns ``[]`` and the
runner turns each sampled point into a trial with :func:`search_trial`. :func:`ablate.sweep.load.read_sweep`
expands once, at load time, and keeps the trials in the Sweep.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ablate.config.tree import flatten, merge, set_dotted
from ablate.config.yamlfile import line_of
from ablate.errors import UserError
from ablate.kinds.registry import build_config
from ablate.sweep.validated import Sweep, SweepSource, undot


@dataclass(frozen=True)
class Trial:
    """One trial: its id (the hash of the resolved config and its plugins), config, the axis values that
    define it (dotted key -> value as written in the sweep, plus ``seed``), what produced it (``grid`` |
    ``cases`` | ``optuna``) and its kind's name."""

    trial_id: str
    config: Any
    axes: dict[str, Any]
    search: str
    kind: str
    derived_from: str | None = None  # the longer trial whose run this one is read from (ablate.sweep.prefix)

    @property
    def label(self) -> str:
        """Compact one-line description, e.g. ``predictor=directpred(rho=0.3), ema.tau=0.996, seed=0``."""
        return axes_label(self.axes)


@dataclass(frozen=True)
class Override:
    key: str  # dotted config key
    value: Any  # a mapping replaces the sub-tree at key
    origin: str  # path in the sweep file that set it: grid.predictor[1], cases[0].optim.lr, search.space.x


@dataclass(frozen=True)
class Point:
    """One grid point / case (before the seeds axis)."""

    overrides: tuple[Override, ...]
    axes: dict[str, Any]
    search: str
    origin: str  # for messages: "grid point predictor=mlp, ema.tau=0", "cases[1]", "base"


# ---------------------------------------------------------------- display
def compact(value: Any) -> str:
    """``{name: directpred, rho: 0.3}`` -> ``directpred(rho=0.3)``; floats as ``%g``; YAML spelling of
    true/false/null."""
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items() if k != "name"]
        inner = ", ".join(f"{k}={compact(v)}" for k, v in items)
        if "name" in value:
            return f"{value['name']}({inner})" if inner else str(value["name"])
        return f"({inner})"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(compact(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def axes_label(axes: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={compact(v)}" for k, v in axes.items()) or "base"


# ---------------------------------------------------------------- cells
def cells(sweep: Sweep) -> list[Point]:
    """Grid points then cases (add), or grid x cases (cross); just the base when there are neither."""
    grid_cells = []
    if sweep.grid:
        for idx in itertools.product(*(range(len(a.values)) for a in sweep.grid)):  # last key fastest
            picked = [(a, a.values[i], f"grid.{a.key}[{i}]") for a, i in zip(sweep.grid, idx)]
            axes = {a.key: v for a, v, _ in picked}
            grid_cells.append(
                Point(
                    tuple(Override(a.key, v, o) for a, v, o in picked), axes, "grid", f"grid point {axes_label(axes)}"
                )
            )
    case_cells = [
        Point(
            tuple(Override(k, v, f"cases[{c.index}].{k}") for k, v in c.overrides.items()),
            dict(c.overrides),
            "cases",
            f"cases[{c.index}]",
        )
        for c in sweep.cases
    ]
    if sweep.cases_mode == "cross" and case_cells:
        outer = grid_cells or [Point((), {}, "grid", "base")]
        return [
            Point(
                g.overrides + c.overrides,
                {**g.axes, **c.axes},
                "grid",
                f"{c.origin} x {g.origin}" if g.overrides else c.origin,
            )
            for g in outer
            for c in case_cells
        ]
    out = grid_cells + case_cells
    return out or [Point((), {}, "grid", "base")]


def cell_mapping(sweep: Sweep, overrides: tuple[Override, ...], seed: int | None = None) -> dict[str, Any]:
    """The sparse trial mapping of a cell: base, then each override in order (mappings replace)."""
    tree = merge(sweep.base, {})  # a deep copy
    for o in overrides:
        set_dotted(tree, o.key, merge(undot(o.value), {}) if isinstance(o.value, Mapping) else o.value)
    if seed is not None:
        tree["seed"] = seed
    return tree


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        n += 1
    return n


# What of a cell's source depends on its override keys alone (shared by every point of a grid):
# the lines of the base keys no override covers, the --set keys among them, and, by index, the
# override that a base key is blamed on when the base is valid alone.
Layout = tuple[dict[str, int], frozenset[str], dict[str, int]]


def _layout(sweep: Sweep, keys: tuple[str, ...], base_ok: bool) -> Layout:
    def covered(k: str) -> bool:
        return any(k == o or k.startswith(o + ".") for o in keys)

    lines = {k: v for k, v in sweep.base_lines.items() if not covered(k)}
    overridden = {k[5:] for k in sweep.overridden if k.startswith("base.") and not covered(k[5:])}
    nearest: dict[str, int] = {}
    if base_ok and keys:
        for k in [*lines, *overridden]:
            best = max(range(len(keys)), key=lambda i: _common(k, keys[i]))
            if _common(k, keys[best]):
                nearest[k] = best
        overridden -= set(lines) | set(nearest)
    return lines, frozenset(overridden), nearest


def cell_source(sweep: Sweep, cell: Point, base_ok: bool, layouts: dict[tuple, Layout] | None = None) -> SweepSource:
    """Where each config key of ``cell`` comes from, so an error names the right line.

    Keys set by the cell point at the grid value / case. When the base alone is a valid config
    (``base_ok``), a failure can only be caused by the cell, so base keys that share a sub-tree
    with one of its overrides point at that override too (e.g. ``predictor.rho`` in base rejected
    because a grid value switched ``predictor.name`` to ``linear``: the grid line is the culprit).
    ``layouts`` keeps what depends on the override keys alone across one sweep's cells (a cell costs its overrides).
    """
    keys = tuple(o.key for o in cell.overrides)
    layouts = {} if layouts is None else layouts
    if (keys, base_ok) not in layouts:
        layouts[keys, base_ok] = _layout(sweep, keys, base_ok)
    base_lines, overridden, nearest = layouts[keys, base_ok]
    own = {k: line_of(sweep.lines, cell.overrides[i].origin) for k, i in nearest.items()}
    lines = collections.ChainMap(own, base_lines)  # the cell's own lines first; writes go to them
    for o in cell.overrides:
        line = line_of(sweep.lines, o.origin)
        parts = o.key.split(".")
        for j in range(1, len(parts)):
            prefix = ".".join(parts[:j])
            if base_ok or prefix not in lines:
                lines[prefix] = line
        lines[o.key] = line
        if isinstance(o.value, Mapping):
            for sub in _key_paths(o.value):
                lines[f"{o.key}.{sub}"] = line_of(sweep.lines, f"{o.origin}.{sub}") or line
    return SweepSource(sweep.path, lines, "", overridden)


def _key_paths(tree: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.append(key)
        if isinstance(v, Mapping):
            out += _key_paths(v, key)
    return out


def build_cell(
    sweep: Sweep, cell: Point, base_ok: bool, seed: int | None = None, layouts: dict[tuple, Layout] | None = None
) -> tuple[SweepSource, Any]:
    """(source, config) of one cell; a :class:`UserError` names the line that caused it."""
    src = cell_source(sweep, cell, base_ok, layouts)
    try:
        return src, build_config(sweep.kind, cell_mapping(sweep, cell.overrides, seed), src)
    except UserError as e:
        if not cell.overrides:
            raise
        raise type(e)(f"{e} (in {cell.origin})") from None


def base_is_valid(sweep: Sweep) -> bool:
    try:
        build_config(sweep.kind, sweep.base, sweep.source("base"))
        return True
    except UserError:
        return False


BuiltCell = tuple[Point, SweepSource, Any]  # a point, where its keys come from, its trial config


def build_cells(sweep: Sweep) -> list[BuiltCell]:
    """Every point with its source and config (seed = the config's default). Raises on the first bad one."""
    base_ok, layouts = base_is_valid(sweep), {}
    return [(cell, *build_cell(sweep, cell, base_ok, layouts=layouts)) for cell in cells(sweep)]


def check_search_space(sweep: Sweep) -> None:
    """Each search dimension's extremes (and every choice) must make a valid trial config."""
    assert sweep.search is not None
    base_ok = base_is_valid(sweep)
    for key, dist in sweep.search.space.items():
        if dist.kind == "choice":
            values = list(dist.values)
        elif dist.kind == "randint":
            values = [dist.values[0], dist.values[1] - 1]  # high is exclusive
        else:
            values = [float(dist.values[0]), float(dist.values[1])]
        for v in values:
            cell = Point(
                (Override(key, v, f"search.space.{key}"),), {key: v}, "optuna", f"search.space {key} = {compact(v)}"
            )
            build_cell(sweep, cell, base_ok, sweep.seeds[0])


# ---------------------------------------------------------------- trials
def _with_seed(config: Any, seed: int) -> Any:
    if any(f.name == "seed" for f in dataclasses.fields(config)):
        return dataclasses.replace(config, seed=seed)
    return config


def expand_cells(sweep: Sweep, built: list[BuiltCell]) -> tuple[list[Trial], list[str]]:
    """(trials, notes) of the built points: the trials in run order and what ``ablate check`` points out."""
    notes = _static_notes(sweep)
    if sweep.search is not None:
        return [], notes
    has_seed = sweep.trial_kind.has_seed
    trials: list[Trial] = []
    first: dict[str, str] = {}
    dropped: dict[tuple[str, str], int] = {}
    for seed in sweep.seeds:  # outermost
        for cell, _, config in built:
            cfg = _with_seed(config, seed)
            tid = sweep.trial_kind.trial_id(cfg)
            if tid in first:
                pair = (cell.origin, first[tid])
                dropped[pair] = dropped.get(pair, 0) + 1
                continue
            first[tid] = cell.origin
            axes = {**cell.axes, "seed": seed} if has_seed else dict(cell.axes)
            trials.append(Trial(tid, cfg, axes, cell.search, sweep.kind))
    for (dup, orig), n in dropped.items():
        notes.append(f"{dup} is the same config as {orig}; dropped ({n} trial{'s' if n > 1 else ''})")
    return trials, notes


def expand(sweep: Sweep) -> list[Trial]:
    """The sweep's trials in run order (``[]`` for a search sweep)."""
    return list(sweep.trials)


def search_trial(sweep: Sweep, sampled: Mapping[str, Any]) -> Trial:
    """The trial of one point a searcher sampled (``{dotted key: value}``), with the sweep's seed."""
    overrides = tuple(Override(k, v, f"search.space.{k}") for k, v in sampled.items())
    cell = Point(overrides, dict(sampled), "optuna", f"search point {axes_label(sampled)}")
    _, cfg = build_cell(sweep, cell, True)
    cfg = _with_seed(cfg, sweep.seeds[0])
    return Trial(sweep.trial_kind.trial_id(cfg), cfg, {**sampled, "seed": sweep.seeds[0]}, "optuna", sweep.kind)


def _polymorphic(cls: type, dotted: str) -> bool:
    tp: Any = cls
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(tp):
            return False
        hints = typing.get_type_hints(tp)
        if part not in hints:
            return False
        tp = hints[part]
    return bool(getattr(tp, "variants", None))


def _static_notes(sweep: Sweep) -> list[str]:
    notes: list[str] = []
    setters = [(a.key, f"grid.{a.key}", list(a.values)) for a in sweep.grid]
    setters += [(k, f"cases[{c.index}].{k}", [v]) for c in sweep.cases for k, v in c.overrides.items()]
    for path in sorted(sweep.overridden):
        if not path.startswith("base."):
            continue
        key = path[5:]
        hit = next((o for k, o, _ in setters if key == k or key.startswith(k + ".")), None)
        if hit:
            notes.append(f"--set {key} has no effect where {hit} sets it")
    seen: set[str] = set()
    for key, origin, values in setters:
        base_sub: Any = sweep.base
        for part in key.split("."):
            base_sub = base_sub.get(part) if isinstance(base_sub, Mapping) else None
        if not isinstance(base_sub, Mapping) or origin in seen or _polymorphic(sweep.trial_kind.Config, key):
            continue
        base_keys = set(flatten(base_sub))
        for v in values:
            if isinstance(v, Mapping):
                lost = sorted(base_keys - set(flatten(undot(v))))
                if lost:
                    seen.add(origin)
                    notes.append(
                        f"{origin}: a mapping replaces all of {key} and drops base's "
                        f"{', '.join(f'{key}.{k}' for k in lost)}; "
                        f"write dotted keys ({key}.x: ...) to change single keys"
                    )
                    break
    return notes
