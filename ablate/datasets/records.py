"""One record per dataset: every fact about it that the loaders, ``ablate data fetch / check / list``,
the memory and cost estimates, ``ablate check`` and the docs read, and nothing spelled elsewhere.

Adding a dataset (built in, or a plugin's) is one :class:`Dataset` passed to :func:`register_dataset`;
``data.name`` then accepts its name. Read the registry as :data:`DATASETS` from this module, which
registers the built-ins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.config.registry import DATASETS

if TYPE_CHECKING:
    import torch

    from ablate.config.trial import DataConfig
    from ablate.datasets.images import Splits


@dataclass(frozen=True)
class Sizes:
    """How many images a trial of a dataset touches (the memory and cost estimates read these)."""

    pretrain: int  # images one pretraining epoch passes over
    probe_train: int  # images the linear probe / kNN memory bank is built from
    probe_test: int  # images the probe / kNN is evaluated on
    resident: int  # images held on the trial's device as one uint8 tensor (0: decoded in DataLoader workers)


@dataclass(frozen=True)
class Dataset:
    """One dataset. ``load`` reads it (never downloads; :class:`ablate.errors.DatasetError` when it is
    missing or malformed); ``sizes`` says how many images a trial touches for a given ``data`` config."""

    name: str  # what data.name says
    title: str  # how messages and docs name it
    doc: str  # one line for the docs and `ablate data list`
    load: Callable[[DataConfig, torch.device], Splits]
    sizes: Callable[[DataConfig], Sizes]
    channels: int
    image_size: int  # side of the stored images: the crop when data.image_size is 0
    classes: int
    recipe: str  # the augmentation recipe (ablate.datasets.recipes.RECIPES) data.augment: auto stands for
    folder: str = ""  # its folder under the data root (`ablate data fetch` writes <root>/<folder>); "" = no data.root
    splits: Mapping[str, int] = field(default_factory=dict)  # the official release's split sizes
    archive: Any = None  # the ablate.datasets.fetch archive `ablate data fetch` downloads; None = not downloadable
    howto: str = ""  # how to prepare it by hand when there is no archive
    check: Callable[[Path], list[str]] | None = None  # `ablate data check`: lines about a folder, DatasetError if bad
    aliases: tuple[str, ...] = ()  # other names `ablate data` accepts for it

    @property
    def needs_root(self) -> bool:
        """Whether a trial needs data.root (the dataset lives on disk, it is not bundled or generated)."""
        return bool(self.folder)


def register_dataset(record: Dataset) -> Dataset:
    """Add ``record`` to :data:`DATASETS` (a name already taken is a :class:`ablate.errors.UserError`)."""
    return DATASETS.register(record.name, record)


__all__ = ["DATASETS", "Dataset", "Sizes", "register_dataset"]


def _interim_builtins() -> None:  # TEMPORARY: replaced by the per-dataset records (datasets branch)
    from ablate.datasets import loaders

    def fixed(p, tr, te, res):
        return lambda cfg: Sizes(p, tr, te, res)

    for name, title, folder, c, side in [
        ("digits", "digits", "", 1, 16),
        ("fake", "fake", "", 3, 32),
        ("cifar10", "CIFAR-10", "cifar10", 3, 32),
        ("stl10", "STL-10", "stl10", 3, 96),
        ("imagefolder", "image folder", "imagenet", 3, 224),
    ]:
        register_dataset(
            Dataset(name, title, "", loaders.LOADERS[name], fixed(0, 0, 0, 0), c, side, 10, name, folder=folder)
        )


_interim_builtins()
