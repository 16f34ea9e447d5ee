"""Experiment trackers for ``ablate run``: Ray Tune's own logger callbacks, fed our rows.

A sweep's ``logging: [tensorboard, mlflow, wandb]`` (or ``ablate run --log ...``) adds Ray Tune's
stock callbacks -- ``TBXLoggerCallback``, ``MLflowLoggerCallback``, ``WandbLoggerCallback`` -- to the
run. Each trial reports Tune results ``{"row_json": <the full results row>, <metric>: ..., "is_final"}``
(see :mod:`ablate.runner.trainable`), and its Tune config is ``{"trial": {... "config": <nested trial config>}}``.
The stock callbacks would log that JSON string and the nested dict as they are, so each is
subclassed only to translate: every numeric metric column of the row (the kind's metrics, e.g.
the ssl kind record's ``metrics``, plus ``wall_s``) is logged at step = ``epoch``, and the flattened
trial config (dotted keys, as in the results) is logged as hyper-parameters. Where the files go:

  tensorboard  ``<storage>/_<sweep>/tensorboard/<trial_id>/`` event files (scalars ``ray/tune/<metric>``,
               hparams at the end of each trial)  -> ``tensorboard --logdir <storage>/_<sweep>/tensorboard``
  mlflow       one experiment per sweep (name = sweep name), one run per trial (name = trial_id);
               a local SQLite store ``<storage>/_<sweep>/mlruns/mlflow.db`` by default (MLflow 3 refuses
               its old plain-file store), or ``--tracking-uri`` / ``MLFLOW_TRACKING_URI``
  wandb        runs grouped by sweep (group = sweep name, name = trial_id) in ``<storage>/_<sweep>/wandb``;
               offline unless W&B is configured and reachable (``WANDB_MODE`` overrides); the
               ``wandb sync`` command is printed at the end

Everything under ``_`` is skipped by the Parquet dataset. The trackers are optional extras
(``pip install 'ablate[mlflow]'``); a missing package is one :class:`UserError` line.
For results on a URI the trackers write to a local folder (:attr:`ablate.results.layout.SweepDir.local_side`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ablate.config.tree import did_you_mean
from ablate.errors import UserError
from ablate.results.layout import SweepDir
from ablate.runner.tracker_callbacks import mlflow_callback, tensorboard_callback, wandb_callback

# tracker -> (python modules it needs, the ablate extra that installs them)
REQUIRES: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboardX",), "tensorboard"),
    "mlflow": (("mlflow",), "mlflow"),
    "wandb": (("wandb",), "wandb"),
}
TRACKERS = tuple(REQUIRES)


# ---------------------------------------------------------------- names
def parse_log(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` (the ``--log`` flag) or a list -> validated tracker names, in order."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(str(n).strip().lower() for n in items if str(n).strip()))
    for n in names:
        if n not in TRACKERS:
            raise UserError(
                f"--log {n!r}: unknown tracker{did_you_mean(n, TRACKERS) or ''}; "
                f"choose from {', '.join(TRACKERS)} (comma-separated)"
            )
    return names


def require(name: str) -> None:
    """Raise the one-line :class:`UserError` naming the extra to install when a tracker's package is missing."""
    modules, extra = REQUIRES[name]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise UserError(f"logging: {name} needs the {module} package; pip install 'ablate[{extra}]'")


def wandb_mode() -> str:
    """``WANDB_MODE`` if set; otherwise online only when W&B has an API key and its server answers."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    if not has_key:
        netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
        has_key = netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    if not has_key:
        return "offline"
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host.split(":")[0], 443), timeout=2).close()
        return "online"
    except OSError:
        return "offline"


def mlflow_uri(folder: SweepDir, tracking_uri: str | None = None) -> str:
    """The MLflow tracking URI: the given one (a bare path is a folder for a local store), else
    ``MLFLOW_TRACKING_URI``, else a SQLite store in ``<storage>/_<sweep>/mlruns``."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri and re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", uri):  # has a scheme: sqlite:, http(s):, databricks
        return uri
    store = Path(uri) if uri else folder.tracker_dir("mlflow")
    return f"sqlite:///{(store / 'mlflow.db').resolve()}"


def _tensorboard(folder: SweepDir, sweep: Any, tracking_uri: str | None, stream: IO[str] | None) -> Any:
    return tensorboard_callback(folder.tracker_dir("tensorboard"))


def _mlflow(folder: SweepDir, sweep: Any, tracking_uri: str | None, stream: IO[str] | None) -> Any:
    uri = mlflow_uri(folder, tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    artifacts = (folder.tracker_dir("mlflow") / "artifacts").resolve().as_uri() if uri.startswith("sqlite:") else None
    return mlflow_callback(uri, sweep.name, artifacts)


def _wandb(folder: SweepDir, sweep: Any, tracking_uri: str | None, stream: IO[str] | None) -> Any:
    return wandb_callback(
        os.environ.get("WANDB_PROJECT", "ablate"), sweep.name, folder.tracker_dir("wandb"), wandb_mode(), stream
    )


# tracker -> its Tune callback, and how to look at what it wrote (printed after the run)
CALLBACKS = {"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}
NOTES = {
    "tensorboard": lambda folder, uri: f"TensorBoard: tensorboard --logdir {folder.tracker_dir('tensorboard')}",
    "mlflow": lambda folder, uri: f"MLflow: mlflow ui --backend-store-uri {mlflow_uri(folder, uri)}",
}


def tracker_callbacks(
    names: Sequence[str],
    sweep: Any,
    folder: SweepDir,
    tracking_uri: str | None = None,
    *,
    stream: IO[str] | None = None,
) -> list[Any]:
    """Ray Tune callbacks for the trackers in ``names`` (``sweep.logging`` or ``--log``), writing
    beside the results of ``folder``; ``tracking_uri`` an MLflow tracking URI (default: a local
    store in ``<storage>/_<sweep>/mlruns``). Checks every package first, so a missing one fails before
    anything runs."""
    names = parse_log(list(names))
    for n in names:
        require(n)
    return [CALLBACKS[n](folder, sweep, tracking_uri, stream) for n in names]


def tracker_notes(names: Sequence[str], folder: SweepDir, tracking_uri: str | None = None) -> list[str]:
    """How to look at what the trackers wrote (printed by ``ablate run`` after the table)."""
    return [NOTES[n](folder, tracking_uri) for n in parse_log(list(names)) if n in NOTES]
