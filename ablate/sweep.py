"""Sweep files: loading and strict validation (everything is checked before anything runs).

A sweep file is YAML with a ``base`` trial config, axes to vary (``grid``, ``cases``, ``seeds``) or an
Optuna ``search`` space, and how to run it (``resources``, ``max_concurrent``, ``checkpoint``...).
:func:`load_sweep` parses it (:mod:`ablate.yamlio`: lines of every key, ``${VAR}`` /
``${VAR:-default}`` from the environment), applies ``--set`` overrides, builds the schema
(:mod:`ablate.spec`, strict via :mod:`ablate.configtree`) and then builds every grid point / case
of the trial config, so a value that makes an invalid trial is reported at the line of the grid
key or case that produced it. Every problem is ONE line ``<file>:<line>: <key path>: <problem>; <fix>``
raised as :class:`UserError`.

Expansion into trials is :mod:`ablate.expand` (pure, deterministic).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from ablate.configtree import Source, build, did_you_mean, fail, set_dotted
from ablate.errors import UserError
from ablate.kinds import DEFAULT_KIND, TrialKind, get_kind
from ablate.spec import (CheckpointSpec, Distribution, MetricSpec, Resources, SearchSpec,  # noqa: F401 (re-exported)
                         SweepFile, fixed_key_problem)
from ablate.tables import TableSpec
from ablate.yamlio import ancestors, expand_env, expand_tree, read_yaml  # noqa: F401 (re-exported)

DATASETS_WITH_ROOT = ("stl10", "cifar10", "imagefolder")  # never downloaded: data.root must exist


# ---------------------------------------------------------------- the loaded sweep
@dataclass(frozen=True)
class GridAxis:
    key: str           # dotted config key (a mapping value replaces the sub-tree at key)
    values: tuple      # in file order
    line: int          # line of the key in the sweep file (0 = unknown)


@dataclass(frozen=True)
class Case:
    index: int                    # position in cases:
    overrides: dict[str, Any]     # key (dotted) -> value, applied in order like grid values
    line: int


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file. ``base`` is the sparse trial mapping (no ``kind``, no ``seed``; ``--set``
    applied); ``text`` the file as written (for reports); ``lines`` maps dotted paths (``grid.x``,
    ``cases[0].y``, list items as ``key[i]``) to 1-based lines."""

    path: str
    text: str
    lines: Mapping[str, int]
    name: str
    description: str
    kind: str
    base: dict[str, Any]
    grid: tuple[GridAxis, ...]
    cases: tuple[Case, ...]
    cases_mode: str
    seeds: tuple[int, ...]
    resources: Resources
    max_concurrent: int
    metric: MetricSpec
    table: Optional[TableSpec]
    search: Optional[SearchSpec]
    storage: Optional[str]
    max_failures: int
    checkpoint: CheckpointSpec
    logging: tuple[str, ...]
    overrides: dict[str, Any] = field(default_factory=dict)  # the --set overrides as given
    overridden: frozenset[str] = frozenset()                  # file paths they replaced (e.g. base.optim.lr)
    # expansion is pure, so ablate.expand memoises its work here (validation builds every cell once)
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def trial_kind(self) -> TrialKind:
        return get_kind(self.kind)

    @property
    def results_location(self) -> str:
        """``<storage or results>/<name>`` (a path, or a URI for remote storage)."""
        return f"{(self.storage or 'results').rstrip('/')}/{self.name}"

    @property
    def search_base(self) -> dict[str, Any]:
        """The mapping a search's sampled dotted keys are merged into (``base`` + the one seed)."""
        return {**self.base, "seed": self.seeds[0]} if _has_seed(self.trial_kind) else dict(self.base)

    def source(self, prefix: str = "") -> "SweepSource":
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

    def sub(self, prefix: str) -> "SweepSource":
        return SweepSource(self.file, self.lines, f"{self.prefix}.{prefix}" if self.prefix else prefix, self.overridden)


