"""Lines of ``ablate data check`` that every dataset's check shares: class counts, the official sizes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def per_class(counts: np.ndarray) -> str:
    """``10 classes, 500 per class`` (or a range, and how many classes have no image)."""
    present = int((counts > 0).sum())
    shown = f"{counts.min()} per class" if counts.min() == counts.max() else f"{counts.min()}..{counts.max()} per class"
    return f"{len(counts)} classes, {shown}" + (
        f" ({len(counts) - present} classes absent)" if present < len(counts) else ""
    )


def official_line(official: Mapping[str, int], found: Mapping[str, int]) -> str:
    """Whether the splits ``found`` have the official release's sizes."""
    sizes = ", ".join(f"{k} {v}" for k, v in official.items())
    if {k: found.get(k) for k in official} == dict(official):
        return f"  the official sizes ({sizes})"
    return f"  note: not the official sizes ({sizes}): a subset, or another dataset in this layout"
