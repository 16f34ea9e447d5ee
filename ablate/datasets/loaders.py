"""A trial's data: the :class:`~ablate.datasets.images.Splits` of ``data.name``, read by its record's loader.

Small-image datasets live as one uint8 tensor on the trial's device
(:class:`~ablate.datasets.images.TensorImageSet`): batches are index selections on the device, with
no DataLoader and no host synchronisation. Image folders (ImageNet layout) decode in DataLoader
workers (:mod:`ablate.datasets.folderset`). Loading never downloads: a missing or malformed
dataset raises :class:`~ablate.errors.DatasetError` naming the path, the files expected there and
the command that gets them (``ablate data fetch``).
"""

from __future__ import annotations

import torch

from ablate.config.trial import DataConfig
from ablate.datasets.images import Splits
from ablate.datasets.records import DATASETS


def load_splits(cfg: DataConfig, device: torch.device | str) -> Splits:
    """The splits of ``cfg.name`` on ``device`` (read from disk, never downloaded; DatasetError when missing or
    malformed)."""
    return DATASETS[cfg.name].load(cfg, torch.device(device))
