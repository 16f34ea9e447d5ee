"""Experiment trackers for ``ablate run``: Ray Tune's own logger callbacks, fed our rows.

A sweep's ``logging: [tensorboard, mlflow, wandb]`` (or ``ablate run --log ...``) adds Ray Tune's
stock callbacks -- ``TBXLoggerCallback``, ``MLflowLoggerCallback``, ``WandbLoggerCallback`` -- to the
run. Each trial reports Tune results ``{"row_json": <the full results row>, <metric>: ..., "is_final"}``
(see :mod:`ablate.runner`), and its Tune config is ``{"trial": {... "config": <nested trial config>}}``.
The stock callbacks would log that JSON string and the nested dict as they are, so each is
subclassed only to translate: every numeric metric column of the row (the kind's metrics, e.g.
``ablate.results.SSL_METRICS``, plus ``wall_s``) is logged at step = ``epoch``, and the flattened
trial config (dotted keys, as in the results) is logged as hyper-parameters. Where the files go:

  tensorboard  ``<results>/_tensorboard/<trial_id>/`` event files (scalars ``ray/tune/<metric>``,
               hparams at the end of each trial)  -> ``tensorboard --logdir <results>/_tensorboard``
  mlflow       one experiment per sweep (name = sweep name), one run per trial (name = trial_id);
               a local SQLite store ``<results>/_mlruns/mlflow.db`` by default (MLflow 3 refuses
               its old plain-file store), or ``--tracking-uri`` / ``MLFLOW_TRACKING_URI``
  wandb        runs grouped by sweep (group = sweep name, name = trial_id) in ``<results>/_wandb``;
               offline unless W&B is configured and reachable (``WANDB_MODE`` overrides); the
               ``wandb sync`` command is printed at the end

Everything under ``_`` is skipped by the Parquet dataset. The trackers are optional extras
(``pip install 'ablate[mlflow]'``); a missing package is one :class:`UserError` line.
Like :mod:`ablate.runner`, this module imports Ray (lazily): it is the runner's plug-in.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Sequence

from ablate.errors import UserError

TRACKERS = ("tensorboard", "mlflow", "wandb")
# tracker -> (python modules it needs, the ablate extra that installs them)
REQUIRES: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboardX",), "tensorboard"),
    "mlflow": (("mlflow",), "mlflow"),
    "wandb": (("wandb",), "wandb"),
}
EXTRA_METRICS = ("wall_s",)  # common columns worth a curve besides the kind's metrics
ROW_KEY = "row_json"  # ablate.worker.ROW_KEY (not imported: keep this module importable without the runner)
STEP_KEY = "training_iteration"  # the key Ray's loggers take their step from when timesteps_total is absent


# ---------------------------------------------------------------- names
def parse_log(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` (the ``--log`` flag) or a list -> validated tracker names, in order."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(str(n).strip().lower() for n in items if str(n).strip()))
    for n in names:
        if n not in TRACKERS:
            from ablate.configtree import did_you_mean

            raise UserError(f"--log {n!r}: unknown tracker{did_you_mean(n, TRACKERS) or ''}; "
                            f"choose from {', '.join(TRACKERS)} (comma-separated)")
    return names


def require(name: str) -> None:
    """Raise the one-line :class:`UserError` naming the extra to install when a tracker's package is missing."""
    modules, extra = REQUIRES[name]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise UserError(f"logging: {name} needs the {module} package; pip install 'ablate[{extra}]'")


# ---------------------------------------------------------------- rows -> tracker input
@dataclass(frozen=True)
class TrialInfo:
    """What a tracker shows for one trial: our id, its flattened config (hyper-parameters), tags."""

    trial_id: str
    params: dict[str, Any]  # dotted config leaf -> int | float | bool | str (None left out)
    tags: dict[str, str]


def _param_value(v: Any) -> Any:
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)  # trackers take scalars only; e.g. a list-valued leaf
    return v


def trial_info(params: dict[str, Any]) -> TrialInfo:
    """The :class:`TrialInfo` of a trial from its Tune parameters (``trial.config["trial"]``)."""
    from ablate.config import config_hash
    from ablate.configtree import flatten, to_dict
    from ablate.worker import resolve  # the driver and the worker resolve a trial the same way

    kind, cfg, search, extra = resolve(params)
    flat = {k: _param_value(v) for k, v in flatten(to_dict(cfg)).items() if v is not None and k != "kind"}
    tid = config_hash(cfg)
    tags = {"sweep": str(extra.get("sweep") or ""), "trial_id": tid, "kind": kind.name, "search": str(search)}
    return TrialInfo(tid, flat, tags)


