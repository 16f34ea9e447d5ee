"""The dataset registry with the built-in datasets in: one record per dataset, and nothing spelled elsewhere.

Every fact about a dataset that the loaders, ``ablate data fetch / check / list``, the memory and
cost estimates, ``ablate check`` and the docs read is in its :class:`Dataset` record, in the
dataset's own module (:mod:`ablate.datasets.digits`, ``cifar10``, ``stl10``, ``imagefolder``,
``fake``). Adding a dataset is one :class:`Dataset` passed to :func:`register_dataset` (a built-in
one: its module's record in :data:`BUILT_IN`); ``data.name`` then accepts its name and
``data.augment`` its recipe. Read :data:`DATASETS` and :data:`RECIPES` from this module, which
registers the built-ins.
"""

from __future__ import annotations

from ablate.config.registry import BUILTIN, DATASETS, RECIPES, loading
from ablate.config.tree import did_you_mean
from ablate.datasets import cifar10, digits, fake, imagefolder, stl10
from ablate.datasets.dataset import Archive, Dataset, Sizes, register_dataset
from ablate.datasets.recipes import Recipe, register_recipe
from ablate.errors import UserError

BUILT_IN = (digits.RECORD, cifar10.RECORD, stl10.RECORD, imagefolder.RECORD, fake.RECORD)  # in the docs' order

with loading(BUILTIN):  # ours, even when a plugin's import is the first to reach this module
    for _record in BUILT_IN:
        register_dataset(_record)


def find(name: str, action: str) -> Dataset:
    """The dataset ``ablate data <action> NAME`` names (by its name or an alias); a one-line error listing them."""
    for record in DATASETS.values():
        if name in (record.name, *record.aliases):
            return record
    names = [n for record in DATASETS.values() for n in (record.name, *record.aliases)]
    raise UserError(
        f"data {action} {name!r}: unknown dataset; choose one of {', '.join(names)}{did_you_mean(name, names)}"
    )


__all__ = [
    "DATASETS",
    "RECIPES",
    "Archive",
    "Dataset",
    "Recipe",
    "Sizes",
    "find",
    "register_dataset",
    "register_recipe",
]
