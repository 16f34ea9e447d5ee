"""``ablate export``: a trial's pretrained trunk as a plain state_dict, for downstream tasks.

Each trial keeps its online trunk's weights (``save.weights: final`` by default, see
:class:`ablate.config.trial.SaveConfig`) in ``<storage>/_<sweep>/weights/<trial_id>/trunk_final.pt`` (and
``trunk_epoch{N}.pt`` with ``save.weights: every``), written by :func:`ablate.models.trunks.export_state_dict`.
:func:`write_trunk` picks a trial -- by id (a unique prefix is enough) or the best final row by a
metric -- checks that the weights load strictly into the trunk's own constructor, and writes

  ``<to>``        the state dict (torchvision's keys for ResNets, minus ``fc.*``)
  ``<to stem>.json``  a sidecar: the trial's config, its final metrics, provenance (git sha,
                  versions, device) and the exact lines that load the file.

For a ResNet-18 with the ImageNet stem on 3-channel images (the paper's STL-10 / ImageNet setting):

    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    model.load_state_dict(torch.load("trunk.pt"), strict=True)   # model(x) -> y, the 512-d feature

(with ``--head-classes N`` the file loads into ``resnet18(num_classes=N)`` unchanged, with a blank
fc). :func:`read_trunk` rebuilds any exported trunk from the file and its sidecar.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from ablate.analysis.metrics import check_measure
from ablate.analysis.weights import fitted, in_channels, no_final_trunk, state_dict, weights_file
from ablate.config.tree import build
from ablate.config.trial import ModelConfig
from ablate.errors import UserError
from ablate.kinds.registry import DEFAULT_KIND, get_kind
from ablate.models.trunks import export_state_dict
from ablate.results.io import final_rows, read_rows
from ablate.results.layout import SweepDir
from ablate.results.location import Location

FORMAT = "ablate-trunk/1"


# ---------------------------------------------------------------- which trial
def select_trial(
    folder: SweepDir | str | Path,
    trial_id: str | None = None,
    best: str | None = None,
    mode: Literal["max", "min"] = "max",
    among: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The final row of one trial of a results folder: by ``trial_id`` (a unique prefix is enough, any
    trial of the folder) or the best by ``best`` among the rows ``among`` (default: the whole folder;
    the API passes one expansion's rows)."""
    folder = folder if isinstance(folder, SweepDir) else SweepDir.at(folder)
    if (trial_id is None) == (best is None):
        raise UserError("export: give exactly one of --trial ID (or a unique prefix) and --best METRIC")
    df = among if among is not None and best is not None else read_rows(folder)
    if df.empty:
        raise UserError(f"{folder}: no results; give a results folder of `ablate run` (results/<sweep>)")
    final = final_rows(df)
    if trial_id is not None:
        ids = sorted(set(df["trial_id"].dropna()))
        hits = [t for t in ids if t.startswith(trial_id)]
        if not hits:
            raise UserError(
                f"export --trial {trial_id}: no trial with this id in {folder}; "
                f"trials: {', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''} (see ablate status)"
            )
        if len(hits) > 1:
            raise UserError(
                f"export --trial {trial_id}: ambiguous, matches {', '.join(hits[:8])}; give more characters"
            )
        rows = final[final["trial_id"] == hits[0]]
        if rows.empty:
            raise UserError(
                f"export --trial {hits[0]}: the trial has not finished (no final row); run the sweep again to finish it"
            )
        return _clean(rows.iloc[-1].to_dict())
    check_measure(df, best, "export --best")
    if mode not in ("max", "min"):
        raise UserError(f"export --mode {mode!r}: choose max or min")
    ok = final[(final["status"] == "ok") & final[best].notna()]
    if ok.empty:
        raise UserError(f"export --best {best}: no finished trial with a value of {best} in {folder}")
    idx = ok[best].astype(float).idxmax() if mode == "max" else ok[best].astype(float).idxmin()
    return _clean(ok.loc[idx].to_dict())


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """pandas / NumPy values -> plain Python; NaN / NA -> None (JSON-safe)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        elif v is pd.NA or v is pd.NaT:
            v = None
        if isinstance(v, float) and math.isnan(v):
            v = None
        out[k] = v
    return out


# ---------------------------------------------------------------- how to load it
def load_recipe(model: dict[str, Any], in_channels: int, file: str, head_classes: int | None = None) -> list[str]:
    """Python lines that load an exported trunk with plain torch / torchvision (no ablate needed
    for ResNets). ``model`` is the trial config's ``model`` section."""
    trunk, stem = model.get("trunk", "convnet"), model.get("stem", "imagenet")
    load = f"model.load_state_dict(torch.load({file!r}), strict=True)"
    if trunk == "convnet":  # not a torchvision model: ablate's own small convnet
        return [
            "import torch",
            "from ablate.models.trunks import ConvNet",
            f"model = ConvNet(in_channels={in_channels}, width={model.get('width', 64)})",
            load,
        ]
    lines = [
        "import torch, torchvision",
        f"model = torchvision.models.{trunk}({f'num_classes={head_classes}' if head_classes else ''})",
    ]
    if stem == "cifar":
        lines += [
            f"model.conv1 = torch.nn.Conv2d({in_channels}, 64, kernel_size=3, stride=1, padding=1, bias=False)",
            "model.maxpool = torch.nn.Identity()",
        ]
    elif in_channels != 3:
        lines.append(
            f"model.conv1 = torch.nn.Conv2d({in_channels}, 64, kernel_size=7, stride=2, padding=3, bias=False)"
        )
    if not head_classes:
        lines.append("model.fc = torch.nn.Identity()  # model(x) is the trunk feature y")
    return lines + [load]