def row_metrics(row: dict[str, Any], kind: str | None = None) -> dict[str, float]:
    """Every finite numeric metric of a results row (bools as 0/1), by column name."""
    from ablate.kinds import KINDS

    names = [*KINDS[kind or row.get("kind") or "ssl"].metric_names(numeric_only=True), *EXTRA_METRICS]
    out: dict[str, float] = {}
    for name in names:
        v = row.get(name)
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[name] = float(v)
    return out


def tracker_results(result: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, float], int]]:
    """A Tune result of the runner -> [(row, metrics, step = epoch)] for each row it carries (the
    runner batches the rows of fast kinds), leaving out rows with no finite metric (e.g. a trial
    that failed before its first evaluation)."""
    if ROW_KEY not in result:
        return []
    payload = json.loads(result[ROW_KEY])
    out = []
    for row in payload if isinstance(payload, list) else [payload]:
        metrics = row_metrics(row)
        if metrics:
            step = row.get("epoch")
            out.append((row, metrics, int(step if step is not None else result.get(STEP_KEY, 0))))
    return out


class _Rows:
    """Mix-in for Ray's logger callbacks: our trial identity per Ray trial, computed once."""

    def _info(self, trial: Any) -> TrialInfo:
        cache = self.__dict__.setdefault("_ablate_infos", {})
        if trial not in cache:
            cache[trial] = trial_info(trial.config["trial"])
        return cache[trial]


# ---------------------------------------------------------------- the three callbacks
def _tensorboard_cls() -> type:
    from ray.tune.logger import TBXLoggerCallback

    class TensorBoardCallback(_Rows, TBXLoggerCallback):
        """Ray's TBXLoggerCallback writing ``<root>/<trial_id>/`` with our metrics and hparams."""

        def __init__(self, root: Path) -> None:
            super().__init__()
            self.root = Path(root)

        def log_trial_start(self, trial: Any) -> None:
            if trial in self._trial_writer:
                self._trial_writer[trial].close()
            logdir = self.root / self._info(trial).trial_id
            logdir.mkdir(parents=True, exist_ok=True)
            self._trial_writer[trial] = self._summary_writer_cls(str(logdir), flush_secs=30)
            self._trial_result[trial] = {}

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            for _, metrics, step in tracker_results(result):
                super().log_trial_result(iteration, trial, {**metrics, STEP_KEY: step})

        def _try_log_hparams(self, trial: Any, result: dict) -> None:
            """Ray's version reads trial.evaluated_params (our one nested ``trial`` dict); log the
            flattened config instead, against the trial's last metrics."""
            from tensorboardX.summary import hparams

            params = {k: v for k, v in self._info(trial).params.items() if isinstance(v, (str, bool, int, float))}
            for tag in hparams(hparam_dict=params, metric_dict=result):
                self._trial_writer[trial].file_writer.add_summary(tag)

    return TensorBoardCallback


def _mlflow_cls() -> type:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MLflowCallback(_Rows, MLflowLoggerCallback):
        """Ray's MLflowLoggerCallback: run name = trial_id, params = flattened config, metrics per epoch."""

        def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None) -> None:
            super().__init__(tracking_uri=tracking_uri, experiment_name=experiment_name)
            self.artifact_location = artifact_location

        def setup(self, *args: Any, **kwargs: Any) -> None:
            # As Ray's setup, plus an artifact location beside the store (not ./mlruns in the cwd).
            from mlflow.tracking import MlflowClient

            quiet = logging.getLogger("mlflow.store.db.utils")  # "Creating initial MLflow database tables..."
            level = quiet.level
            quiet.setLevel(logging.WARNING)
            try:
                self.mlflow_util.setup_mlflow(tracking_uri=self.tracking_uri, experiment_name=self.experiment_name,
                                              artifact_location=self.artifact_location)
            finally:
                quiet.setLevel(level)
            self.tags = self.tags or {}
            self._trial_runs = {}
            self.client = MlflowClient(self.tracking_uri)

        def log_trial_start(self, trial: Any) -> None:
            from mlflow.entities import Param

            if trial in self._trial_runs:
                return
            info = self._info(trial)
            run = self.mlflow_util.start_run(run_name=info.trial_id, tags={**self.tags, **info.tags})
            self._trial_runs[trial] = run.info.run_id
            # one batch, not one store round trip per key (~60 config leaves)
            self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in info.params.items()])

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            for row, metrics, step in tracker_results(result):
                self._log_row(trial, row, metrics, step)

        def _log_row(self, trial: Any, row: dict, metrics: dict[str, float], step: int) -> None:
            import time

            from mlflow.entities import Metric

            if trial not in self._trial_runs:
                self.log_trial_start(trial)
            run_id = self._trial_runs[trial]
            now = int(time.time() * 1000)
            self.client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])
            if row.get("is_final"):  # ok / diverged: filterable as tags.status in the MLflow UI
                self.client.set_tag(run_id, "status", str(row.get("status")))

    return MLflowCallback


