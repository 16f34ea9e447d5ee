"""The registry of trial kinds: what a sweep's ``base.kind`` can name.

A kind ties together the three things every trial needs: its config class (a frozen-dataclass
tree built by :mod:`ablate.configtree`), its metric columns (the results schema beyond the common
columns) and the function that runs it, ``run(config, report)``. ``ssl`` is the pretraining trial
(BYOL / SimSiam / DirectPred); ``linear_dynamics`` integrates the paper's linear-network flow
(Sec. 3 / Theorems 1-3). Modules a kind needs are imported lazily, on first use, so loading a
sweep never imports torch or the theory code unless the sweep uses them.

Adding a kind is one entry in :data:`KINDS`.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

from ablate.configtree import Source, build, did_you_mean, fail

DEFAULT_KIND = "ssl"

Report = Callable[[dict[str, Any]], None]
RunFn = Callable[[Any, Report], None]


def _resolve(ref: Any) -> Any:
    """``"pkg.module:attr"`` -> the attribute (imported now); anything else is returned as is."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class TrialKind:
    """One kind of trial. Constructor arguments may be objects or lazy ``"module:attr"`` strings.

    Attributes (resolved on first access):
      ``config_cls``  the config dataclass (``base`` is built into it);
      ``metrics``     ``[(column, arrow type, meaning)]`` the kind's result metrics;
      ``run``         ``run(config, report)`` (see ``run_callable``);
      ``default_metric``  ``(name, mode)`` shown as best-so-far when a sweep names no ``metric``.
    """

    def __init__(self, name: str, config_cls: type | str, metrics: list | str, run: RunFn | str,
                 default_metric: tuple[str, str] | None = None, doc: str = "", batch_rows_s: float = 0.0) -> None:
        self.name = name
        # rows of this kind reach the driver in batches at most this many seconds apart (0: each row)
        self.batch_rows_s = batch_rows_s
        self.doc = doc
        self._refs = {"config_cls": config_cls, "metrics": metrics, "run": run}
        self._default_metric = default_metric

    def _get(self, what: str) -> Any:
        value = self._refs[what]
        if isinstance(value, str):
            value = self._refs[what] = _resolve(value)
        return value

    @property
    def config_cls(self) -> type:
        return self._get("config_cls")

    @property
    def metrics(self) -> list:
        return self._get("metrics")

    @property
    def run(self) -> RunFn:
        return self._get("run")

    def metric_names(self, numeric_only: bool = False) -> list[str]:
        """Names of the kind's metric columns; ``numeric_only`` drops list / string columns."""
        import pyarrow as pa

        out = []
        for name, tp, *_ in self.metrics:
            if numeric_only and not (pa.types.is_integer(tp) or pa.types.is_floating(tp) or pa.types.is_boolean(tp)):
                continue
            out.append(name)
        return out

    @property
    def default_metric(self) -> tuple[str, str]:
        if self._default_metric:
            return self._default_metric
        names = self.metric_names(numeric_only=True)
        return (names[0] if names else "", "max")

    def __repr__(self) -> str:
        return f"TrialKind({self.name!r})"


KINDS: dict[str, TrialKind] = {
    "ssl": TrialKind(
        "ssl", "ablate.config:TrialConfig", "ablate.results:SSL_METRICS", "ablate.trial:run_trial",
        default_metric=("probe_top1_best", "max"),
        doc="BYOL / SimSiam / DirectPred pretraining with linear-probe and kNN evaluation"),
    "linear_dynamics": TrialKind(
        "linear_dynamics", "ablate.theory.config:DynamicsConfig", "ablate.theory.dynamics:THEORY_METRICS",
        "ablate.theory.dynamics:run_linear_dynamics",
        default_metric=("f_max", "max"),  # largest eigenvalue of F: 0 once every mode collapsed
        doc="the paper's linear-network learning dynamics (Eq. 4-6), integrated numerically"),
}


def get_kind(kind: TrialKind | str, src: Source | None = None, path: str = "kind") -> TrialKind:
    """A registered kind by name (or the kind itself); an unknown name is a :class:`UserError`."""
    if isinstance(kind, TrialKind):
        return kind
    if not isinstance(kind, str) or kind not in KINDS:
        raise fail(src or Source(), path, f"unknown trial kind {kind!r}; choose one of "
                   f"{', '.join(KINDS)}{did_you_mean(str(kind), KINDS)}")
    return KINDS[kind]


def kind_of(mapping: Mapping[str, Any] | None, src: Source | None = None) -> TrialKind:
    """The kind a sparse trial mapping asks for with its ``kind`` key (default ``ssl``)."""
    name = (mapping or {}).get("kind", DEFAULT_KIND)
    return get_kind(name, src)


def build_config(kind: TrialKind | str, mapping: Mapping[str, Any] | None, src: Source | None = None) -> Any:
    """Strictly build ``kind``'s config from a sparse mapping (a ``kind`` key in it must agree)."""
    kind = get_kind(kind, src)
    data = dict(mapping or {})
    named = data.pop("kind", kind.name)
    if named != kind.name:
        raise fail(src or Source(), "kind", f"is {named!r} but this trial is built as {kind.name!r}; "
                   "a sweep has one kind, set it in base.kind")
    return build(kind.config_cls, data, src)


def run_callable(kind: TrialKind | str) -> RunFn:
    """The kind's ``run(config, report)`` function (imported now)."""
    return get_kind(kind).run
