"""The schema of a sweep file: frozen dataclasses built strictly by :mod:`ablate.config.tree`.

Each class's field metadata (``doc``, ``min``/``max``/``gt``) is the sweep-file reference (docs/config.md)
and the range check at once. ``check()`` hooks hold the rules that span fields (seeds unique, grid
values are non-empty lists, search not with grid, ...); the tree builder raises their problem as one line
``<file>:<line>: <key>: <problem>; <fix>``. Loading and the checks that need the trial kind are in
:mod:`ablate.sweep.load`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ablate.config.tree import INT64_MAX, did_you_mean, doc
from ablate.results.layout import BENCH_DIR, PAPER_FILE
from ablate.sweep.table_block import TableSpec

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
NAME_MAX = 100  # characters: a folder name, with room for `.old-<time>` and Ray's trial folders below it
# folders of results/ the tool itself fills (compared in lower case: macOS folds case)
RESERVED_NAMES = {PAPER_FILE.parent.name: "holds the paper's numbers", BENCH_DIR.name: "is where ablate bench writes"}
BACKUP_MARK = ".old-"  # `ablate run --restart` moves <name>/ aside to <name>.old-<time>/ (SweepDir.backup)
MAX_TRIALS = 100_000  # trials a sweep may make, counted from its axes' lengths before anything is expanded
MAX_RESOURCE = 4096  # CPUs, GPUs or workers of one trial: more than any job has (Ray crashes on 1e300 CPUs)
# name -> number of arguments (None: a non-empty list of values). The names are Ray Tune's
# sampling functions, so the runner maps them 1:1 (``getattr(tune, kind)(*values)``).
DISTRIBUTIONS: dict[str, int | None] = {"uniform": 2, "loguniform": 2, "quniform": 3, "randint": 2, "choice": None}


# ---------------------------------------------------------------- the schema (docs/config.md is generated from it)
@dataclass(frozen=True)
class Resources:
    """What Ray reserves for one trial. After loading, ``gpu`` is the trial's total and
    ``gpus_per_worker`` the share of each of its ``workers`` (both always set)."""

    cpu: float = field(default=1.0, metadata=doc("CPUs per trial", min=0, max=MAX_RESOURCE))
    gpu: float = field(
        default=0.0,
        metadata=doc("GPUs per trial; a fraction < 1 packs several trials onto one GPU", min=0, max=MAX_RESOURCE),
    )
    workers: int = field(default=1, metadata=doc("data-parallel workers per trial", min=1, max=MAX_RESOURCE))
    gpus_per_worker: float | None = field(
        default=None,
        metadata=doc("GPUs per worker of a data-parallel trial; null = gpu / workers", min=0, max=MAX_RESOURCE),
    )

    def check(self) -> tuple[str, str] | None:
        for key in ("gpu", "gpus_per_worker"):
            v = getattr(self, key)
            if v is not None and v > 1 and v != int(v):
                return key, (
                    f"{v:g} GPUs is neither a fraction (< 1, shared GPU) nor a whole number; "
                    f"use e.g. {v % 1:g} or {int(v) + 1}"
                )
        if self.gpus_per_worker is not None and self.gpu and abs(self.gpu - self.gpus_per_worker * self.workers) > 1e-9:
            return "gpus_per_worker", (
                f"{self.gpus_per_worker:g} x {self.workers} workers disagrees with gpu {self.gpu:g}; "
                "set only one of gpu (per trial) and gpus_per_worker"
            )
        return None

    def normalised(self) -> Resources:
        per = self.gpus_per_worker if self.gpus_per_worker is not None else self.gpu / self.workers
        return dataclasses.replace(self, gpu=self.gpu or per * self.workers, gpus_per_worker=per)


@dataclass(frozen=True)
class MetricSpec:
    name: str = field(
        default="",
        metadata=doc("result column shown as best-so-far; empty = the kind's default (ssl: probe_top1_best)"),
    )
    mode: Literal["max", "min"] = field(default="max", metadata=doc("max or min: which direction is better"))


@dataclass(frozen=True)
class CheckpointSpec:
    every: int = field(default=0, metadata=doc("checkpoint every N epochs; 0 = off", min=0))
    keep: int = field(default=2, metadata=doc("keep the last K checkpoints", min=1))


@dataclass(frozen=True)
class Distribution:
    """One search-space entry: ``kind`` is a Ray Tune sampler name, ``values`` its arguments
    (``randint``'s upper bound is exclusive, as in Ray; ``choice``'s values are the options)."""

    kind: str
    values: tuple


@dataclass(frozen=True)
class SearchSpec:
    algo: Literal["optuna"] = field(default="optuna", metadata=doc("search algorithm (Optuna TPE via Ray Tune)"))
    metric: str = field(default="", metadata=doc("metric to optimise; empty = the sweep's metric.name"))
    mode: Literal["max", "min"] | None = field(default=None, metadata=doc("max or min; null = the sweep's metric.mode"))
    num_samples: int = field(default=10, metadata=doc("number of trials to sample", min=1, max=MAX_TRIALS))
    seed: int = field(
        default=0,
        metadata=doc("seed of the sampler, so a search is reproducible (Optuna: < 2**32)", min=0, max=2**32 - 1),
    )
    space: dict = field(
        default_factory=dict,
        metadata=doc(
            "dotted config key -> {uniform|loguniform: [low, high]}, {quniform: [low, high, q]}, "
            "{randint: [low, high)}, {choice: [v1, v2, ...]}"
        ),
    )

    def check(self) -> tuple[str, str] | None:
        if not self.space:
            return "space", "is empty; give at least one dotted key, e.g. optim.lr: {loguniform: [0.001, 0.1]}"
        for key, spec in self.space.items():
            problem = distribution_problem(spec)
            if problem:
                return f"space.{key}", problem
        return None


@dataclass(frozen=True)
class SweepFile:
    """The top level of a sweep file (docs/config.md's sweep-file reference is generated from it)."""

    name: str = field(metadata=doc("sweep name [A-Za-z0-9_.-]; results go to <storage>/<name>/"))
    description: str = field(default="", metadata=doc("free text; its first line is shown by ablate check"))
    base: dict = field(
        default_factory=dict,
        metadata=doc(
            "the sparse trial config every trial starts from; base.kind picks the trial kind (ssl, linear_dynamics "
            "or a plugin's)"
        ),
    )
    grid: dict = field(
        default_factory=dict,
        metadata=doc(
            "dotted key -> list of values; Cartesian product in file order (last key fastest); "
            "a mapping value replaces the sub-tree"
        ),
    )
    cases: tuple[dict, ...] = field(default=(), metadata=doc("explicit override mappings (dotted keys or nested)"))
    cases_mode: Literal["add", "cross"] = field(
        default="add",
        metadata=doc("add: cases are extra trials after the grid's; cross: every case x every grid point"),
    )
    seeds: tuple[int, ...] = field(default=(0,), metadata=doc("seeds; always the outermost axis", min=0))
    resources: Resources = field(default_factory=Resources, metadata=doc("per-trial resources"))
    max_concurrent: int = field(
        default=0, metadata=doc("trials at once; 0 = as many as resources allow", min=0, max=MAX_TRIALS)
    )
    metric: MetricSpec = field(default_factory=MetricSpec, metadata=doc("metric shown as best-so-far"))
    table: TableSpec | None = field(default=None, metadata=doc("the paper-shaped table of this sweep (ablate table)"))
    search: SearchSpec | None = field(default=None, metadata=doc("Optuna search instead of a grid"))
    storage: str | None = field(
        default=None, metadata=doc("results location: a path or a pyarrow filesystem URI; null = results/")
    )
    max_failures: int = field(
        default=0, metadata=doc("retries of a failed trial (from its last checkpoint)", min=0, max=1000)
    )
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec, metadata=doc("trial checkpoints"))
    stop_collapsed: int = field(
        default=0,
        metadata=doc(
            "end a trial after N evaluations in a row with collapsed = true (status collapsed_stopped, a result "
            "tables mark); 0 = off, the paper's sweeps",
            min=0,
            max=MAX_TRIALS,
        ),
    )
    share_prefix: bool = field(
        default=True,
        metadata=doc(
            "trials that differ only in train.epochs run once, as the longest, and the shorter are read from its first "
            "epochs where nothing depends on the length (constant lr and EMA); false: each runs on its own"
        ),
    )
    logging: tuple[Literal["tensorboard", "mlflow", "wandb"], ...] = field(
        default=(), metadata=doc("extra trackers: tensorboard, mlflow, wandb")
    )
    plugins: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "your own predictors, datasets or trial kinds: Python files (relative to the sweep file) or module "
            "names, loaded before anything else (docs/plugins.md)"
        ),
    )

    def check(self) -> tuple[str, str] | None:
        problem = name_problem(self.name)
        if problem:
            return "name", problem
        earlier: list[str] = []
        for key, values in self.grid.items():
            problem = _grid_problem(str(key), values, earlier)
            if problem:
                return f"grid.{key}", problem
            earlier.append(str(key))
        size = self._size_problem()
        if size:
            return size
        seen: set[int] = set()
        for i, s in enumerate(self.seeds):
            if s in seen:
                return f"seeds[{i}]", f"seed {s} is listed twice; list each seed once"
            seen.add(s)
        if not self.seeds:
            return "seeds", "is empty; give at least one seed, e.g. seeds: [0]"
        for i, case in enumerate(self.cases):
            for key in case:
                if str(key).split(".")[0] in ("seed", "kind"):
                    return f"cases[{i}].{key}", fixed_key_problem(str(key))
        for i, name in enumerate(self.logging):
            if name in self.logging[:i]:
                return f"logging[{i}]", f"{name!r} is listed twice; list each tracker once"
        if self.search is not None:
            if self.grid:
                return "grid", (
                    "cannot be combined with search (both choose the trials); move the grid's values "
                    "into search.space as {choice: [...]} or remove search"
                )
            if self.cases:
                return "cases", "cannot be combined with search; run the cases as a separate sweep or remove search"
            if len(self.seeds) != 1:
                return "seeds", "a search runs each sampled point once; give one seed, e.g. seeds: [0]"
            for key in self.search.space:
                if str(key).split(".")[0] in ("seed", "kind"):
                    return f"search.space.{key}", fixed_key_problem(str(key))
        return None

    def _size_problem(self) -> tuple[str, str] | None:
        sizes = [len(v) for v in self.grid.values()]
        n = trial_count(sizes, len(self.cases), self.cases_mode, len(self.seeds))
        if n <= MAX_TRIALS:
            return None
        points = f"{' x '.join(map(str, sizes))} grid points" if sizes else ""
        cases = f"{len(self.cases)} cases" if self.cases else ""
        join = " x " if self.cases_mode == "cross" else " + "
        cells = join.join(p for p in (points, cases) if p) or "1 cell"
        cells = f"({cells})" if " + " in cells else cells
        seeds = f"{len(self.seeds)} seed{'s' * (len(self.seeds) != 1)}"
        return "grid" if self.grid else "cases" if self.cases else "seeds", (
            f"makes {n:,} trials ({cells} x {seeds}), more than the {MAX_TRIALS:,} a sweep may have; "
            "split it into several sweep files, or sample the space with search:"
        )