def _has_seed(kind: TrialKind) -> bool:
    return "seed" in {f.name for f in dataclasses.fields(kind.config_cls)}


# ---------------------------------------------------------------- loading
TOP_KEYS = tuple(f.name for f in dataclasses.fields(SweepFile))


def undot(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim.lr": 1, "predictor": {...}}`` -> nested, applied in order (a mapping replaces a sub-tree)."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        set_dotted(out, str(k), undot(v) if isinstance(v, Mapping) else v)
    return out


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> set[str]:
    """Apply ``--set`` keys: ``seeds=[0]`` / ``resources.gpu=1`` (top-level sweep keys) or
    ``base.optim.lr=0.1`` / ``optim.lr=0.1`` (the trial config). Returns the file paths replaced."""
    paths: set[str] = set()
    for key, value in overrides.items():
        key = str(key)
        top = key.split(".")[0]
        full = key if top in TOP_KEYS else f"base.{key}"
        if full.startswith("base."):
            base = data.get("base")
            data["base"] = base = undot(base) if isinstance(base, Mapping) else {}
            set_dotted(base, full[len("base."):], value)
        else:
            set_dotted(data, full, value)
        paths.add(full)
    return paths


def load_sweep(path: str | Path, overrides: Mapping[str, Any] | None = None, *, validate_paths: bool = True) -> Sweep:
    """Load, validate completely and return a :class:`Sweep`.

    ``overrides`` are ``--set`` dotted keys (``ablate.configtree.parse_set``): trial-config keys go into
    ``base`` (``train.epochs``), top-level sweep keys (``seeds``, ``max_concurrent``, ``resources.gpu``)
    replace the file's. ``validate_paths=False`` skips the dataset-existence checks (``--no-data``).
    """
    file = str(path)
    data, lines, text = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{file}: expected a mapping with name:, base: and grid: (see sweeps/smoke.yaml), got {data!r}")
    data = expand_tree(data, file, lines)
    data = {k: v for k, v in data.items() if v is not None}  # `grid:` with everything commented out = default
    if "name" not in data:
        raise UserError(f"{file}: name: is required; add e.g. name: {Path(file).stem} (results go to results/<name>/)")
    overridden = frozenset(_apply_overrides(data, overrides or {}))
    src = SweepSource(file, lines, "", overridden)
    _check_lists(data, src)
    raw_base = data.get("base", {})
    if not isinstance(raw_base, Mapping):
        raise fail(src, "base", f"expected a mapping of trial config keys, e.g. {{optim: {{lr: 0.03}}}}, got {raw_base!r}")
    base = undot(raw_base)
    if "seed" in base:
        raise fail(src, "base.seed", fixed_key_problem("seed"))
    kind = get_kind(base.pop("kind", DEFAULT_KIND), src, "base.kind")
    spec: SweepFile = build(SweepFile, {**data, "base": base}, src)

    metric = spec.metric if spec.metric.name else MetricSpec(*kind.default_metric)
    search = spec.search
    if search is not None:
        space = {str(k): Distribution(dist, tuple(args)) for k, v in search.space.items() for dist, args in v.items()}
        search = dataclasses.replace(search, metric=search.metric or metric.name, mode=search.mode or metric.mode,
                                     space=space)
    sweep = Sweep(
        path=file, text=text, lines=dict(lines), name=spec.name, description=spec.description, kind=kind.name,
        base=base,
        grid=tuple(GridAxis(str(k), tuple(v), lines.get(f"grid.{k}", 0)) for k, v in spec.grid.items()),
        cases=tuple(Case(i, {str(k): v for k, v in c.items()}, lines.get(f"cases[{i}]", 0))
                    for i, c in enumerate(spec.cases)),
        cases_mode=spec.cases_mode, seeds=spec.seeds, resources=spec.resources.normalised(),
        max_concurrent=spec.max_concurrent, metric=metric, table=spec.table, search=search,
        storage=spec.storage, max_failures=spec.max_failures, checkpoint=spec.checkpoint,
        logging=spec.logging, overrides=dict(overrides or {}), overridden=overridden)
    _validate(sweep, kind, validate_paths)
    return sweep


def _check_lists(data: Mapping[str, Any], src: Source) -> None:
    """Friendlier messages than "expected tuple" for the list-valued keys users most often write bare."""
    table = data.get("table") if isinstance(data.get("table"), Mapping) else {}
    for key, value in [("seeds", data.get("seeds")), ("cases", data.get("cases")), ("logging", data.get("logging")),
                       ("table.rows", table.get("rows")), ("table.cols", table.get("cols"))]:
        if value is not None and not isinstance(value, list):
            raise fail(src, key, f"expected a list, got {value!r}; write [{value!r}]")
    for i, case in enumerate(data.get("cases") or []):
        if not isinstance(case, Mapping):
            raise fail(src, f"cases[{i}]", f"expected a mapping of overrides, e.g. {{predictor.name: linear}}, got {case!r}")


# ---------------------------------------------------------------- checks that need the trial kind
def _validate(sweep: Sweep, kind: TrialKind, validate_paths: bool) -> None:
    from ablate import expand  # expand imports nothing from here at runtime: no cycle

    src = sweep.source()
    if not _has_seed(kind) and sweep.seeds != (0,):
        raise fail(src, "seeds", f"trials of kind {kind.name} have no seed; remove seeds")
    metrics = kind.metric_names(numeric_only=True)
    _check_metric(src, "metric.name", sweep.metric.name, kind, metrics)
    if sweep.search is not None:
        _check_metric(src, "search.metric", sweep.search.metric, kind, metrics)
    if sweep.table is not None:
        _check_metric(src, "table.metric", sweep.table.metric, kind, metrics)
        from ablate.results import config_columns

        columns = config_columns(kind.config_cls)
        for part in ("rows", "cols"):
            for i, key in enumerate(getattr(sweep.table, part)):
                if key not in columns:
                    raise fail(src, f"table.{part}[{i}]", f"{key!r} is not a config key of kind {kind.name}"
                               f"{did_you_mean(key, columns) or '; give a dotted leaf key such as predictor.name'}")
    built = expand.built_cells(sweep)  # builds every grid point / case: raises at the responsible line
    if sweep.search is not None:
        expand.check_search_space(sweep)
    if validate_paths:
        seen: set[Any] = set()
        for _, cell_src, cfg in built:
            data = getattr(cfg, "data", None)
            if data is not None and data not in seen:
                seen.add(data)
                check_data_paths(data, cell_src)


def _check_metric(src: Source, key: str, name: str, kind: TrialKind, metrics: list[str]) -> None:
    if name not in metrics:
        hint = did_you_mean(name, metrics)
        raise fail(src, key, f"unknown metric {name!r} for kind {kind.name}{hint or ''}"
                   f"{'' if hint else '; choose one of ' + ', '.join(metrics)}")


def check_data_paths(data: Any, src: Source) -> None:
    """The dataset of a trial exists where ``data.root`` says (it is never downloaded)."""
    name, root = getattr(data, "name", None), getattr(data, "root", None)
    if name not in DATASETS_WITH_ROOT or not root:
        return
    if not Path(root).is_dir():
        rel = "" if Path(root).is_absolute() else f" (relative to {os.getcwd()})"
        raise fail(src, "data.root", f"directory {root!r} does not exist{rel}; "
                   f"put {name} there, point data.root (or ABLATE_DATA) at it, or check with --no-data")
    try:
        from ablate import data as datamod
    except ImportError:
        return
    check = getattr(datamod, "check_dataset", None)
    if check is None:
        return
    try:
        problem = check(data)
    except UserError as e:
        raise type(e)(f"{src.where('data.root')}: data.root: {e}") from None
    if isinstance(problem, str) and problem:
        raise fail(src, "data.root", problem)
