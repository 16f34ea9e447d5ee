"""The open registries: one record per predictor, dataset and trial kind, built in or plugged in.

A registry maps a name to its record. The rooms that own the records fill them as they are
imported: the predictors in :mod:`ablate.models.predictors` (a :class:`~ablate.models.predictors.Predictor`
subclass, its ``Config`` beside it), the datasets in :mod:`ablate.datasets.records`
(a :class:`~ablate.datasets.records.Dataset`), the kinds in :mod:`ablate.kinds.registry` (a
:class:`~ablate.kinds.record.TrialKind`). Read a registry through its owner module, which guarantees
its built-ins are in; only the strict config builder (:mod:`ablate.config.tree`) reads the predictor
and dataset registries from here, because a config is validated below the rooms that fill them.

A plugin (:mod:`ablate.sweep.plugins`: a file a sweep names, or an installed package's entry point)
adds its records with the same ``register`` call while :func:`loading` marks them with its
:class:`Origin`. A name is one record: a plugin that names a built-in (or another plugin's record)
is refused; the same plugin loaded again (or edited, in a long-lived notebook) replaces its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ablate.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Origin:
    """Where a record comes from: ablate itself (``plugin`` empty) or a plugin, by name and source hash."""

    plugin: str = ""  # the sweep's plugins: entry (a file name or a module), or "dist:entry-point"
    sha256: str = ""  # of the plugin's source: part of the trial id of every trial that uses the record

    @property
    def builtin(self) -> bool:
        return not self.plugin

    def __str__(self) -> str:
        return f"plugin {self.plugin}" if self.plugin else "ablate (built in)"


BUILTIN = Origin()
_loading: ContextVar[Origin] = ContextVar("ablate_registry_origin", default=BUILTIN)


@contextmanager
def loading(origin: Origin) -> Iterator[None]:
    """Records registered inside this block come from ``origin`` (a plugin being imported)."""
    token = _loading.set(origin)
    try:
        yield
    finally:
        _loading.reset(token)


class Registry(Mapping[str, T], Generic[T]):
    """Name -> record, in registration order, with the origin of every record."""

    def __init__(self, what: str) -> None:
        self.what = what  # "predictor", "dataset", "trial kind": how messages name a record
        self._records: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}

    def register(self, name: str, record: T) -> T:
        """Add ``record`` under ``name``; a :class:`UserError` when another origin holds the name."""
        origin = _loading.get()
        if not isinstance(name, str) or not name.isidentifier():
            raise UserError(f"{origin}: {self.what} name {name!r} must be an identifier (letters, digits, _)")
        held = self._origins.get(name)
        if held is not None and held.plugin != origin.plugin:
            raise UserError(f"{origin}: {self.what} {name!r} is already registered by {held}; give yours another name")
        self._records[name], self._origins[name] = record, origin
        return record

    def origin(self, name: str) -> Origin:
        return self._origins[name]

    def __getitem__(self, name: str) -> T:
        return self._records[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"Registry({self.what}: {', '.join(self._records)})"


class ConfigView(Mapping[str, type]):
    """A registry seen as name -> the record's config class (``record.Config``): the variants a
    polymorphic config section accepts (:func:`ablate.config.tree.resolve_variant`)."""

    def __init__(self, registry: Registry[Any]) -> None:
        self.registry = registry

    def __getitem__(self, name: str) -> type:
        return self.registry[name].Config

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry)

    def __len__(self) -> int:
        return len(self.registry)


@contextmanager
def isolated() -> Iterator[None]:
    """Undo every registration made inside the block when it ends (a test that loads plugins, a tool that
    reads several sweeps' plugins in one process and must not let one sweep's names leak into the next)."""
    saved = [(r, dict(r._records), dict(r._origins)) for r in (PREDICTORS, DATASETS, RECIPES, KINDS)]
    try:
        yield
    finally:
        for registry, records, origins in saved:
            registry._records, registry._origins = records, origins


PREDICTORS: Registry[Any] = Registry("predictor")
DATASETS: Registry[Any] = Registry("dataset")
RECIPES: Registry[Any] = Registry("augmentation recipe")  # data.augment; filled beside the datasets (records)
KINDS: Registry[Any] = Registry("trial kind")
