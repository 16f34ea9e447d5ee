"""The synthetic dataset: deterministic, sized as its record says, learnable."""

import pytest
import torch

from ablate.config.trial import DataConfig
from ablate.datasets.loaders import load_splits
from ablate.datasets.records import DATASETS

CPU = torch.device("cpu")


def test_fake_is_deterministic_sized_and_learnable():
    cfg = DataConfig(name="fake", fake_size=300, fake_classes=5, image_size=24)
    s = load_splits(cfg, CPU)
    assert (len(s.pretrain), len(s.probe_train), len(s.probe_test)) == (300, 300, 75)
    assert s.pretrain.images.shape == (300, 3, 24, 24) and (s.channels, s.native_size, s.num_classes) == (3, 24, 5)
    assert set(s.pretrain.labels.tolist()) == set(range(5))
    assert torch.equal(load_splits(cfg, CPU).probe_test.images, s.probe_test.images)
    # class structure: nearest class mean of the probe train split classifies the test split
    tr, te = s.probe_train.images.float().flatten(1), s.probe_test.images.float().flatten(1)
    means = torch.stack([tr[s.probe_train.labels == k].mean(0) for k in range(5)])
    acc = (torch.cdist(te, means).argmin(1) == s.probe_test.labels).float().mean()
    assert acc > 0.9
    assert load_splits(DataConfig(name="fake", fake_size=8), CPU).native_size == 32


@pytest.mark.parametrize("tree", [{}, {"fake_size": 3000, "fake_classes": 7, "image_size": 12}, {"fake_size": 5}])
def test_the_record_sizes_what_the_loader_generates(tree):
    cfg = DataConfig(name="fake", **tree)
    s, n = load_splits(cfg, CPU), DATASETS["fake"].sizes(cfg)
    assert (n.pretrain, n.probe_train, n.probe_test) == (len(s.pretrain), len(s.probe_train), len(s.probe_test))
    assert n.resident == len(s.pretrain) + len(s.probe_test) and n.side == s.native_size
