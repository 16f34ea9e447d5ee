"""One pretraining trial: the thing every ``ssl`` sweep runs (``pretrain(config, report)``).

Per step (reference code order, paper Sec. 2):
  1. two views x1, x2 of the batch, augmented on the device with per-image parameters;
  2. online z1, z2 -> predictions p1, p2; target t1, t2 (stop-gradient); loss (symmetric BYOL);
  3. predictor.observe(f, t): DirectPred's F_hat <- rho F_hat + (1 - rho) E[f f^T] over what the predictor was fed;
  4. backward, optimizer step (trunk/projector and predictor groups);
  5. predictor.after_optimizer_step(step): DirectPred sets W_p from F_hat every ``freq`` steps;
  6. EMA update of the target.
Every ``eval.every`` epochs and after the last, the online network is evaluated and one row is
reported. A non-finite loss ends the trial with status ``diverged`` and the rows so far.

The same loop runs data-parallel when a ``torch.distributed`` process group of several ranks is
initialised (Ray Train, ``resources.workers``): each rank trains on its shard of every global batch
and only rank 0 evaluates and reports (:mod:`ablate.train.ddp`). Every ``checkpoint.every``
epochs the whole state goes to a :class:`Checkpointer`; a restarted trial continues from it.
"""

from __future__ import annotations

import contextlib
import itertools
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ablate.config.trial import TrialConfig
from ablate.datasets.loaders import load_splits
from ablate.errors import UserError
from ablate.models.pair import BYOLPair
from ablate.models.trunks import export_state_dict
from ablate.provenance import device_name
from ablate.results.layout import FINAL_WEIGHTS, epoch_weights
from ablate.results.schema import Report
from ablate.train.augment import build_augment, eval_transform
from ablate.train.ddp import DataParallel, augment_shard, check_batch, convert_sync_bn, shard_batches, wrap_ddp
from ablate.train.evaluate import collapse_check, evaluate
from ablate.train.optim import build_optimizer, lr_factor, param_groups, set_lr


class Checkpointer(Protocol):
    """Where a trial's state goes every ``every`` epochs and comes back from after a restart."""

    every: int

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any], epoch: int) -> None: ...


class Artifacts(Protocol):
    """Where a trial's files other than rows go (the trunk weights for export). ``readouts``: the
    (epochs, artifacts) of the shorter trials read from this run (:mod:`ablate.sweep.prefix`), whose
    weights are kept as a trial of that many epochs would have kept them."""

    readouts: Sequence[tuple[int, Artifacts]]

    def save(self, name: str, obj: Any) -> str: ...


Progress = Callable[[dict[str, Any]], None]
"""Called after every trained epoch with ``{"epoch", "epochs", "images_per_s", "resumed_from"}``
(``resumed_from``: the checkpoint's epoch the trial continued after, 0 when it started afresh), before
that epoch's evaluation: a light heartbeat for a live progress view, never a row."""


class Diverged(Exception):
    """The loss became NaN or infinite."""


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu`` or ``cuda`` (an error where there is no CUDA)."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("device cuda asked for, but CUDA is not available on this machine; use cpu or auto")
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
    dp: DataParallel | None = None  # this rank of a data-parallel trial; None = one process
    model: torch.nn.Module | None = None  # what the step calls: the pair, or DDP around it
    cache: dict = field(default_factory=dict)  # per-trial loaders of sharded batches

    def state(self, epoch: int, rows: list[dict]) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "step": self.step,
            "rows": rows,
            "pair": self.pair.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "shuffle_rng": self.shuffle_gen.get_state(),
            "aug_rng": self.aug_gen.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
        }

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
    dp = DataParallel.current()
    problem = check_batch(cfg.train.batch_size, dp.world) if dp else None
    if problem:
        raise ValueError(problem)
    torch.manual_seed(cfg.seed)  # the same on every rank: identical initial weights everywhere
    splits = load_splits(cfg.data, device)
    size = cfg.data.image_size or splits.native_size
    recipe = splits.recipe if cfg.data.augment == "auto" else cfg.data.augment
    pair = BYOLPair(cfg, splits.channels).to(device)
    if cfg.train.channels_last:
        pair = pair.to(memory_format=torch.channels_last)
    if dp and cfg.model.sync_bn:
        pair = convert_sync_bn(pair, device)
    optimizer = build_optimizer(param_groups(pair.online, pair.predictor, cfg.optim), cfg.optim, device)
    steps = len(splits.pretrain) // cfg.train.batch_size
    if steps == 0:
        raise ValueError(
            f"train.batch_size={cfg.train.batch_size} exceeds the {len(splits.pretrain)} "
            "pretraining images; lower train.batch_size"
        )
    if cfg.train.steps_per_epoch:
        steps = min(steps, cfg.train.steps_per_epoch)
    loop = Loop(
        cfg,
        device,
        pair,
        optimizer,
        splits,
        build_augment(recipe, size, splits.channels),
        eval_transform(recipe, size, splits.channels),
        torch.Generator().manual_seed(cfg.seed),
        torch.Generator(device=device).manual_seed(cfg.seed + 1),
        steps,
        steps * cfg.train.epochs,
        dp=dp,
    )
    if cfg.train.compile:
        loop.pair.online = torch.compile(loop.pair.online)
    loop.model = wrap_ddp(loop.pair, device) if dp else loop.pair
    return loop