def trial_count(grid_sizes: Sequence[int], n_cases: int, cases_mode: str, n_seeds: int) -> int:
    """Trials a grid / cases / seeds sweep expands to (duplicates not yet dropped), from the axes'
    lengths alone: (grid points + cases, or grid points x cases with ``cross``) x seeds."""
    points = math.prod(grid_sizes) if grid_sizes else 0
    if cases_mode == "cross" and n_cases:
        return max(points, 1) * n_cases * n_seeds
    return (points + n_cases or 1) * n_seeds


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a sweep's results folder ``<storage>/<name>/``, or None."""
    if not NAME_RE.fullmatch(name) or name[0] in "._":
        return (
            f"{name!r} is not a folder name; use letters, digits, _ . - "
            "(not starting with . or _), e.g. stl10_directpred"
        )
    if len(name) > NAME_MAX:
        return (
            f"is {len(name)} characters long; at most {NAME_MAX} (it names the results folder), e.g. stl10_directpred"
        )
    reserved = RESERVED_NAMES.get(name.lower())
    if reserved:
        return f"{name!r} is taken: results/{name.lower()}/ {reserved}; choose another name, e.g. {name}_sweep"
    if BACKUP_MARK in name.lower():
        return (
            f"{name!r} has {BACKUP_MARK!r} in it, the mark of the folders `ablate run --restart` moves results "
            f"aside to; choose a name without it, e.g. {name.lower().replace(BACKUP_MARK, '_')}"
        )
    return None


