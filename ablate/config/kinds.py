"""The registry of trial kinds: what a sweep's ``base.kind`` can name.

A kind is the config class its trials are built into (strictly, by :mod:`ablate.config.tree`) and
the facts the layers above look up by its name: the metric shown as best-so-far when a sweep
names none, and how often its rows travel to the driver. ``ssl`` is the pretraining trial (BYOL /
SimSiam / DirectPred); ``linear_dynamics`` integrates the paper's linear-network flow (Sec. 3,
Lemma 1, Theorems 1-3). The metric columns of each kind are the results schema's
(:data:`ablate.results.schema.METRICS`); the function that runs each kind is the run room's
(:data:`ablate.runner.trainable.RUNNERS`).

Adding a kind is one entry in :data:`KINDS` (and one in each of those two tables).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ablate.config.dynamics import DynamicsConfig
from ablate.config.tree import Source, build, did_you_mean, fail
from ablate.config.trial import TrialConfig

DEFAULT_KIND = "ssl"


@dataclass(frozen=True)
class TrialKind:
    """One kind of trial.

    ``default_metric``: ``(column, mode)`` shown as best-so-far when a sweep names no ``metric``;
    ``batch_rows_s``: rows of this kind reach the driver in batches at most this many seconds apart
    (0: each row on its own; the theory kind reports hundreds of rows a second)."""

    name: str
    config_cls: type
    default_metric: tuple[str, str]
    doc: str
    batch_rows_s: float = 0.0

    @property
    def has_seed(self) -> bool:
        return any(f.name == "seed" for f in dataclasses.fields(self.config_cls))


KINDS: dict[str, TrialKind] = {
    "ssl": TrialKind(
        "ssl",
        TrialConfig,
        ("probe_top1_best", "max"),
        "BYOL / SimSiam / DirectPred pretraining with linear-probe and kNN evaluation",
    ),
    "linear_dynamics": TrialKind(
        "linear_dynamics",
        DynamicsConfig,
        ("f_max", "max"),  # largest eigenvalue of F: 0 once every mode collapsed
        "the paper's linear-network learning dynamics (Eq. 4-6), integrated numerically",
        batch_rows_s=1.0,
    ),
}


def get_kind(kind: TrialKind | str, src: Source | None = None, path: str = "kind") -> TrialKind:
    """A registered kind by name (or the kind itself); an unknown name is a :class:`UserError`."""
    if isinstance(kind, TrialKind):
        return kind
    if not isinstance(kind, str) or kind not in KINDS:
        raise fail(
            src or Source(),
            path,
            f"unknown trial kind {kind!r}; choose one of {', '.join(KINDS)}{did_you_mean(str(kind), KINDS)}",
        )
    return KINDS[kind]


def build_config(kind: TrialKind | str, mapping: Mapping[str, Any] | None, src: Source | None = None) -> Any:
    """Strictly build ``kind``'s config from a sparse mapping (a ``kind`` key in it must agree)."""
    kind = get_kind(kind, src)
    data = dict(mapping or {})
    named = data.pop("kind", kind.name)
    if named != kind.name:
        raise fail(
            src or Source(),
            "kind",
            f"is {named!r} but this trial is built as {kind.name!r}; a sweep has one kind, set it in base.kind",
        )
    return build(kind.config_cls, data, src)
