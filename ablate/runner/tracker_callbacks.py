"""The three experiment trackers as Ray Tune logger callbacks, each fed our rows instead of Tune's results.

Ray's stock ``TBXLoggerCallback``, ``MLflowLoggerCallback`` and ``WandbLoggerCallback`` would log
the row's JSON string and the nested trial dict as they are; each is subclassed only to translate
(:mod:`ablate.runner.trackers` says what each writes where). The classes are made on first use, so
that importing this module imports no tracker package.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ablate.config.tree import flatten, to_dict
from ablate.kinds.registry import DEFAULT_KIND, get_kind
from ablate.runner.trainable import ROW_KEY, resolve

EXTRA_METRICS = ("wall_s",)  # common columns worth a curve besides the kind's metrics
STEP_KEY = "training_iteration"  # the key Ray's loggers take their step from when timesteps_total is absent


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
    trial = resolve(params)  # the driver and the worker resolve a trial the same way
    flat = {k: _param_value(v) for k, v in flatten(to_dict(trial.config)).items() if v is not None and k != "kind"}
    tags = {
        "sweep": str(trial.params["sweep"] or ""),
        "trial_id": trial.trial_id,
        "kind": trial.kind.name,
        "search": str(trial.params["search"]),
    }
    return TrialInfo(trial.trial_id, flat, tags)


def row_metrics(row: dict[str, Any], kind: str | None = None) -> dict[str, float]:
    """Every finite numeric metric of a results row (bools as 0/1), by column name."""
    names = [*get_kind(kind or row.get("kind") or DEFAULT_KIND).metric_names(numeric_only=True), *EXTRA_METRICS]
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


@contextlib.contextmanager
def _environ(key: str, value: str | None) -> Iterator[None]:
    """``os.environ[key] = value`` for a while (None: unchanged), then as it was."""
    old = os.environ.get(key)
    if value is not None:
        os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


# ---------------------------------------------------------------- the three callbacks
def tensorboard_callback(root: Path) -> Any:
    """Ray's TBXLoggerCallback writing ``<root>/<trial_id>/``."""
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

    return TensorBoardCallback(root)


def mlflow_callback(tracking_uri: str, experiment_name: str, artifact_location: str | None) -> Any:
    """Ray's MLflowLoggerCallback: one run per trial in one experiment per sweep."""
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
                self.mlflow_util.setup_mlflow(
                    tracking_uri=self.tracking_uri,
                    experiment_name=self.experiment_name,
                    artifact_location=self.artifact_location,
                )
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

    return MLflowCallback(tracking_uri, experiment_name, artifact_location)


def wandb_callback(project: str, group: str, root: Path, mode: str, stream: IO[str] | None) -> Any:
    """Ray's WandbLoggerCallback: runs grouped by sweep, in ``root``."""
    from ray.air.integrations.wandb import WandbLoggerCallback

    class WandbCallback(_Rows, WandbLoggerCallback):
        """Ray's WandbLoggerCallback: name = trial_id, group = sweep, config = flattened trial config."""

        def __init__(self, project: str, group: str, root: Path, mode: str, stream: IO[str] | None) -> None:
            super().__init__(project=project, group=group)
            self.root, self.mode, self.stream = Path(root), mode, stream

        def __getstate__(self) -> dict:
            # Tune pickles its callbacks into tuner.pkl before the run; the output stream (the CLI's
            # standard output, a terminal, a notebook's) belongs to this process and does not go along.
            return {**self.__dict__, "stream": None}

        def setup(self, *args: Any, **kwargs: Any) -> None:
            # Ray's setup demands an API key unless WANDB_MODE says offline; say so for the call only
            # (a notebook's own wandb use afterwards keeps its environment).
            with _environ("WANDB_MODE", self.mode if self.mode in ("offline", "disabled") else None):
                super().setup(*args, **kwargs)

        def log_trial_start(self, trial: Any) -> None:
            info = self._info(trial)
            trial.init_local_path()  # the logging actor chdirs there
            self.root.mkdir(parents=True, exist_ok=True)
            init = dict(
                name=info.trial_id,
                resume=False,
                reinit=True,
                allow_val_change=True,
                group=self.group,
                project=self.project,
                config=info.params,
                tags=[info.tags["sweep"], info.tags["kind"]],
                dir=str(self.root.resolve()),
                mode=self.mode,
                job_type=info.tags["search"],
            )
            init.update(self.kwargs)
            self._start_logging_actor(trial, [*self._exclude_results, *self.excludes, "config"], **init)

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            for _, metrics, step in tracker_results(result):
                super().log_trial_result(iteration, trial, {**metrics, "epoch": step, STEP_KEY: step})

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            super().on_experiment_end(trials, **info)
            if self.mode == "offline":
                runs = self.root / "wandb"
                print(
                    f"W&B runs are offline in {runs}; upload them with: wandb sync {runs}/offline-run-*",
                    file=self.stream or sys.stdout,
                    flush=True,
                )

    return WandbCallback(project, group, root, mode, stream)
