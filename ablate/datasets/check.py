"""``ablate data check``: what a dataset folder holds (files, sizes, shapes, class counts), checked
with the loader's own validation without loading the images (each record's ``check``).

The folder is ``<root>/<the record's folder>`` as ``ablate data fetch`` writes it, or the root
itself; a missing or malformed dataset is the check's one-line :class:`DatasetError`, and every
line printed is escaped (file names and class names are outside input).
"""

from __future__ import annotations

from pathlib import Path

from ablate.datasets.dataset import Dataset, data_root
from ablate.datasets.records import find
from ablate.errors import DatasetError, UserError, printable


def locate(record: Dataset, root: str | Path | None) -> Path:
    """The folder holding ``record``'s dataset: ``<root>/<its folder>`` (``data/stl10``), or ``root`` itself."""
    base = data_root(root)
    sub = base / record.folder
    for candidate in (sub, base):  # without marks, a folder of its name is taken for it
        if candidate.is_dir() and (any((candidate / m).exists() for m in record.marks) or not record.marks):
            return candidate
    how = (
        f"fetch it with: ablate data fetch {record.name} --root {base}"
        if record.archive is not None
        else f"prepare it as `ablate data fetch {record.name}` explains, or give --root the folder that holds it"
    )
    raise DatasetError(f"data check {record.name}: no {record.title} in {sub} (nor in {base}); {how}")


def check_dataset(name: str, root: str | Path | None = None) -> str:
    """What ``ablate data check NAME --root ROOT`` prints; DatasetError (one line) when it is missing or malformed."""
    record = find(name, "check")
    if record.check is None:
        raise UserError(f"data check {name}: the {record.title} needs no files ({record.layout}): nothing to check")
    folder = locate(record, root)
    lines = [*record.check(folder), f"ok: use it with data.name: {record.name}, data.root: {folder}"]
    return "\n".join(printable(line) for line in lines)