# ---------------------------------------------------------------- export
def write_trunk(
    folder: SweepDir | str | Path,
    trial_id: str | None = None,
    best: str | None = None,
    mode: Literal["max", "min"] = "max",
    to: str | Path | None = None,
    *,
    epoch: int | None = None,
    head_classes: int | None = None,
    among: pd.DataFrame | None = None,
) -> Path:
    """Write the trunk of one trial of ``folder`` to ``to`` (default ``trunk_<trial_id>.pt``)
    plus the JSON sidecar ``<to stem>.json``; return the path of the weights.

    ``trial_id`` (or a unique prefix) or ``best`` (a metric; ``mode`` max or min) picks the trial;
    ``among``: the rows ``best`` picks from (:func:`select_trial`);
    ``epoch`` takes ``trunk_epoch{N}.pt`` instead of the final weights; ``head_classes`` adds a
    blank (zero) fc head so the file loads into an unmodified ``torchvision.models.resnetXX(num_classes=N)``."""
    folder = folder if isinstance(folder, SweepDir) else SweepDir.at(folder)
    if to is not None and Path(to).suffix != ".pt":  # before any weights are read
        raise UserError(f"export --to {to}: expected a .pt file name, e.g. --to trunk.pt")
    row = select_trial(folder, trial_id, best, mode, among)
    tid = row["trial_id"]
    config = json.loads(row["config_json"]) if row.get("config_json") else {}
    if config and "model" not in config:
        raise UserError(f"export: trial {tid} is a {row.get('kind')} trial, which trains no trunk: nothing to export")
    if epoch is None and row.get("status") != "ok":
        raise UserError(no_final_trunk(row, folder))
    src = weights_file(folder, row, epoch)
    model_cfg = build(ModelConfig, config.get("model", {}))
    if head_classes is not None and model_cfg.trunk == "convnet":
        raise UserError(
            f"export --head-classes {head_classes}: trial {tid} has the convnet trunk, which no torchvision "
            "model loads; export it without --head-classes (ablate.load_exported rebuilds it)"
        )
    fix = (
        f"the trial's weights file was damaged or replaced; write it anew by running the sweep again from the "
        f"start: ablate run {folder.display()} --restart"
    )
    state = state_dict(src.read_bytes(), src, fix)
    channels = in_channels(state, src, fix)
    trunk = fitted(state, model_cfg, channels, src, fix)  # strict: weights of another trunk are refused
    out_state = export_state_dict(trunk, head_classes=head_classes)
    out = Path(to) if to is not None else Path(f"trunk_{tid}.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(out_state, buf)
    Location.parse(out).write_bytes(buf.getvalue())  # atomic: never a half-written trunk.pt
    sidecar = _sidecar(row, config, out, buf.getvalue(), str(src), channels, trunk, head_classes, epoch)
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, sort_keys=False, default=str) + "\n")
    return out


