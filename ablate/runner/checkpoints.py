"""Trial checkpoints through Ray's checkpoint mechanism, found again after a retry or a resubmission.

A checkpoint is a folder with ``state.pt`` (``torch.save`` of :meth:`ablate.train.loop.Loop.state`: the
online, target and predictor weights with DirectPred's F_hat buffer, the optimizer, every RNG state
and the rows so far) and ``meta.json`` (``{"trial_id", "epoch"}``). :mod:`ablate.train.loop` decides
when (``checkpoint.every`` epochs) and what; this module hands them to Ray, in the folders
:meth:`ablate.results.layout.SweepDir.checkpoint_roots` names:

* single-process trials (:class:`TuneCheckpointer`): the folder is handed to Ray Tune with the next
  ``tune.report(..., checkpoint=...)``; Tune uploads it to
  ``<storage>/_<sweep>/ray/<sweep>/<trial_id>/checkpoint_NNNNNN/`` and keeps the last ``checkpoint.keep``
  (``CheckpointConfig(num_to_keep)``). A retry in the same run (``FailureConfig(max_failures)``:
  a crash, a lost node) gets it back from ``tune.get_checkpoint()``.
* data-parallel trials (:class:`TrainCheckpointer`): rank 0 hands it to ``ray.train.report`` on
  every worker's report (a barrier); Ray Train stores it under
  ``<storage>/_<sweep>/ray/_train/<trial_id>/epoch_NNNNNN/``, restores it into a restarted worker group
  and, for a new run with the same name, from its own snapshot in that folder.
* a resubmitted sweep (a new ``ablate run`` after a time limit or preemption) has no Tune state;
  :func:`find_latest` scans both folders of the trial (they are keyed by OUR trial_id, the hash of
  the config, so the same trial finds them in any later run) and takes the highest epoch.

Loading uses ``torch.load(weights_only=True)``: the state is tensors (weights, optimizer moments,
the RNG states as uint8 tensors) and plain Python values (the rows), which torch's restricted
unpickler accepts, so loading a checkpoint from shared storage cannot run code. A checkpoint that
fails to load (a half-uploaded folder of a node that died) is skipped for the next older one.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ablate.results.location import Location

STATE_FILE = "state.pt"
META_FILE = "meta.json"

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- files
def ray_storage(loc: Location) -> dict[str, Any]:
    """Ray's ``storage_path`` (and ``storage_filesystem`` for a URI) of a folder: Ray writes through
    the very pyarrow filesystem the results use, with the URI's options (endpoint, scheme)."""
    if loc.local is not None:
        return {"storage_path": str(loc.local)}
    return {"storage_path": loc.path, "storage_filesystem": loc.fs}


def write_checkpoint(state: dict[str, Any], directory: Path, trial_id: str) -> None:
    """``state.pt`` then ``meta.json`` into a local folder (a checkpoint is complete once both exist)."""
    import torch

    torch.save(state, directory / STATE_FILE)
    (directory / META_FILE).write_text(json.dumps({"trial_id": trial_id, "epoch": int(state["epoch"])}))


def read_state(data: bytes | Path) -> dict[str, Any]:
    """A ``state.pt`` (bytes or a local file) -> the state dict, tensors on the CPU (the loop moves them)."""
    import io

    import torch

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    return torch.load(source, map_location="cpu", weights_only=True)  # tensors + plain values: see module doc


def _meta(folder: Location) -> dict[str, Any] | None:
    meta = folder / META_FILE
    try:
        out = json.loads(meta.read_bytes())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) and isinstance(out.get("epoch"), int) else None


def candidates(roots: list[Location], trial_id: str) -> list[tuple[int, Location]]:
    """(epoch, folder) of every complete-looking checkpoint of ``trial_id`` under ``roots``, newest first."""
    found = []
    for root in roots:
        for folder in root.children():
            meta = _meta(folder)
            if meta and meta.get("trial_id") == trial_id and (folder / STATE_FILE).exists():
                found.append((meta["epoch"], folder))
    return sorted(found, key=lambda item: item[0], reverse=True)