def fixed_key_problem(key: str) -> str:
    """Why ``seed`` / ``kind`` cannot be set where a grid, case or search would vary them."""
    if key.split(".")[0] == "seed":
        return "the seed is set by the seeds axis; remove it here and list seeds in seeds: [0, 1, 2]"
    return "the trial kind is fixed per sweep; set it once in base.kind"


def _grid_problem(key: str, values: Any, earlier: list[str]) -> str | None:
    if key.split(".")[0] in ("seed", "kind"):
        return fixed_key_problem(key)
    if isinstance(values, Mapping):
        return (
            "expected a list of values, got a mapping; write dotted keys (e.g. predictor.rho: [0.3, 0.5]) "
            "or a list of mappings (e.g. predictor: [{name: mlp}, {name: directpred}])"
        )
    if not isinstance(values, list):
        return f"expected a list of values, got {values!r}; write [{values!r}] for a single value or move it to base"
    if not values:
        return "is an empty list (the sweep would have no trials); give at least one value or remove the key"
    for prev in earlier:
        if prev.startswith(key + "."):
            return (
                f"replaces the whole sub-tree that grid.{prev} (above it) sets; "
                f"list {key} before {prev} so the values of {prev} apply inside it"
            )
    return None


def _finite(a: Any) -> bool:
    """A number a trial config can hold: a finite float or a 64-bit int."""
    if isinstance(a, bool) or not isinstance(a, (int, float)):
        return False
    return abs(a) <= INT64_MAX if isinstance(a, int) else math.isfinite(a)


