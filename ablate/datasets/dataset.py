"""What one dataset record is (:class:`Dataset`, its :class:`Sizes` and :class:`Archive`), and how it is registered.

The built-in datasets (one module each beside this one) and a plugin's build a :class:`Dataset` and
pass it to :func:`register_dataset`; :mod:`ablate.datasets.records` holds the registry with the
built-ins in. The helpers below read nothing but a record, so that a dataset's messages (where it
lives, how to get it) are the same wherever they are shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.config.registry import DATASETS, RECIPES
from ablate.datasets.recipes import Recipe, register_recipe
from ablate.errors import DatasetError, UserError

if TYPE_CHECKING:
    import torch

    from ablate.config.trial import DataConfig
    from ablate.datasets.images import Splits

ROOT_ENV, DEFAULT_ROOT = "ABLATE_DATA", "data"


@dataclass(frozen=True)
class Sizes:
    """How many images a trial of a dataset touches (the memory and cost estimates read these)."""

    pretrain: int  # images one pretraining epoch passes over
    probe_train: int  # images the linear probe / kNN memory bank is built from
    probe_test: int  # images the probe / kNN is evaluated on
    resident: int  # images held on the trial's device as one uint8 tensor (0: decoded in DataLoader workers)
    side: int  # side of the images as batches bring them to the device (the crop when data.image_size is 0)


@dataclass(frozen=True)
class Archive:
    """The official archive ``ablate data fetch`` downloads.

    ``size`` is the archive's length in bytes as its server reports it; ``unpacked`` is what its
    files take once extracted, computed from the file formats (both only size the free-space check
    and bound the download)."""

    url: str
    md5: str
    folder: str  # the archive's one top-level folder, which the loader looks for in data.root
    size: int
    unpacked: int
    page: str  # the dataset's web page, for the docs

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Dataset:
    """One dataset. ``load`` reads it (never downloads; :class:`ablate.errors.DatasetError` when it is
    missing or malformed); ``sizes`` says how many images a trial touches for a given ``data`` config."""

    name: str  # what data.name says
    title: str  # how messages and docs name it
    doc: str  # one line for the docs and `ablate data list`: what it is, what a trial pretrains and probes on
    load: Callable[[DataConfig, torch.device], Splits]
    sizes: Callable[[DataConfig], Sizes]
    channels: int
    image_size: int  # side of the stored images: the crop when data.image_size is 0
    classes: int
    recipe: str  # the augmentation recipe data.augment: auto stands for (a name in RECIPES)
    augmentation: Recipe | None = None  # its own recipe, registered under its name (data.augment: <name>)
    folder: str = ""  # its folder under the data root (`ablate data fetch` writes <root>/<folder>); "" = no data.root
    layout: str = ""  # what data.root holds, for the docs and messages
    splits: Mapping[str, int] = field(default_factory=dict)  # the official release's split sizes
    archive: Archive | None = None  # what `ablate data fetch` downloads; None = not downloadable
    marks: tuple[str, ...] = ()  # names whose presence shows a folder holds it (broken, then, rather than absent)
    howto: str = ""  # how to prepare it by hand when there is no archive ({root}: its folder, {base}: the data root)
    check: Callable[[Path], list[str]] | None = None  # `ablate data check`: lines about a folder, DatasetError if bad
    aliases: tuple[str, ...] = ()  # other names `ablate data fetch / check` accept for it

    @property
    def needs_root(self) -> bool:
        """Whether a trial needs data.root (the dataset lives on disk, it is not bundled or generated)."""
        return bool(self.folder)

    def how_to_get(self, root: Path | None = None) -> str:
        """The commands that put this dataset where ``data.root`` (``root``) points: ``ablate data
        fetch`` writes ``<--root>/<folder>``, so a data.root named like that folder is fetched with
        --root its parent."""
        if self.archive is None:
            return f"prepare it as `ablate data fetch {self.name}` explains, then run `ablate data check {self.name}`"
        if root is not None and root.name == self.folder:
            fetch, check = (f"ablate data {action} {self.name} --root {root.parent}" for action in ("fetch", "check"))
            return f"get it with `{fetch}` and check it with `{check}`"
        return (
            f"get it with `ablate data fetch {self.name} --root DIR` (it writes DIR/{self.folder}: point data.root "
            f"there) and check it with `ablate data check {self.name} --root DIR`"
        )

    def root(self, cfg: DataConfig) -> Path:
        """``data.root`` as a directory that exists; a DatasetError saying how to get the dataset otherwise."""
        if not cfg.root:
            raise DatasetError(
                f"dataset {self.name!r} needs data.root, the directory that holds it; {self.how_to_get()}"
            )
        root = Path(cfg.root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"data.root {root} is not a directory (dataset {self.name!r}); {self.how_to_get(root)}")
        return root


def register_dataset(record: Dataset) -> Dataset:
    """Add ``record`` to :data:`DATASETS`, and its own augmentation recipe to :data:`RECIPES` under its
    name (a name already taken, or an auto recipe that is not registered, is a :class:`UserError`)."""
    if not isinstance(record, Dataset):
        raise UserError(f"a dataset record must be an ablate.datasets.records.Dataset, got {record!r}")
    if record.archive is not None and (record.check is None or not record.folder):
        raise UserError(
            f"dataset {record.name!r} has an archive, so it needs a folder and a check (`ablate data fetch` checks "
            "what it unpacked before putting it in place)"
        )
    own = record.augmentation is not None and record.recipe == record.name
    if not own and record.recipe not in RECIPES:
        raise UserError(
            f"dataset {record.name!r}: its recipe {record.recipe!r} is not an augmentation recipe; give it its own "
            f"(Dataset.augmentation, recipe={record.name!r}) or name one of {', '.join(RECIPES)}"
        )
    if record.augmentation is not None:
        register_recipe(record.name, record.augmentation)
    return DATASETS.register(record.name, record)


def data_root(root: str | Path | None) -> Path:
    """The data root: ``root``, else ``$ABLATE_DATA``, else ``data`` (relative to the working directory)."""
    return Path(root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT).expanduser()


def find_files(root: Path, inner: str, files: list[str], title: str, note: str, hint: str) -> Path:
    """The folder that holds every one of ``files``: ``root/inner`` (as the archive unpacks) or ``root``
    itself; a DatasetError naming what is missing there, ``note`` (what the files are) and ``hint``."""
    for folder in (root / inner, root):
        if all((folder / f).is_file() for f in files):
            return folder
    folder = root if (root / files[0]).exists() else root / inner
    missing = [f for f in files if not (folder / f).is_file()]
    raise DatasetError(
        f"{title} not found in {folder}: missing {', '.join(missing)}; expected {folder}/{{{','.join(files)}}} "
        f"({note}); {hint}"
    )
