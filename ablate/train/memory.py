"""GPU memory one pretraining trial needs, estimated before anything runs (``ablate check``).

The model is built on the ``meta`` device (shapes, no storage, no compute) and one training
forward of both views runs there at the trial's batch size and crop size, under a
``saved_tensors_hooks`` that records every tensor autograd keeps for the backward pass: those
are the activations alive at the peak of a step (just before ``loss.backward()``). Around them:

  params + grads + optimizer state   online trunk/projector and predictor (fp32; SGD/LARS momentum)
  target                             the EMA copy (parameters and BN buffers; no grads)
  activations                        saved tensors of the online forward of x1 and x2 (Sec. 2)
  backward transient                 gradients of the largest activations while backward runs
  autocast cache                     bf16 copies of the online weights (precision bf16)
  views                              the uint8 batch and the float views x1, x2
  dataset                            small-image datasets live on the device as uint8 (N, C, H, W)
  evaluation                         cached probe features (N, D + d) fp32
  predictor statistics               DirectPred / plug-in F_hat (and C) (d, d) fp32

``total`` is what the caching allocator will hold (``torch.cuda.max_memory_allocated``, to the
accuracy of the transient term); ``with_context`` adds the CUDA context, which lives outside the
allocator and outside ``torch.cuda.set_per_process_memory_fraction``'s cap.

bf16 autocast cannot run on ``meta`` tensors (autocast dispatches on the device type), so under
``train.precision: bf16`` floating activations count 2 bytes per element: on CUDA the convolutions
and linear layers take bf16 copies of their inputs and save those, BatchNorm and ReLU then see
bf16 tensors; the loss (fp32) and F_hat are small.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from ablate.datasets.records import DATASETS
from ablate.models.pair import BYOLPair
from ablate.models.predictors import build_predictor

GIB = 2**30
CUDA_CONTEXT_BYTES = int(0.5 * GIB)  # CUDA context + cuDNN/cuBLAS handles per process (typical)
REFERENCE_GPU_BYTES = 80 * 10**9  # an 80 GB GPU (H100 / A100 80GB) when no GPU is visible


def dataset_geometry(data: Any) -> tuple[int, int, int, int, int]:
    """(images on the device, channels, stored side, probe-train images, test images) of ``data``, from its
    dataset's record."""
    record = DATASETS[data.name]
    n = record.sizes(data)
    return n.resident, record.channels, n.side, n.probe_train, n.probe_test


def _saved_activations(pair: Any, x: Any, param_keys: set[int]) -> tuple[dict[int, tuple[int, bool]], int]:
    """Run ``pair(x, x)`` and record every distinct storage autograd saves, minus parameters.
    Returns {storage: (bytes, floating)} and the number of saved tensors."""
    seen: dict[int, tuple[int, bool]] = {}
    count = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal count
        count += 1
        storage = t.untyped_storage()
        key = storage._cdata  # the StorageImpl: views of one tensor share it and count once
        if key not in param_keys:
            seen[key] = (max(seen.get(key, (0, False))[0], storage.nbytes()), t.is_floating_point())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        pair(x, x.clone())
    return seen, count