def _wandb_cls() -> type:
    from ray.air.integrations.wandb import WandbLoggerCallback

    class WandbCallback(_Rows, WandbLoggerCallback):
        """Ray's WandbLoggerCallback: name = trial_id, group = sweep, config = flattened trial config."""

        def __init__(self, project: str, group: str, root: Path, mode: str, stream: IO[str] | None) -> None:
            super().__init__(project=project, group=group)
            self.root, self.mode, self.stream = Path(root), mode, stream

        def setup(self, *args: Any, **kwargs: Any) -> None:
            # Ray's setup demands an API key unless WANDB_MODE says offline; say so for the call only
            # (a notebook's own wandb use afterwards keeps its environment).
            old = os.environ.get("WANDB_MODE")
            if self.mode in ("offline", "disabled"):
                os.environ["WANDB_MODE"] = self.mode
            try:
                super().setup(*args, **kwargs)
            finally:
                if old is None:
                    os.environ.pop("WANDB_MODE", None)
                else:
                    os.environ["WANDB_MODE"] = old

        def log_trial_start(self, trial: Any) -> None:
            info = self._info(trial)
            trial.init_local_path()  # the logging actor chdirs there
            self.root.mkdir(parents=True, exist_ok=True)
            init = dict(name=info.trial_id, resume=False, reinit=True, allow_val_change=True, group=self.group,
                        project=self.project, config=info.params, tags=[info.tags["sweep"], info.tags["kind"]],
                        dir=str(self.root.resolve()), mode=self.mode, job_type=info.tags["search"])
            init.update(self.kwargs)
            self._start_logging_actor(trial, [*self._exclude_results, *self.excludes, "config"], **init)

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            for _, metrics, step in tracker_results(result):
                super().log_trial_result(iteration, trial, {**metrics, "epoch": step, STEP_KEY: step})

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            super().on_experiment_end(trials, **info)
            if self.mode == "offline":
                runs = self.root / "wandb"
                print(f"W&B runs are offline in {runs}; upload them with: wandb sync {runs}/offline-run-*",
                      file=self.stream or sys.stdout, flush=True)

    return WandbCallback


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


def mlflow_uri(results_dir: Path, tracking_uri: str | None = None) -> str:
    """The MLflow tracking URI: the given one (a bare path is a folder for a local store), else
    ``MLFLOW_TRACKING_URI``, else a SQLite store in ``<results>/_mlruns``."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri and re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", uri):  # has a scheme: sqlite:, http(s):, databricks
        return uri
    folder = Path(uri) if uri else Path(results_dir) / "_mlruns"
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def tracker_callbacks(names: Sequence[str], sweep: Any, results_dir: Path, tracking_uri: str | None = None,
                      *, stream: IO[str] | None = None) -> list[Any]:
    """Ray Tune callbacks for the trackers in ``names`` (``sweep.logging`` or ``--log``).

    ``results_dir`` is the sweep's results folder; ``tracking_uri`` an MLflow tracking URI (default:
    a local store in ``<results>/_mlruns``). Checks every package first, so a missing one fails
    before anything runs."""
    names = parse_log(list(names))
    for n in names:
        require(n)
    root = Path(results_dir)
    out: list[Any] = []
    for n in names:
        if n == "tensorboard":
            out.append(_tensorboard_cls()(root / "_tensorboard"))
        elif n == "mlflow":
            uri = mlflow_uri(root, tracking_uri)
            if uri.startswith("sqlite:///"):
                Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            artifacts = (root / "_mlruns" / "artifacts").resolve().as_uri() if uri.startswith("sqlite:") else None
            out.append(_mlflow_cls()(uri, sweep.name, artifacts))
        elif n == "wandb":
            out.append(_wandb_cls()(os.environ.get("WANDB_PROJECT", "ablate"), sweep.name, root / "_wandb",
                                    wandb_mode(), stream))
    return out


def tracker_notes(names: Sequence[str], results_dir: Path, tracking_uri: str | None = None) -> list[str]:
    """How to look at what the trackers wrote (printed by ``ablate run`` after the table)."""
    root = Path(results_dir)
    notes = []
    for n in parse_log(list(names)):
        if n == "tensorboard":
            notes.append(f"TensorBoard: tensorboard --logdir {root / '_tensorboard'}")
        elif n == "mlflow":
            notes.append(f"MLflow: mlflow ui --backend-store-uri {mlflow_uri(root, tracking_uri)}")
    return notes
