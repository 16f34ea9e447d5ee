"""The pretraining trial's configuration: a tree of frozen dataclasses.

Every leaf is addressable by its dotted path (``predictor.rho``, ``optim.weight_decay``) from YAML,
``--set`` and sweep grids, and becomes a result column under the same name. Defaults are the
paper's STL-10 recipe where the paper has one (Sec. 3 of the reference doc), except the dataset,
which defaults to the offline ``digits`` so that a trial runs anywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ablate.config.registry import DATASETS, PREDICTORS, RECIPES, ConfigView
from ablate.config.tree import did_you_mean, doc, to_dict

# Sizes that shape tensors stop where no machine holds one trial, so that the memory estimate
# (ablate check) and the trial never work out a tensor size beyond 64 bits even all at once.
MAX_BATCH = 2**20  # images in a batch (the largest published SSL batches: 65,536)
MAX_IMAGE = 2**13  # pixels on a side of a crop
MAX_CHANNELS = 2**14  # of a conv layer, which runs at full resolution
MAX_WIDTH = 2**16  # of a linear layer (and classes)
MAX_IMAGES = 2**24  # of the synthetic dataset
MAX_THREADS = 1024  # threads or processes of one trial: more than any machine's cores


@dataclass(frozen=True)
class DataConfig:
    name: str = field(default="digits", metadata=doc("dataset: built in or a plugin's (`ablate data list`)"))
    root: str | None = field(
        default=None, metadata=doc("the dataset's directory (`ablate data list`); `ablate data fetch` gets it")
    )
    augment: str = field(
        default="auto",
        metadata=doc("augmentation recipe: auto (the dataset's own), none, byol, or a dataset's by name"),
    )
    image_size: int = field(
        default=0,
        metadata=doc("crop size; 0 = the dataset's native size (`ablate data list`)", min=0, max=MAX_IMAGE),
    )
    fake_size: int = field(default=512, metadata=doc("fake: number of pretraining images", min=1, max=MAX_IMAGES))
    fake_classes: int = field(default=10, metadata=doc("fake: number of classes", min=2, max=MAX_WIDTH))
    workers: int = field(default=0, metadata=doc("imagefolder: DataLoader decode workers", min=0, max=MAX_THREADS))

    def check(self) -> tuple[str, str] | None:
        if self.name not in DATASETS:
            return "name", f"unknown dataset {self.name!r}; choose one of {', '.join(DATASETS)}" + did_you_mean(
                self.name, DATASETS
            )
        if self.augment != "auto" and self.augment not in RECIPES:
            known = ["auto", *RECIPES]
            return "augment", f"unknown augmentation recipe {self.augment!r}; choose one of {', '.join(known)}" + (
                did_you_mean(self.augment, known)
            )
        if DATASETS[self.name].needs_root and not self.root:
            return (
                "root",
                f"dataset {self.name!r} needs data.root, the directory that holds it (get it with `ablate data fetch "
                f"{self.name}`)",
            )
        return None


@dataclass(frozen=True)
class ModelConfig:
    trunk: Literal["convnet", "resnet18", "resnet50"] = field(
        default="convnet", metadata=doc("trunk: convnet (small, for digits on CPU), resnet18, resnet50")
    )
    stem: Literal["imagenet", "cifar"] = field(
        default="imagenet", metadata=doc("ResNet stem: imagenet (7x7/2 + maxpool) or cifar (3x3/1, no maxpool)")
    )
    width: int = field(
        default=64, metadata=doc("convnet: channels of the last conv layer (= feature dim)", min=1, max=MAX_CHANNELS)
    )
    sync_bn: bool = field(default=False, metadata=doc("SyncBatchNorm in data-parallel trials"))


@dataclass(frozen=True)
class ProjectorConfig:
    hidden_dim: int = field(default=512, metadata=doc("projector hidden width (paper: 512)", min=1, max=MAX_WIDTH))
    out_dim: int = field(default=128, metadata=doc("projection dimension d (paper: 128)", min=1, max=MAX_WIDTH))
    bn_affine: bool = field(default=False, metadata=doc("affine BatchNorm in the projector (paper: off)"))


# ---------------------------------------------------------------- predictors (a registry)
@dataclass(frozen=True)
class PredictorConfig:
    """Polymorphic: ``name`` picks a record of the predictor registry, whose own ``Config`` (a subclass
    of this, beside its module in :mod:`ablate.models.predictors` or in a plugin) says which keys it
    accepts: keys of another predictor are rejected, not ignored."""

    name: str = field(
        default="linear",
        metadata=doc("predictor: none, linear, mlp, directpred, plugin, or a plugin's (docs/plugins.md)"),
    )
    variants: ClassVar[Mapping[str, type]] = ConfigView(PREDICTORS)


def default_predictor() -> PredictorConfig:
    """The config of the predictor ``predictor.name`` names by default (the linear W_p)."""
    return PredictorConfig.variants[PredictorConfig.name]()


@dataclass(frozen=True)
class EMAConfig:
    tau: float = field(
        default=0.996,
        metadata=doc(
            "target <- tau*target + (1-tau)*online; 0 = SimSiam-style target (online weights, no_grad)", min=0, max=1
        ),
    )
    init: Literal["copy", "independent"] = field(
        default="independent",
        metadata=doc("target start: copy of the online net, or an independent init (the reference code)"),
    )
    schedule: Literal["constant", "cosine"] = field(
        default="constant",
        metadata=doc(
            "constant: tau at every step (the paper's STL-10/CIFAR-10 recipe); cosine: BYOL's "
            "tau_k = 1 - (1 - tau)(cos(pi k / K) + 1) / 2, from tau at step 0 to 1 at the last of K steps"
        ),
    )

    def check(self) -> tuple[str, str] | None:
        if self.schedule == "cosine" and self.tau == 0:
            return "schedule", "cosine needs a target network (tau > 0); with tau 0 the target is the online net"
        return None


@dataclass(frozen=True)
class LossConfig:
    symmetric: bool = field(
        default=True, metadata=doc("symmetric loss (both views predict the other); false = one direction")
    )
    stop_gradient: bool = field(
        default=True, metadata=doc("stop-gradient on the target branch; false collapses (Theorem 2)")
    )


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "lars"] = field(default="sgd", metadata=doc("sgd (paper) or lars (large-batch ImageNet)"))
    lr: float = field(default=0.03, metadata=doc("learning rate alpha (paper: 0.03 constant)", gt=0))
    momentum: float = field(default=0.9, metadata=doc("momentum", min=0, max=1))
    weight_decay: float = field(default=4e-4, metadata=doc("weight decay eta of the trunk and projector", min=0))
    alpha_p: float = field(default=1.0, metadata=doc("relative predictor lr: predictor lr = alpha_p * lr", gt=0))
    predictor_weight_decay: float | None = field(
        default=None, metadata=doc("predictor weight decay; null = same as weight_decay (Table 5 splits them)", min=0)
    )
    schedule: Literal["constant", "cosine"] = field(
        default="constant", metadata=doc("lr schedule: constant (paper) or cosine with warmup")
    )
    warmup_epochs: int = field(default=0, metadata=doc("cosine: linear warmup epochs", min=0))
    lars_eta: float = field(default=0.001, metadata=doc("lars: trust coefficient", gt=0))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = field(default=10, metadata=doc("pretraining epochs (paper: 100)", min=1))
    batch_size: int = field(default=128, metadata=doc("batch size B (paper: 128)", min=2, max=MAX_BATCH))
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata=doc("auto = cuda when available"))
    precision: Literal["fp32", "bf16"] = field(
        default="fp32", metadata=doc("bf16 autocast on CUDA; F_hat and eigh stay fp32")
    )
    channels_last: bool = field(default=False, metadata=doc("channels_last memory format (CUDA speed option)"))
    compile: bool = field(default=False, metadata=doc("torch.compile the online network"))
    steps_per_epoch: int = field(
        default=0, metadata=doc("cap on steps per epoch; 0 = a full pass over the data", min=0)
    )
    threads: int = field(
        default=0, metadata=doc("CPU threads for torch; 0 = leave torch's default", min=0, max=MAX_THREADS)
    )
    gpu_memory_fraction: float = field(
        default=0.0, metadata=doc("cap this trial's share of GPU memory (packing); 0 = no cap", min=0, max=1)
    )


@dataclass(frozen=True)
class EvalConfig:
    every: int = field(default=5, metadata=doc("evaluate every N epochs (and always after the last)", min=1))
    collapse_every: int = field(
        default=0,
        metadata=doc(
            "between evaluations, a collapse-only check every N epochs: z_std of the online projections of a fixed "
            "batch of 512 probe-train images (no probe, no kNN), a row with z_std and collapsed only; 0 = off. With "
            "stop_collapsed it finds a collapse within N epochs",
            min=0,
        ),
    )
    probe_epochs: int = field(default=50, metadata=doc("linear probe epochs (paper: 50)", min=1))
    probe_lr: float = field(
        default=3e-4,
        metadata=doc("probe lr: paper, Adam's (3e-4); byol, BYOL's base lr, scaled by probe_batch_size / 256", gt=0),
    )
    probe_weight_decay: float = field(default=1e-3, metadata=doc("probe Adam weight decay (paper: 1e-3)", min=0))
    probe_batch_size: int = field(default=128, metadata=doc("probe batch size", min=1))
    knn_k: int = field(default=200, metadata=doc("kNN neighbours (cosine)", min=1))
    knn_t: float = field(default=0.1, metadata=doc("kNN temperature of the similarity weights", gt=0))
    spectra: bool = field(default=True, metadata=doc("record F / W_p spectra for linear-type predictors"))
    protocol: Literal["paper", "byol"] = field(
        default="paper",
        metadata=doc(
            "linear probe: paper (cached features of un-augmented images, standardised, Adam) or byol (BYOL's "
            "ImageNet protocol: SGD with Nesterov momentum 0.9, cosine-decayed lr, on random-resized crops and flips "
            "passed through the frozen trunk every epoch, no standardisation; probe_lr / probe_weight_decay / "
            "probe_batch_size / probe_epochs set it)"
        ),
    )


@dataclass(frozen=True)
class SaveConfig:
    """What a trial leaves behind besides its rows: the online trunk's weights, for export.

    Written to ``<storage>/_<sweep>/weights/<trial_id>/trunk_final.pt`` (and ``trunk_epoch{N}.pt``) as the
    plain state dict of :func:`ablate.models.trunks.export_state_dict`. Where and how often weights are
    saved does not change what a trial computes, so these keys are not part of the trial_id."""

    weights: Literal["none", "final", "every"] = field(
        default="final",
        metadata=doc(
            "trunk weights to keep: none, final (after the last epoch), every (every save.every epochs and the final)"
        ),
    )
    every: int = field(default=0, metadata=doc("with weights: every, save every N epochs; 0 = eval.every", min=0))


@dataclass(frozen=True)
class TrialConfig:
    """One pretraining trial (the thing every sweep runs)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    predictor: PredictorConfig = field(default_factory=default_predictor)
    ema: EMAConfig = field(default_factory=EMAConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    save: SaveConfig = field(default_factory=SaveConfig)
    seed: int = field(default=0, metadata=doc("random seed (a sweep's seeds axis sets it)", min=0))


# Leaves that say where, how fast or what else to keep, not what a trial computes: two machines with
# the data in different folders, or two runs that keep weights differently, must agree on a trial's
# id, or a resumed sweep would run everything again.
UNHASHED_KEYS = (
    "data.root",
    "data.workers",
    "train.device",
    "train.threads",
    "train.gpu_memory_fraction",
    "save.weights",
    "save.every",
)


# Field metadata of a leaf added after trials were first hashed: at its default it is left out of the
# hash, so the trials that ran before it existed keep their ids (and resume finds them).
ADDED_LATER = "added_later"


def _drop_added_defaults(cfg: Any, tree: dict[str, Any]) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and isinstance(tree.get(f.name), dict):
            _drop_added_defaults(value, tree[f.name])
        elif f.metadata.get(ADDED_LATER) and value == f.default:
            tree.pop(f.name, None)


def config_hash(cfg: Any) -> str:
    """Stable 12-hex id of a resolved config (the trial_id): same config, same id, on any machine.

    The leaves in :data:`UNHASHED_KEYS` are left out of the hash, and so is a section that only
    held such leaves (``save``): adding such a section does not change any existing trial_id. So is a
    leaf marked :data:`ADDED_LATER` while it holds its default."""
    tree = to_dict(cfg)
    if dataclasses.is_dataclass(cfg):
        _drop_added_defaults(cfg, tree)
    for key in UNHASHED_KEYS:
        section, _, leaf = key.partition(".")
        if isinstance(tree.get(section), dict):
            tree[section].pop(leaf, None)
            if not tree[section]:
                del tree[section]
    blob = json.dumps(tree, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]