def distribution_problem(spec: Any) -> str | None:
    """Why a search-space entry like ``{loguniform: [0.001, 0.1]}`` is invalid, or None."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        return f"expected one distribution, e.g. {{uniform: [0.0, 0.5]}} or {{choice: [0.3, 0.5]}}, got {spec!r}"
    ((name, args),) = spec.items()
    if name not in DISTRIBUTIONS:
        return (
            f"unknown distribution {name!r}; choose one of {', '.join(DISTRIBUTIONS)}"
            f"{did_you_mean(str(name), DISTRIBUTIONS)}"
        )
    n = DISTRIBUTIONS[name]
    if n is None:
        if not isinstance(args, list) or not args:
            return f"choice needs a non-empty list of values, e.g. {{choice: [0.3, 0.5]}}, got {args!r}"
        return None
    form = {2: "[low, high]", 3: "[low, high, q]"}[n]
    numeric = isinstance(args, list) and all(_finite(a) for a in args)
    if not numeric or len(args) != n:
        return f"{name} needs {form} (finite numbers), got {args!r}"
    if name == "randint" and not all(isinstance(a, int) for a in args):
        return f"randint needs integer bounds [low, high) (high exclusive), got {args!r}"
    low, high = args[0], args[1]
    if low >= high:
        return f"low {low} >= high {high}; write {form} with low < high"
    if name == "loguniform" and low <= 0:
        return f"loguniform needs low > 0, got {low}; use uniform for ranges that include 0"
    if name == "quniform" and args[2] <= 0:
        return f"quniform needs q > 0, got {args[2]}"
    return None
