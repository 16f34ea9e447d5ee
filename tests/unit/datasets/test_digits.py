"""scikit-learn's digits: a fixed stratified split of 16x16 images, the sizes its record says."""

import numpy as np
import torch

from ablate.config.trial import DataConfig
from ablate.datasets.loaders import load_splits
from ablate.datasets.records import DATASETS

CPU = torch.device("cpu")


def test_digits_splits_are_stratified_fixed_and_16x16():
    from sklearn.datasets import load_digits

    s = load_splits(DataConfig(name="digits"), CPU)
    assert (len(s.pretrain), len(s.probe_train), len(s.probe_test)) == (1347, 1347, 450)
    assert s.pretrain is s.probe_train and (s.num_classes, s.channels, s.native_size, s.recipe) == (10, 1, 16, "digits")
    x, y = s.pretrain.images, s.pretrain.labels
    assert x.shape == (1347, 1, 16, 16) and x.dtype == torch.uint8 and int(x.max()) == 255 and int(x.min()) == 0
    full = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(s.probe_test.labels.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - full * 0.25) <= 1)  # stratified
    again = load_splits(DataConfig(name="digits", augment="none"), CPU)  # same split every time
    assert torch.equal(again.probe_test.images, s.probe_test.images) and torch.equal(again.pretrain.labels, y)
    # the 16x16 images are the 8x8 digits upsampled: pooling back recovers them
    raw = torch.from_numpy(load_digits().images).float() * 255 / 16  # (N, 8, 8)
    small = torch.nn.functional.avg_pool2d(s.probe_test.images.float(), 2)[:, 0]
    matches = [min(float((small[i] - raw).abs().mean(dim=(1, 2)).min()), 999) for i in range(5)]
    assert max(matches) < 25  # each test image is within ~10% of one original digit


def test_the_record_sizes_what_the_loader_loads():
    cfg = DataConfig(name="digits")
    record, s = DATASETS["digits"], load_splits(cfg, CPU)
    n = record.sizes(cfg)
    assert (n.pretrain, n.probe_train, n.probe_test) == (len(s.pretrain), len(s.probe_train), len(s.probe_test))
    assert n.resident == len(s.pretrain) + len(s.probe_test) and n.side == s.native_size == record.image_size
    assert (record.channels, record.classes, record.recipe) == (s.channels, s.num_classes, s.recipe)
