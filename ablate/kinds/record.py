"""What a trial kind is: one record that owns everything ablate does differently per kind of trial.

A kind is its config class (built strictly by :mod:`ablate.config.tree`), the function that runs one
trial, the metric columns its rows carry, the metric a sweep shows when it names none, what ``ablate
check`` says about its memory and compute, and the registry records a config draws on (whose plugins
are part of its trial id). Nothing outside a record asks which kind a trial is: the sweep loader, the
runner, the results schema, tables, status, reports and the estimates all read these fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ablate.config.registry import KINDS, Origin, Registry
from ablate.config.tree import Source, build, fail
from ablate.config.trial import config_hash
from ablate.errors import UserError
from ablate.results.schema import COMMON_COLUMNS, Column, Report, config_columns, failed_row, trial_columns

# run(config, report, checkpointer, artifacts, progress): the trial, reporting each row; the last
# three are the runner's (None outside a sweep) and a kind that has no use for them ignores them.
RunFn = Callable[[Any, Report, Any, Any, Any], Any]


def no_lines(sweep: Any) -> list[str]:
    return []


def no_records(config: Any) -> list[tuple[Registry, str]]:
    return []


def no_epochs(config: Any) -> int | None:
    return None


def no_data(config: Any) -> Any:
    return None


@dataclass(frozen=True)
class Prefix:
    """How trials of a kind that differ only in their length share one run: the longest runs, and
    each shorter one is read from its first epochs (its rows up to its length, its weights kept
    there; :mod:`ablate.sweep.prefix` plans it, :mod:`ablate.runner.readouts` writes them). That is
    exact only where no step of a trial depends on how long the trial is: the ONE rule for it is
    ``depends``."""

    key: str  # the dotted config key of a trial's length (ssl: train.epochs)
    # why the steps of a trial of this config depend on its total length (a cosine schedule); None: they do not
    depends: Callable[[Any], str | None]
    # whether a trial of this config reports a full row after epoch e (a shorter trial's last row must be one)
    reports_at: Callable[[Any, int], bool]
    # (row, long config, short config) -> the row's columns that depend on the length (ssl: total_steps)
    for_length: Callable[[dict, Any, Any], dict] = lambda row, long, short: {}


@dataclass(frozen=True)
class TrialKind:
    """One kind of trial (see the module docstring). ``metrics`` are ``(column, Arrow type, meaning)``."""

    name: str
    doc: str  # one line: what a trial of this kind is
    Config: type  # its frozen config dataclass
    run: RunFn
    metrics: Sequence[Column]
    default_metric: tuple[str, str]  # (column, max|min) shown as best-so-far when a sweep names none
    # rows reach the driver in batches at most this many seconds apart (0: each on its own; the
    # theory kind reports hundreds of rows a second and each send costs Ray a round trip)
    batch_rows_s: float = 0.0
    # what `ablate check` prints about a loaded sweep of this kind: its memory and compute estimate
    estimate: Callable[[Any], list[str]] = no_lines
    # the registry records (registry, name) a config uses: a plugin's among them joins the trial id
    uses: Callable[[Any], list[tuple[Registry, str]]] = no_records
    # the metrics the probe protocols (ablate table --protocol) choose between; () = none
    probe_metrics: tuple[str, ...] = ()
    # the config key a fraction of a GPU caps (resources.gpu < 1 packs trials); "" = uses no GPU
    gpu_share_key: str = ""
    # the global batch a data-parallel trial splits into resources.workers shards; None = not data-parallel
    batch_size: Callable[[Any], int] | None = None
    # the epochs a trial runs (the progress line shows epoch / epochs); None = it has no epochs
    epochs: Callable[[Any], int | None] = no_epochs
    # the data section a trial reads (ablate check finds its dataset where data.root says); None = no dataset
    data: Callable[[Any], Any] = no_data
    # figures of a sweep of this kind (df, spec, out, formats) -> files; None = the pretraining figures
    plot: Callable[..., list] | None = None
    # how trials that differ only in length share one run; None = they never do
    prefix: Prefix | None = None

    @property
    def has_seed(self) -> bool:
        return any(f.name == "seed" for f in dataclasses.fields(self.Config))

    def build(self, mapping: Mapping[str, Any] | None, src: Source | None = None) -> Any:
        """Strictly build this kind's config from a sparse mapping (a ``kind`` key in it must agree)."""
        data = dict(mapping or {})
        named = data.pop("kind", self.name)
        if named != self.name:
            raise fail(
                src or Source(),
                "kind",
                f"is {named!r} but this trial is built as {self.name!r}; a sweep has one kind, set it in base.kind",
            )
        return build(self.Config, data, src)

    # ------------------------------------------------------------------ identity and rows
    def plugins(self, config: Any) -> list[Origin]:
        """The plugins whose records this config uses (its kind's own first), each once."""
        origins = [KINDS.origin(self.name)] + [registry.origin(name) for registry, name in self.uses(config)]
        return list(dict.fromkeys(o for o in origins if not o.builtin))

    def trial_id(self, config: Any) -> str:
        """The trial's id: the hash of its config (:func:`ablate.config.trial.config_hash`), and of the
        source of every plugin it uses, so that an edited plugin reruns exactly its own trials."""
        plugins = self.plugins(config)
        if not plugins:
            return config_hash(config)
        blob = json.dumps([config_hash(config), sorted(p.sha256 for p in plugins)])  # a moved file is the same
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def columns(self, config: Any, device: str = "unknown") -> dict[str, Any]:
        """The identity, config and provenance columns of every row of one trial."""
        seed = config.seed if self.has_seed else 0
        return trial_columns(config, self.name, self.trial_id(config), self.plugins(config), seed, device)

    def failed_row(self, config: Any, error: str) -> dict[str, Any]:
        """The one row a trial that raised leaves behind: status failed, with its error text."""
        return failed_row(self.columns(config), error)

    # ------------------------------------------------------------------ the results schema
    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of every row of this kind: common columns, its metrics, its config leaves
        (every registered predictor's included)."""
        cols = [(n, t) for n, t, _ in [*COMMON_COLUMNS, *self.metrics]]
        names = {n for n, _ in cols}
        cols += [(k, t) for k, t in config_columns(self.Config).items() if k not in names]
        return pa.schema(cols)

    def metric_names(self, numeric_only: bool = False) -> list[str]:
        """Its metric columns; ``numeric_only`` drops list columns (spectra)."""
        return [
            name
            for name, tp, _ in self.metrics
            if not numeric_only or pa.types.is_integer(tp) or pa.types.is_floating(tp) or pa.types.is_boolean(tp)
        ]


def register_kind(kind: TrialKind) -> TrialKind:
    """Add ``kind`` to the kind registry after checking its shape; a one-line UserError otherwise."""
    problem = _shape_problem(kind)
    if problem:
        raise UserError(f"register_kind: {getattr(kind, 'name', kind)!r}: {problem}")
    return KINDS.register(kind.name, kind)


def _shape_problem(kind: Any) -> str | None:
    if not isinstance(kind, TrialKind):
        return "not an ablate.kinds.record.TrialKind"
    if not (dataclasses.is_dataclass(kind.Config) and kind.Config.__dataclass_params__.frozen):
        return "Config must be a frozen dataclass: @dataclass(frozen=True)"
    if not callable(kind.run):
        return "run must be a function run(config, report, checkpointer, artifacts, progress)"
    columns = [c[0] for c in kind.metrics if isinstance(c, tuple) and len(c) == 3]
    if len(columns) != len(kind.metrics) or not all(isinstance(c[1], pa.DataType) for c in kind.metrics):
        return "metrics must be (column, pyarrow type, meaning) triples"
    clash = sorted(set(columns) & {c[0] for c in COMMON_COLUMNS})
    if clash:
        return f"metric columns {clash} are common columns of every row; rename them"
    if kind.default_metric[0] not in columns or kind.default_metric[1] not in ("max", "min"):
        return f"default_metric {kind.default_metric!r} must be (one of its metric columns, 'max' or 'min')"
    return None
