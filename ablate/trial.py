"""One pretraining trial: the thing every sweep runs (``run_trial(config, report)``).

Per step (reference code order, paper Sec. 2):
  1. two views x1, x2 of the batch, augmented on the device with per-image parameters;
  2. online z1, z2 -> predictions p1, p2; target t1, t2 (stop-gradient); loss (symmetric BYOL);
  3. predictor.observe(z1, z2, t1, t2): DirectPred's F_hat <- rho F_hat + (1 - rho) E[f f^T];
  4. backward, optimizer step (trunk/projector and predictor groups);
  5. predictor.after_optimizer_step(step): DirectPred sets W_p from F_hat every ``freq`` steps;
  6. EMA update of the target.
Every ``eval.every`` epochs and after the last, the online network is evaluated and one row is
reported. A non-finite loss ends the trial with status ``diverged`` and the rows so far.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import torch

from ablate.augment import build_augment, eval_transform
from ablate.config import TrialConfig, load_trial_config
from ablate.data import load_splits
from ablate.evaluate import evaluate
from ablate.optim import build_optimizer, lr_factor, param_groups, set_lr
from ablate.provenance import device_name
from ablate.rows import Report, trial_columns
from models.pair import BYOLPair


class Checkpointer(Protocol):
    """Where a trial's state goes every ``every`` epochs and comes back from after a restart."""

    every: int

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any], epoch: int) -> None: ...


class Diverged(Exception):
    """The loss became NaN or infinite."""


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but CUDA is not available; use train.device=cpu or auto")
        return torch.device("cuda")
    return torch.device("cpu")