def _sidecar(
    row: dict[str, Any],
    config: dict[str, Any],
    out: Path,
    blob: bytes,
    src: str,
    channels: int,
    trunk: Any,
    head_classes: int | None,
    epoch: int | None,
) -> dict[str, Any]:
    metrics = {
        m: row.get(m)
        for m in get_kind(row.get("kind") or DEFAULT_KIND).metric_names(numeric_only=True)
        if row.get(m) is not None
    }
    try:
        versions = json.loads(row.get("versions") or "{}")
    except json.JSONDecodeError:
        versions = row.get("versions")
    model = config.get("model", {})
    return {
        "format": FORMAT,
        "file": out.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "sweep": row.get("sweep"),
        "trial_id": row["trial_id"],
        "epoch": epoch if epoch is not None else row.get("epoch"),
        "status": row.get("status"),
        "trunk": {
            "name": model.get("trunk"),
            "stem": model.get("stem"),
            "in_channels": channels,
            "feature_dim": int(getattr(trunk, "feature_dim", 0)),
            "head_classes": head_classes,
            "parameters": int(sum(p.numel() for p in trunk.parameters())),
        },
        "load": load_recipe(model, channels, out.name, head_classes),
        "metrics": metrics,
        "config": config,
        "provenance": {
            "git_sha": row.get("git_sha"),
            "git_dirty": row.get("git_dirty"),
            "versions": versions,
            "device": row.get("device"),
            "started_at": row.get("started_at"),
            "wall_s": row.get("wall_s"),
            "source": src,
        },
    }


def read_trunk(path: str | Path) -> Any:
    """Rebuild an exported trunk (any trunk kind) from ``path`` and its sidecar; strict load. The file
    must be the one its sidecar describes (its sha256): weights changed or swapped after the export
    are refused, as are a damaged file and a sidecar that is not ablate export's."""
    path = Path(path)
    side = path.with_suffix(".json")
    fix = "export the trial again: ablate export RESULTS --trial ID --to " + path.name
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the .pt file ablate export wrote")
    if not side.is_file():
        raise UserError(f"{side}: missing; loading an exported trunk needs the JSON sidecar written by ablate export")
    try:
        meta = json.loads(side.read_text())
        model, channels, digest = meta["config"].get("model", {}), int(meta["trunk"]["in_channels"]), meta["sha256"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{side}: not the sidecar of an {FORMAT} export (JSON: config, trunk, sha256); {fix}") from None
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != digest:
        raise UserError(f"{path}: not the file its sidecar {side.name} describes (its sha256 differs); {fix}")
    state = state_dict(blob, path, fix)
    return fitted(state, build(ModelConfig, model), channels, path, fix).eval()


def describe_export(out: Path, metric: str = "probe_top1_best") -> str:
    """What ``ablate export`` prints: the file, the trunk, the trial and the lines that load it."""
    meta = json.loads(out.with_suffix(".json").read_text())
    t = meta["trunk"]
    value = meta["metrics"].get(metric)
    shown = f", {metric} {value:.4f}" if isinstance(value, (int, float)) else ""
    return "\n".join(
        [
            f"wrote {out} ({t['name']}, {t['parameters'] / 1e6:.2f}M parameters, feature dim {t['feature_dim']}) "
            f"and {out.with_suffix('.json')}",
            f"trial {meta['trial_id']} of {meta['sweep'] or 'a lone trial'}, epoch {meta['epoch']}{shown}",
            "load it with:\n    " + "\n    ".join(meta["load"]),
        ]
    )
