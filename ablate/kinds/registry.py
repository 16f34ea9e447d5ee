"""The kinds there are: :data:`KINDS` with the built-ins registered (and with them the built-in
predictors and datasets a config may name), how a sweep names one, and strict config building.

Import registries from here, from :mod:`ablate.models.predictors` or from
:mod:`ablate.datasets.records`: each guarantees its built-ins are registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ablate.config.registry import DATASETS, KINDS, PREDICTORS
from ablate.config.tree import Source, did_you_mean, fail
from ablate.kinds.record import TrialKind
from ablate.kinds.ssl import SSL, load_trial_config

# isort: split
# registered in this order, the order messages and the docs list them in
from ablate.kinds.dynamics import DYNAMICS

DEFAULT_KIND = SSL.name

__all__ = [
    "DATASETS",
    "DEFAULT_KIND",
    "DYNAMICS",
    "KINDS",
    "PREDICTORS",
    "SSL",
    "TrialKind",
    "build_config",
    "get_kind",
    "kinds_in",
    "load_trial_config",
]


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
    return get_kind(kind, src).build(mapping, src)


def kinds_in(frame: Any) -> list[TrialKind]:
    """The registered kinds of a results table's rows (its ``kind`` column), the default kind for rows
    that carry none (results of an older ablate); kinds no longer registered are left out."""
    names = frame["kind"].dropna().unique() if "kind" in getattr(frame, "columns", ()) else ()
    return [KINDS[n] for n in names if n in KINDS] or [KINDS[DEFAULT_KIND]]