def autocast_for(cfg: TrialConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked (CUDA, or CPU for equivalence tests); DirectPred's eigh opts out."""
    if cfg.train.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class Loop:
    """Everything the epoch loop touches, built once per trial."""

    cfg: TrialConfig
    device: torch.device
    pair: BYOLPair
    optimizer: torch.optim.Optimizer
    splits: Any
    augment: Any
    transform: Any
    shuffle_gen: torch.Generator
    aug_gen: torch.Generator
    steps_per_epoch: int
    total_steps: int
    step: int = 0

    def state(self, epoch: int, rows: list[dict]) -> dict[str, Any]:
        return {"epoch": epoch, "step": self.step, "rows": rows, "pair": self.pair.state_dict(),
                "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "shuffle_rng": self.shuffle_gen.get_state(), "aug_rng": self.aug_gen.get_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None}

    def restore(self, state: dict[str, Any]) -> None:
        self.pair.load_state_dict(state["pair"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        torch.set_rng_state(state["torch_rng"])
        self.shuffle_gen.set_state(state["shuffle_rng"])
        self.aug_gen.set_state(state["aug_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])


def build_loop(cfg: TrialConfig) -> Loop:
    device = pick_device(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if cfg.train.gpu_memory_fraction:  # packed trials cannot starve each other
            torch.cuda.set_per_process_memory_fraction(cfg.train.gpu_memory_fraction, device)
    torch.manual_seed(cfg.seed)
    splits = load_splits(cfg.data, device)
    size = cfg.data.image_size or splits.native_size
    recipe = splits.recipe if cfg.data.augment == "auto" else cfg.data.augment
    pair = BYOLPair(cfg, splits.channels).to(device)
    if cfg.train.channels_last:
        pair = pair.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(param_groups(pair.online, pair.predictor, cfg.optim), cfg.optim, device)
    steps = len(splits.pretrain) // cfg.train.batch_size
    if steps == 0:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} exceeds the {len(splits.pretrain)} "
                         "pretraining images; lower train.batch_size")
    if cfg.train.steps_per_epoch:
        steps = min(steps, cfg.train.steps_per_epoch)
    loop = Loop(cfg, device, pair, optimizer, splits, build_augment(recipe, size, splits.channels),
                eval_transform(recipe, size, splits.channels),
                torch.Generator().manual_seed(cfg.seed), torch.Generator(device=device).manual_seed(cfg.seed + 1),
                steps, steps * cfg.train.epochs)
    if cfg.train.compile:
        loop.pair.online = torch.compile(loop.pair.online)
    return loop


def train_epoch(loop: Loop) -> tuple[float, float]:
    """One pass over the pretraining images. Returns (mean loss, images/s).

    The loss is accumulated on the device and read once at the end of the epoch: no host sync
    per step on CUDA. Divergence is checked from that accumulated value (NaN propagates)."""
    cfg, pair, opt = loop.cfg, loop.pair, loop.optimizer
    pair.train()
    total = torch.zeros((), device=loop.device)
    autocast = autocast_for(cfg, loop.device)
    start, n = time.perf_counter(), 0
    batches = loop.splits.pretrain.batches(cfg.train.batch_size, shuffle=True, generator=loop.shuffle_gen,
                                           drop_last=True)
    for i, (x, _) in enumerate(batches):
        if i >= loop.steps_per_epoch:
            break
        set_lr(opt, lr_factor(cfg.optim, loop.step, loop.steps_per_epoch, loop.total_steps))
        x1 = loop.augment(x, loop.aug_gen, view=0)
        x2 = loop.augment(x, loop.aug_gen, view=1)
        if cfg.train.channels_last:
            x1, x2 = x1.contiguous(memory_format=torch.channels_last), x2.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss, seen = pair(x1, x2)
        pair.predictor.observe(**seen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loop.step += 1
        pair.predictor.after_optimizer_step(loop.step)
        pair.update_target()
        total += loss.detach()
        n += x.shape[0]
        if loop.device.type == "cpu" and not torch.isfinite(loss):  # free on CPU: stop at once
            raise Diverged(f"non-finite loss at step {loop.step}")
    mean = float(total) / max(1, min(loop.steps_per_epoch, i + 1))
    if not torch.isfinite(torch.tensor(mean)):
        raise Diverged(f"non-finite loss in epoch ending at step {loop.step}")
    return mean, n / (time.perf_counter() - start)


def run_trial(config: TrialConfig | Mapping[str, Any], report: Report,
              checkpointer: Checkpointer | None = None) -> list[dict[str, Any]]:
    """Run one pretraining trial; call ``report(row)`` after every evaluated epoch.

    ``config`` is a TrialConfig or a sparse mapping of it. Returns all rows. A non-finite loss
    ends the trial with a final row of status ``diverged``; any other error propagates (the sweep
    runner turns it into a ``failed`` row)."""
    cfg = config if isinstance(config, TrialConfig) else load_trial_config(config)
    t0 = time.perf_counter()
    loop = build_loop(cfg)
    base = trial_columns(cfg, "ssl", device_name(loop.device))
    rows: list[dict[str, Any]] = []
    start_epoch = 1
    state = checkpointer.load() if checkpointer else None
    if state is not None:
        loop.restore(state)
        rows, start_epoch = list(state["rows"]), state["epoch"] + 1
        t0 -= rows[-1]["wall_s"] if rows else 0.0
    autocast = autocast_for(cfg, loop.device)

    def emit(row: dict[str, Any]) -> None:
        row = {**base, "epoch": epoch, "step": loop.step, "wall_s": time.perf_counter() - t0,
               "total_steps": loop.total_steps, **row}
        rows.append(row)
        report(row)

    for epoch in range(start_epoch, cfg.train.epochs + 1):
        try:
            loss, ips = train_epoch(loop)
        except (Diverged, torch.linalg.LinAlgError) as e:  # eigh of a NaN F_hat fails to converge
            emit({"status": "diverged", "error": str(e), "is_final": True, "loss": float("nan")})
            return rows
        last = epoch == cfg.train.epochs
        if epoch % cfg.eval.every == 0 or last:
            metrics = evaluate(loop.pair, loop.splits, loop.transform, cfg.eval, cfg.train.batch_size,
                               cfg.seed, autocast)
            lr = loop.optimizer.param_groups[0]["lr"]
            emit({"loss": loss, "images_per_s": ips, "lr": lr, "is_final": last, **metrics})
        if checkpointer and checkpointer.every and (epoch % checkpointer.every == 0) and not last:
            checkpointer.save(loop.state(epoch, rows), epoch)
    return rows
