"""The linear-probe protocols (``eval.protocol``): the paper's on cached standardised features, and
BYOL's on augmented crops re-encoded by the frozen trunk every probe epoch."""

import pytest
import torch
from torch import nn

from ablate.config.trial import EvalConfig
from ablate.datasets.images import Splits, TensorImageSet
from ablate.train.augment import eval_transform
from ablate.train.evaluate import PROBES, ProbeInputs, byol_probe_lr, extract


class Recording(nn.Module):
    """A fixed encoder (mean brightness per channel as the feature) that keeps every input it sees."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        y = x.mean(dim=(2, 3)) * self.scale  # (B, C)
        return y, y


def toy_splits(n: int = 64) -> Splits:
    """Two classes told apart by brightness, which no crop or flip changes."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 3, 16, 16, generator=g) * 60 + 40 + 120 * labels.view(-1, 1, 1, 1)).to(torch.uint8)
    s = TensorImageSet(images, labels)
    return Splits(s, s, s, 2, 3, 16, "cifar10")


def inputs(protocol_cfg: EvalConfig, enc: Recording, splits: Splits) -> ProbeInputs:
    t = eval_transform("cifar10", 16, 3)
    tr_y, _, tr_l = extract(enc, splits.probe_train, t, 32)
    te_y, _, te_l = extract(enc, splits.probe_test, t, 32)
    enc.seen.clear()
    return ProbeInputs(enc, splits, t, protocol_cfg, 0, (tr_y, tr_l, te_y, te_l), None)


def test_byol_probe_trains_on_augmented_crops_through_the_frozen_trunk():
    splits, enc = toy_splits(), Recording()
    cfg = EvalConfig(protocol="byol", probe_epochs=3, probe_lr=0.5, probe_weight_decay=0.0, probe_batch_size=16)
    out = PROBES["byol"](inputs(cfg, enc, splits))
    assert len(enc.seen) == 3 * 4  # every probe epoch re-encodes every train batch
    plain = eval_transform("cifar10", 16, 3)(splits.probe_train.images[:16])
    assert not any(torch.allclose(x, plain) for x in enc.seen)  # crops and flips, not the plain images
    assert enc.scale.item() == 1.0 and enc.training  # frozen, and its mode restored
    assert out["probe_top1"] == 1.0 and out["probe_top1_best"] == 1.0 and 0 <= out["probe_top5"] <= 1


def test_the_paper_probe_reads_cached_features_only():
    splits, enc = toy_splits(), Recording()
    out = PROBES["paper"](inputs(EvalConfig(probe_epochs=5, probe_lr=0.05), enc, splits))
    assert enc.seen == [] and out["probe_top1_best"] >= out["probe_top1"] > 0.9


@pytest.mark.parametrize("protocol", ["paper", "byol"])
def test_a_trial_records_its_probe_protocol(protocol):
    import ablate

    df = ablate.run_trial(
        train__epochs=1, train__steps_per_epoch=2, train__device="cpu", eval__probe_epochs=1, eval__protocol=protocol
    )
    assert list(df["eval.protocol"]) == [protocol] and 0 <= df.probe_top1_best.iloc[0] <= 1


def test_byol_probe_lr_is_the_base_lr_scaled_by_the_batch(monkeypatch):
    """BYOL's eval (deepmind-research byol): schedules.learning_schedule computes ``scaled_lr =
    base_learning_rate * batch_size / 256.`` and configs/eval.py sets base_learning_rate 0.2, so its
    probe runs at 0.8 with batch 1024; eval.probe_lr is that base lr."""
    assert byol_probe_lr(EvalConfig(protocol="byol", probe_lr=0.2, probe_batch_size=1024)) == pytest.approx(0.8)
    seen, real = [], torch.optim.SGD
    monkeypatch.setattr(torch.optim, "SGD", lambda params, lr, **kw: seen.append(lr) or real(params, lr=lr, **kw))
    cfg = EvalConfig(protocol="byol", probe_epochs=1, probe_lr=0.5, probe_weight_decay=0.0, probe_batch_size=16)
    PROBES["byol"](inputs(cfg, Recording(), toy_splits()))
    assert seen == [pytest.approx(0.5 * 16 / 256)]