def estimate_trial_memory(cfg: Any, images: int | None = None, workers: int = 1) -> dict[str, float]:
    """Bytes per component of one trial's GPU memory (see the module docstring) and their sum.

    ``cfg`` is a :class:`ablate.config.trial.TrialConfig`. ``images`` overrides the number of dataset
    images held on the device (e.g. a benchmark's synthetic split). ``workers``: a data-parallel
    trial's processes, each holding the model, the dataset and 1/workers of the batch (the
    estimate is then per worker). Keys: ``params``, ``grads``,
    ``optimizer``, ``target``, ``buffers``, ``activations``, ``backward_transient``,
    ``autocast_cache``, ``views``, ``dataset``, ``evaluation``, ``predictor_stats``, ``total``
    (allocator), ``cuda_context``, ``with_context``, and ``activations_per_image``."""
    n_images, channels, side, n_probe, n_test = dataset_geometry(cfg.data)
    if images is not None:
        n_images = images
    size = cfg.data.image_size or side
    b = -(-cfg.train.batch_size // max(1, workers))  # this process's shard of the batch
    with torch.device("meta"):
        pair = BYOLPair(cfg, channels)
        if cfg.train.channels_last:
            pair = pair.to(memory_format=torch.channels_last)
        x = torch.empty(b, channels, size, size)
        if cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
    pair.train()

    def nbytes(tensors: Iterable[torch.Tensor]) -> int:
        return sum(t.numel() * t.element_size() for t in tensors)

    online = [q for q in pair.online.parameters() if q.requires_grad]
    predictor = [q for q in pair.predictor.parameters() if q.requires_grad]
    trainable = nbytes(online) + nbytes(predictor)
    param_keys = {q.untyped_storage()._cdata for q in pair.parameters()}
    saved, _ = _saved_activations(pair, x, param_keys)
    half = cfg.train.precision == "bf16"
    act = [n // 2 if (half and floating) else n for n, floating in saved.values()]
    momentum = cfg.optim.name == "lars" or cfg.optim.momentum > 0
    d = cfg.projector.out_dim
    feature_dim = pair.online.trunk.feature_dim
    stats = {"directpred": 1, "plugin": 2}.get(cfg.predictor.name, 0)
    view_bytes = b * channels * size * size * 4  # one float view (B, C, S, S)
    out: dict[str, float] = {
        "params": trainable,
        "grads": trainable,
        "optimizer": trainable if momentum else 0,
        "target": nbytes(pair.target.parameters()) + nbytes(pair.target.buffers()) if pair.target is not None else 0,
        "buffers": nbytes(pair.online.buffers()) + nbytes(pair.predictor.buffers()),
        "activations": sum(act),
        # backward holds the incoming and outgoing gradient of the layer it is in, next to the
        # saved tensors; the largest layer bounds that
        "backward_transient": 2 * max(act, default=0),
        "autocast_cache": nbytes(online) // 2 if half else 0,
        "views": b * channels * side * side + 2 * view_bytes,
        "dataset": n_images * channels * side * side + 8 * n_images,
        "evaluation": (n_probe + n_test) * (feature_dim + d) * 4 * 2,  # lists, then torch.cat
        "predictor_stats": stats * d * d * 4,
    }
    out["total"] = sum(out.values())
    out["cuda_context"] = CUDA_CONTEXT_BYTES
    out["with_context"] = out["total"] + CUDA_CONTEXT_BYTES
    out["activations_per_image"] = out["activations"] / b
    return out


def memory_key(cfg: Any) -> tuple:
    """The config leaves the estimate depends on (trials differing only in lr share one estimate); of
    the predictor, its tensors' shapes (DirectPred's rho or eps change no byte)."""
    return (
        cfg.data.name,
        cfg.data.image_size,
        cfg.data.fake_size,
        cfg.data.fake_classes,
        cfg.model,
        cfg.projector,
        predictor_shapes(cfg),
        cfg.ema.tau > 0,
        cfg.loss.stop_gradient,
        cfg.optim.name,
        cfg.optim.momentum > 0,
        cfg.train.batch_size,
        cfg.train.precision,
        cfg.train.channels_last,
    )


def predictor_shapes(cfg: Any) -> tuple:
    """The predictor's class and the shapes of its parameters and buffers, built on the meta device."""
    with torch.device("meta"):
        predictor = build_predictor(cfg.predictor, cfg.projector.out_dim)
    return type(predictor).__name__, tuple((k, tuple(t.shape)) for k, t in predictor.state_dict().items())


def gib(n: float) -> str:
    """Bytes as GiB (MiB below 1 GiB)."""
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / 2**20:.0f} MiB"


def gpu_bytes() -> tuple[int, str]:
    """(memory of the visible GPU, how to name it), or an 80 GB reference GPU when none is visible."""
    try:
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return props.total_memory, f"{props.name} ({props.total_memory / GIB:.0f} GiB)"
    except Exception:
        pass
    return REFERENCE_GPU_BYTES, "80 GB GPU"


def sweep_configs(sweep: Any) -> list[Any]:
    """The trial configs of a loaded pretraining sweep whose memory differs (one per distinct memory
    key); a search sweep contributes its base config (sampled keys are not expanded)."""
    if sweep.search:
        configs = [sweep.trial_kind.build(sweep.search_base)]
    else:
        configs = [t.config for t in sweep.trials]
    unique: dict[tuple, Any] = {}
    for cfg in configs:
        unique.setdefault(memory_key(cfg), cfg)
    return list(unique.values())


def memory_line(sweep: Any, total_bytes: int | None = None) -> str:
    """What ``ablate check`` prints about memory: the largest per-trial estimate over the sweep's
    trials and how many fit on one GPU (the visible one, else an 80 GB reference; ``total_bytes``
    overrides), with a warning line per problem: ``resources.gpu`` or
    ``train.gpu_memory_fraction`` smaller than the estimate."""
    configs = sweep_configs(sweep)
    workers = max(1, getattr(sweep.resources, "workers", 1))
    est, cfg = max(((estimate_trial_memory(c, workers=workers), c) for c in configs), key=lambda e: e[0]["total"])
    several = f", the largest of {len(configs)} configurations" if len(configs) > 1 else ""
    unit = "per worker" if workers > 1 else "per trial"
    if all(c.train.device == "cpu" for c in configs):
        return f"estimated memory {unit}: {gib(est['total'])} of tensors in host memory (train.device=cpu{several})"
    total, label = (total_bytes, f"{total_bytes / 10**9:.0f} GB GPU") if total_bytes else gpu_bytes()
    per = est["with_context"]
    line = (
        f"estimated GPU memory {unit}: {gib(per)} ({gib(est['total'])} allocated + CUDA context{several}; "
        f"fits {int(total // per)} per {label})"
    )
    share = getattr(sweep.resources, "gpus_per_worker", None) or sweep.resources.gpu
    if 0 < share < 1:
        line += f"; resources.gpu={share:g} packs {int(1 // share)} per GPU"
    problems = []
    if 0 < share < 1 and per > share * total:
        problems.append(
            f"resources.gpu={share:g} gives each trial {gib(share * total)}, less than the estimate; "
            f"raise resources.gpu to {math.ceil(per / total * 100) / 100:g} or lower train.batch_size"
        )
    frac = cfg.train.gpu_memory_fraction
    if frac and est["total"] > frac * total:
        problems.append(
            f"train.gpu_memory_fraction={frac:g} caps the allocator at {gib(frac * total)}, below "
            f"the {gib(est['total'])} estimate; raise it or lower train.batch_size"
        )
    return line + "".join(f"\n  warning: {p}" for p in problems)
