"""``ablate data list``: one line per registered dataset, and the same facts as the docs' Markdown table.

Both are read from the records alone (:mod:`ablate.datasets.records`), so the list, ``docs/data.md``
and the README's table cannot disagree with what the loaders do (a test compares the docs with
:func:`markdown_table`).
"""

from __future__ import annotations

from ablate.config.trial import DataConfig
from ablate.datasets.dataset import Dataset
from ablate.datasets.download import human
from ablate.datasets.records import DATASETS
from ablate.errors import printable

HEADER = ("name", "dataset", "images: pretrain; probe train -> test", "image", "classes", "get it")


def images(record: Dataset) -> str:
    """``105,000; 5,000 -> 8,000``: what a trial with the default ``data`` settings touches."""
    s = record.sizes(DataConfig(name=record.name))
    return f"{s.pretrain:,}; {s.probe_train:,} -> {s.probe_test:,}"


def get_it(record: Dataset, code: str = "") -> str:
    """How the dataset gets onto this machine: fetched, prepared by hand, or nothing to get (``code``
    quotes the command: a backtick for Markdown)."""
    command = f"{code}ablate data fetch {record.name}{code}"
    if record.archive is not None:
        return f"{command} ({human(record.archive.size)} archive)"
    if record.needs_root:
        return f"by hand: {command} explains"
    return record.layout


def row(record: Dataset) -> tuple[str, ...]:
    image = f"{record.channels}x{record.image_size}x{record.image_size}"
    return (record.name, record.title, images(record), image, str(record.classes), get_it(record))


def list_lines() -> list[str]:
    """What ``ablate data list`` prints: a header, then one aligned line per registered dataset."""
    rows = [HEADER, *(tuple(printable(cell) for cell in row(r)) for r in DATASETS.values())]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(r, widths)), r[-1]]) for r in rows]


def markdown_table() -> str:
    """The datasets as the docs' Markdown table (docs/data.md and the README hold it verbatim)."""
    lines = [
        "| `data.name` | dataset | images: pretrain; probe train → test | image | classes | `augment: auto` "
        "| `data.root` holds | get it |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in DATASETS.values():
        name, title, n, image, classes, _ = row(r)
        holds = r.layout if r.needs_root else "no `data.root`"
        cells = [f"`{name}`", f"{title}: {r.doc}", n, image, classes, f"`{r.recipe}`", holds, get_it(r, "`")]
        lines.append("| " + " | ".join(cells).replace("->", "→") + " |")
    return "\n".join(lines)
