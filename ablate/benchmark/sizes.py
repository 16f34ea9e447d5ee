"""How much work each section of ``ablate bench`` does: :class:`BenchSizes` and the presets.

Quick CPU: digits and the small convnet, about a minute on 2 cores (CI). Full CPU: ResNet-18 at
batch 32 on STL-10-shaped 96x96 images, evaluation on the STL-10 geometry at 1/50 (minutes).
CUDA: ResNet-18, batch 128, bf16 and channels_last, the STL-10 geometry (105k pretraining images)
for evaluation and packing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ablate.config.trial import DataConfig
from ablate.datasets.records import DATASETS

# The paper's main dataset: the benchmark times random images of its geometry with its recipe.
PAPER = DATASETS["stl10"]
_PAPER = PAPER.sizes(DataConfig(name=PAPER.name))
STL10_SPLITS = (_PAPER.pretrain, _PAPER.probe_train, _PAPER.probe_test)  # unlabeled + train, probe train, test


@dataclass(frozen=True)
class BenchSizes:
    """How much work each section does. Presets: :func:`sizes_for` (quick/full x CPU/CUDA)."""

    repeats: int = 5
    warmup: int = 1
    # augment: images per timed pass, batch of ours / of the DataLoader, image side (STL-10: 96)
    aug_images: int = 1024
    aug_batch: int = 128
    aug_size: int = PAPER.image_size
    aug_workers: int | None = None  # None = the available cores
    # step / directpred: the trial config (sparse mapping) and steps per timed call
    step_config: dict = field(default_factory=dict)
    step_k: int = 2
    directpred_k: int = 5  # a multiple of 5, so freq 5 refreshes W_p once per call
    directpred_repeats: int = 3
    # eval: the config whose evaluation and epoch are compared; STL-10-shaped random splits
    # (pretrain, probe train, test) instead of the config's data when set
    eval_config: dict = field(default_factory=dict)
    eval_splits: tuple[int, int, int] | None = None
    eval_repeats: int = 3
    # orchestration: trivial trials per sweep (8: the size of sweeps/smoke.yaml), sweeps per side
    orch_trials: int = 8
    orch_repeats: int = 2
    # gpu: packed trial counts, steps per timed window, warm-up steps, windows
    gpu_packs: tuple[int, ...] = (1, 2, 4)
    gpu_steps: int = 100
    gpu_warmup_steps: int = 30
    gpu_repeats: int = 3


DIGITS = {"data": {"name": "digits"}, "model": {"trunk": "convnet"}, "train": {"batch_size": 128}}


def stl10_like(batch: int, images: int, precision: str = "fp32", channels_last: bool = False) -> dict:
    """ResNet-18 on 96x96 RGB images with the paper's STL-10 recipe (random images: the cost does
    not depend on the pixels)."""
    return {
        "data": {
            "name": "fake",
            "image_size": PAPER.image_size,
            "fake_size": max(images, 2 * batch),
            "augment": PAPER.recipe,
        },
        "model": {"trunk": "resnet18"},
        "train": {"batch_size": batch, "precision": precision, "channels_last": channels_last},
    }


# The full CPU preset times evaluation against an epoch on the STL-10 geometry shrunk 50x (every
# split alike): extraction, probe and epoch all scale linearly, so their ratio is the full-size
# one (kNN, train x test, scales quadratically: its share is 50x smaller than at full size).
CPU_EVAL_SCALE = 50


_GPU = stl10_like(128, 128 * 20, "bf16", True)
_CPU_EVAL = tuple(n // CPU_EVAL_SCALE for n in STL10_SPLITS)

# (device kind, quick) -> the sizes of each section
PRESETS: dict[tuple[str, bool], BenchSizes] = {
    ("cuda", True): BenchSizes(
        repeats=3,
        aug_images=4096,
        aug_batch=256,
        step_config=_GPU,
        step_k=10,
        directpred_k=10,
        directpred_repeats=3,
        eval_config=_GPU,
        eval_splits=(20_000, 5_000, 8_000),
        eval_repeats=2,
        orch_repeats=1,
        gpu_steps=40,
        gpu_warmup_steps=15,
        gpu_repeats=2,
    ),
    ("cuda", False): BenchSizes(
        repeats=5,
        aug_images=8192,
        aug_batch=256,
        step_config=_GPU,
        step_k=20,
        directpred_k=20,
        directpred_repeats=5,
        eval_config=_GPU,
        eval_splits=STL10_SPLITS,
        eval_repeats=3,
        orch_repeats=2,
    ),
    ("cpu", True): BenchSizes(
        repeats=3,
        aug_images=512,
        aug_batch=128,
        step_config=DIGITS,
        step_k=4,
        directpred_k=5,
        directpred_repeats=3,
        eval_config=DIGITS,
        eval_repeats=2,
        orch_repeats=1,
    ),
    ("cpu", False): BenchSizes(
        repeats=5,
        aug_images=1024,
        aug_batch=128,
        step_config=stl10_like(32, 32 * 5),
        step_k=1,
        directpred_k=5,
        directpred_repeats=2,
        eval_config=stl10_like(64, _CPU_EVAL[0]),
        eval_splits=_CPU_EVAL,
        eval_repeats=2,
    ),
}


def sizes_for(quick: bool, device: str) -> BenchSizes:
    """The preset sizes (:data:`PRESETS`): CPU quick, digits/convnet, about a minute on 2 cores; CPU
    full, ResNet-18 at batch 32 on STL-10-shaped images (minutes); CUDA, ResNet-18, batch 128, bf16,
    channels_last, the full STL-10 geometry."""
    return PRESETS[("cuda" if device == "cuda" else "cpu", quick)]