def train_epoch(loop: Loop) -> tuple[float, float]:
    """One pass over the pretraining images. Returns (mean loss, images/s).

    The loss is accumulated on the device and read once at the end of the epoch: no host sync
    per step on CUDA. Divergence is checked from that accumulated value (NaN propagates)."""
    cfg, pair, opt, dp = loop.cfg, loop.pair, loop.optimizer, loop.dp
    pair.train()
    total = torch.zeros((), device=loop.device)
    autocast = autocast_for(cfg, loop.device)
    start, n = time.perf_counter(), 0
    if dp:  # this rank's shard of every global batch, augmented with its rows of the global draw
        batches = shard_batches(loop.splits.pretrain, cfg.train.batch_size, loop.shuffle_gen, dp, loop.cache)
        augment = lambda x, view: augment_shard(loop.augment, x, loop.aug_gen, view, dp)  # noqa: E731
    else:
        batches = loop.splits.pretrain.batches(
            cfg.train.batch_size, shuffle=True, generator=loop.shuffle_gen, drop_last=True
        )
        augment = lambda x, view: loop.augment(x, loop.aug_gen, view=view)  # noqa: E731
    # i counts the steps: the epoch's mean loss below divides by it
    for i, (x, _) in enumerate(itertools.islice(batches, loop.steps_per_epoch)):  # noqa: B007
        set_lr(opt, lr_factor(cfg.optim, loop.step, loop.steps_per_epoch, loop.total_steps))
        x1 = augment(x, 0)
        x2 = augment(x, 1)
        if cfg.train.channels_last:
            x1, x2 = x1.contiguous(memory_format=torch.channels_last), x2.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss, seen = loop.model(x1, x2)
        pair.predictor.observe(**seen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loop.step += 1
        pair.predictor.after_optimizer_step(loop.step)
        pair.update_target(loop.step - 1, loop.total_steps)  # the step just taken, 0-based
        total += loss.detach()
        n += x.shape[0]
        # free on CPU: stop at once (not data-parallel: every rank must stop at the same step)
        if dp is None and loop.device.type == "cpu" and not torch.isfinite(loss):
            raise Diverged(f"non-finite loss at step {loop.step}")
    if dp:  # the global batch's mean loss (equal shards), the same number on every rank
        total, n = dp.mean(total), n * dp.world
    mean = float(total) / (i + 1)
    if not torch.isfinite(torch.tensor(mean)):
        raise Diverged(f"non-finite loss in epoch ending at step {loop.step}")
    return mean, n / (time.perf_counter() - start)


def pretrain(
    cfg: TrialConfig,
    report: Report,
    checkpointer: Checkpointer | None = None,
    artifacts: Artifacts | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Run one pretraining trial; call ``report(row)`` after every evaluated epoch.

    Returns all rows (the loop's columns: metrics, epoch, step, timing, device, status). A non-finite loss
    ends the trial with a final row of status ``diverged``; any other error propagates (the sweep
    runner turns it into a ``failed`` row).

    ``checkpointer``: where the state goes every ``checkpointer.every`` epochs (never after the
    last) and comes back from: a trial that finds a checkpoint continues after its epoch, with its
    rows, weights, optimizer and RNG streams, and marks later rows with ``resumed_from_epoch``.
    ``artifacts``: where the online trunk's weights go per ``save.weights`` / ``save.every``.
    ``progress``: called after every epoch (:data:`Progress`), on the main rank only.
    In a data-parallel trial only rank 0 evaluates (other ranks report rows without metrics,
    which the caller drops) and writes artifacts."""
    t0 = time.perf_counter()
    loop = build_loop(cfg)
    main = loop.dp is None or loop.dp.is_main
    # where each row was computed (a resumed trial's earlier rows keep theirs: a data-parallel trial
    # ran on its workers' hosts, in rank order); the caller adds the identity, config and provenance
    node = loop.dp.hosts() if loop.dp else platform.node()
    base = {"device": device_name(loop.device), "node": node, "status": "ok", "error": None, "is_final": False}
    rows, resumed, wall_before = _resume(loop, checkpointer, report)
    t0 -= wall_before
    device_s = (rows[-1].get("device_s") or 0.0) if rows else 0.0  # what earlier runs of it computed
    autocast = autocast_for(cfg, loop.device)
    save_every = cfg.save.every or cfg.eval.every

    def emit(row: dict[str, Any]) -> None:
        progress = {"epoch": epoch, "step": loop.step, "wall_s": time.perf_counter() - t0, "device_s": device_s}
        row = {**base, **progress, "total_steps": loop.total_steps, "resumed_from_epoch": resumed, **row}
        rows.append(row)
        report(row)

    for epoch in range((resumed or 0) + 1, cfg.train.epochs + 1):
        started = time.perf_counter()
        try:
            loss, ips = train_epoch(loop)
        except (Diverged, torch.linalg.LinAlgError) as e:  # eigh of a NaN F_hat fails to converge
            emit({"status": "diverged", "error": str(e), "is_final": True, "loss": float("nan")})
            return rows
        if progress is not None and main:
            progress({"epoch": epoch, "epochs": cfg.train.epochs, "images_per_s": ips, "resumed_from": resumed or 0})
        last = epoch == cfg.train.epochs
        measured = _measure(loop, epoch, last, main, autocast)
        device_s += time.perf_counter() - started  # the loss and metrics are host floats: the device is done
        if measured is not None:
            lr = loop.optimizer.param_groups[0]["lr"]
            emit({"loss": loss, "images_per_s": ips, "lr": lr, "is_final": last, **measured})
        if artifacts is not None and main:
            keep_weights(loop, artifacts, epoch, save_every)
        if checkpointer and checkpointer.every and (epoch % checkpointer.every == 0) and not last:
            checkpointer.save(loop.state(epoch, rows), epoch)
    return rows


def keep_weights(loop: Loop, artifacts: Artifacts, epoch: int, save_every: int) -> None:
    """The trunk's weights after ``epoch``, per ``save.weights``: this trial's, then those of each
    shorter trial read from this run (``artifacts.readouts``: (its epochs, its store))."""
    for end, store in [(loop.cfg.train.epochs, artifacts), *getattr(artifacts, "readouts", ())]:
        if epoch <= end:
            save_weights(loop, store, epoch, epoch == end, save_every)


def _measure(loop: Loop, epoch: int, last: bool, main: bool, autocast: Any) -> dict[str, Any] | None:
    """What the row of ``epoch`` carries: a full evaluation every ``eval.every`` epochs and after the
    last, a collapse-only check every ``eval.collapse_every`` epochs in between, else None (no row).
    Other ranks of a data-parallel trial report the same rows, without metrics."""
    ev = loop.cfg.eval
    if epoch % ev.every == 0 or last:
        return (
            evaluate(loop.pair, loop.splits, loop.transform, ev, loop.cfg.train.batch_size, loop.cfg.seed, autocast)
            if main
            else {}
        )
    if ev.collapse_every and epoch % ev.collapse_every == 0:
        return collapse_check(loop.pair, loop.splits, loop.transform, autocast) if main else {}
    return None


def _resume(loop: Loop, checkpointer: Checkpointer | None, report: Report) -> tuple[list[dict], int | None, float]:
    """(rows so far, the epoch resumed from or None, wall seconds already spent) from the newest
    checkpoint, whose state the loop takes over; its rows are reported again (the run that saved them
    may have died before they were recorded)."""
    state = checkpointer.load() if checkpointer else None
    if state is None:
        return [], None, 0.0
    loop.restore(state)
    rows = list(state["rows"])
    for row in rows:
        report(row)
    return rows, state["epoch"], rows[-1]["wall_s"] if rows else 0.0


def save_weights(loop: Loop, artifacts: Artifacts, epoch: int, last: bool, every: int) -> None:
    """The online trunk's plain state dict (:func:`ablate.models.trunks.export_state_dict`):
    ``trunk_final.pt`` after the last epoch, and ``trunk_epoch{N}.pt`` every ``every`` epochs
    with ``save.weights: every``."""
    mode = loop.cfg.save.weights
    if mode == "none":
        return
    if mode == "every" and epoch % every == 0:
        artifacts.save(epoch_weights(epoch), export_state_dict(loop.pair.online.trunk))
    if last:
        artifacts.save(FINAL_WEIGHTS, export_state_dict(loop.pair.online.trunk))
