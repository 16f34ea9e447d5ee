"""A trial's saved trunk weights for ``ablate export``: which file holds the weights asked for
(:func:`weights_file`), why a trial that did not finish has none (:func:`no_final_trunk`), and
reading a ``.pt`` that may be damaged or another network's (:func:`state_dict`, :func:`fitted`):
each refusal is one line naming the file and the fix.
"""

from __future__ import annotations

import io
import re
from typing import Any

import torch

from ablate.config.trial import ModelConfig
from ablate.errors import UserError
from ablate.models.trunks import load_trunk
from ablate.results.layout import FINAL_WEIGHTS, SweepDir, epoch_weights
from ablate.results.location import Location
from ablate.results.schema import COLLAPSED_STOPPED


def no_final_trunk(row: dict[str, Any], folder: SweepDir) -> str:
    """Why a trial whose final row is not ok has no final trunk to export, and what to do instead."""
    tid, status, epoch = row["trial_id"], row.get("status"), row.get("epoch")
    if status == COLLAPSED_STOPPED:
        return (
            f"export --trial {tid}: the sweep's stop_collapsed ended the trial at epoch {epoch} (collapsed), before "
            f"its final weights; run it to the end to have them: ablate run {folder.display()} --set stop_collapsed=0"
        )
    why = "failed with an error (see ablate status)" if status == "failed" else f"{status} at epoch {epoch}"
    return f"export --trial {tid}: the trial {why}: it has no trained trunk to export; pick a finished one"


def weights_file(folder: SweepDir, row: dict[str, Any], epoch: int | None) -> Location:
    """The saved trunk of the trial whose final row is ``row``: after ``epoch``, or the final one.
    The final epoch's weights are ``trunk_final.pt`` whatever ``save.weights`` kept besides."""
    tid, last = row["trial_id"], row.get("train.epochs")
    if epoch is not None and last is not None and not 1 <= epoch <= last:
        raise UserError(f"export --epoch {epoch}: trial {tid} ran epochs 1..{last}; give one of them")
    where = folder.weights(tid)
    src = where / (FINAL_WEIGHTS if epoch is None or epoch == last else epoch_weights(epoch))
    if src.exists():
        return src
    names = [c.name for c in where.children()] if where.exists() else []
    saved: list[Any] = sorted(int(m[1]) for n in names if (m := re.fullmatch(r"trunk_epoch(\d+)\.pt", n)))
    saved += [f"{last} (final)"] if FINAL_WEIGHTS in names else []
    have = f"the weights of epoch{'s' * (len(saved) > 1)} {', '.join(map(str, saved))} only" if saved else "no weights"
    keep = f"the weights of epoch {epoch}" if epoch is not None else "the final weights"
    flags = f"--set save.weights=every --set save.every={epoch}" if epoch is not None else "--set save.weights=final"
    raise UserError(
        f"export{f' --epoch {epoch}' if epoch is not None else ''}: trial {tid} kept {have} "
        f"(save.weights={row.get('save.weights') or 'none'}){'; give one of those' * bool(saved and epoch)}; "
        f"to keep {keep}, run the sweep again from the start (a finished trial is not rerun: save.* keys are not "
        f"in its id; --restart moves the old results aside): ablate run {folder.display()} --restart {flags}"
    )


def in_channels(state: dict[str, Any], where: Any, fix: str) -> int:
    for key in ("conv1.weight", "features.0.weight"):  # ResNet / ablate's convnet
        if key in state:
            return int(state[key].shape[1])
    first = next((v for v in state.values() if getattr(v, "ndim", 0) == 4), None)
    if first is None:
        raise UserError(f"{where}: holds no convolution weights, so it is no trunk's state_dict; {fix}")
    return int(first.shape[1])


def _one_line(err: BaseException, limit: int = 240) -> str:
    """torch's reason for a refusal, on one line and cut to ``limit`` characters."""
    text = "; ".join(part.strip() for part in str(err).splitlines() if part.strip()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def state_dict(blob: bytes, where: Any, fix: str) -> dict[str, torch.Tensor]:
    """The state_dict a ``.pt`` file holds (names -> tensors); a damaged file, or one holding anything
    else, is a :class:`UserError` naming ``where`` and the ``fix``."""
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle, zip, EOF and runtime errors alike for a damaged file
        raise UserError(f"{where}: not a readable torch file ({_one_line(e)}); {fix}") from None
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        what = type(state).__name__
        raise UserError(f"{where}: holds a {what}, not a state_dict of a trunk (names -> tensors); {fix}")
    return state


def fitted(state: dict[str, torch.Tensor], model_cfg: ModelConfig, channels: int, where: Any, fix: str) -> Any:
    """``state`` loaded strictly into the trunk of ``model_cfg``; weights of another trunk are refused."""
    try:
        return load_trunk(state, model_cfg, channels)
    except (RuntimeError, KeyError, ValueError) as e:  # strict load: missing / unexpected keys, other shapes
        what = f"{model_cfg.trunk}" + (f" (width {model_cfg.width})" if model_cfg.trunk == "convnet" else "")
        raise UserError(f"{where}: the weights do not fit the trial's {what} trunk ({_one_line(e)}); {fix}") from None