def find_latest(roots: list[Location], trial_id: str) -> dict[str, Any] | None:
    """The state of the newest checkpoint under ``roots`` that loads, or None."""
    for epoch, folder in candidates(roots, trial_id):
        try:
            return read_state((folder / STATE_FILE).read_bytes())
        except Exception as e:
            log.warning("checkpoint %s (epoch %d) does not load (%s); trying an older one", folder, epoch, e)
    return None


def delete_checkpoints(roots: list[Location]) -> None:
    """Remove a finished trial's checkpoints (its final weights are in ``_<sweep>/weights/``)."""
    for root in roots:
        for folder in root.children():
            if folder.is_dir() and (folder.name.startswith(("checkpoint_", "epoch_"))):
                folder.delete()
        snapshot = root / "checkpoint_manager_snapshot.json"  # Ray Train would restore the deleted ones
        if snapshot.exists():
            snapshot.delete()


def _load_ray_checkpoint(checkpoint: Any) -> dict[str, Any] | None:
    """A ``ray.tune.Checkpoint`` / ``ray.train.Checkpoint`` -> state (downloaded if remote), or None."""
    if checkpoint is None:
        return None
    try:
        with checkpoint.as_directory() as d:
            return read_state(Path(d) / STATE_FILE)
    except Exception as e:
        log.warning("Ray's checkpoint %s does not load (%s); looking in storage", checkpoint, e)
        return None


def _newest(*states: dict[str, Any] | None) -> dict[str, Any] | None:
    present = [s for s in states if s is not None]
    return max(present, key=lambda s: s["epoch"]) if present else None


# ---------------------------------------------------------------- the two checkpointers
class TuneCheckpointer:
    """:class:`ablate.train.loop.Checkpointer` of a single-process trial running as a Ray Tune trial.

    ``save`` reports a heartbeat (no row: the driver's recorder ignores it) that carries the
    checkpoint; ``load`` prefers Tune's own (a retry in this run), else the newest in storage."""

    def __init__(self, every: int, trial_id: str, roots: list[Location], heartbeat: dict[str, Any]) -> None:
        self.every, self.trial_id, self.roots, self.heartbeat = every, trial_id, roots, heartbeat

    def load(self) -> dict[str, Any] | None:
        from ray import tune

        return _newest(_load_ray_checkpoint(tune.get_checkpoint()), find_latest(self.roots, self.trial_id))

    def save(self, state: dict[str, Any], epoch: int) -> None:
        from ray import tune

        folder = Path(tempfile.mkdtemp(prefix="ablate-ckpt-"))
        try:
            write_checkpoint(state, folder, self.trial_id)
            tune.report(
                {**self.heartbeat, "checkpoint_epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(str(folder))
            )  # uploaded before it returns
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class TrainCheckpointer:
    """:class:`ablate.train.loop.Checkpointer` of one worker of a data-parallel (Ray Train) trial.

    Every worker calls ``save`` (``ray.train.report`` is a barrier that all workers must reach the
    same number of times); only rank 0 writes and hands over the state, which is the same on every
    rank (DDP keeps weights, optimizer and RNG streams identical). Every rank loads the same one."""

    def __init__(self, every: int, trial_id: str, roots: list[Location], heartbeat: dict[str, Any], rank: int) -> None:
        self.every, self.trial_id, self.roots, self.heartbeat, self.rank = every, trial_id, roots, heartbeat, rank

    def load(self) -> dict[str, Any] | None:
        import ray.train

        return _newest(_load_ray_checkpoint(ray.train.get_checkpoint()), find_latest(self.roots, self.trial_id))

    def save(self, state: dict[str, Any], epoch: int) -> None:
        import ray.train

        folder = Path(tempfile.mkdtemp(prefix="ablate-ckpt-"))
        try:
            checkpoint = None
            if self.rank == 0:
                write_checkpoint(state, folder, self.trial_id)
                checkpoint = ray.train.Checkpoint.from_directory(str(folder))
            ray.train.report(
                {**self.heartbeat, "checkpoint_epoch": epoch},
                checkpoint=checkpoint,
                checkpoint_dir_name=f"epoch_{epoch:06d}",
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def heartbeat(metrics: list[str]) -> dict[str, Any]:
    """What a checkpoint-only report carries: Tune's metrics as NaN (Tune and Optuna read them from
    every result) and no row (the driver's recorder skips it)."""
    return {**{m: math.nan for m in metrics}, "is_final": False}
