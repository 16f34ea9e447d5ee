"""Data-parallel trials on Ray Train: ``resources: {workers: N}`` runs one trial as N DDP workers.

Each such Tune trial is a Ray Train ``TorchTrainer`` run (:func:`ddp_trainable`): the Tune trial itself
reserves no CPU (it only waits on the trainer) and the N workers get ``resources.cpu / N`` CPUs and
``resources.gpus_per_worker`` GPUs each. Inside every worker the ordinary trial loop runs; it sees
the initialised process group and shards every global batch (:mod:`ablate.train.ddp`). Only rank
0 reports rows and writes weights; the others report heartbeats so Ray Train's report barrier
stays in step.
"""

from __future__ import annotations

from typing import Any

import torch

from ablate.runner.checkpoints import TrainCheckpointer, heartbeat, ray_storage
from ablate.runner.trainable import (
    exception_line,
    failed_result,
    resolve,
    row_reporter,
    run_resolved,
    trial_artifacts,
)

# The Tune trial of a data-parallel run only waits for the trainer: it must not hold a CPU, or the
# workers' CPUs would no longer fit where the sweep says they do. Ray refuses an empty request, so
# it asks for a token amount of memory (bytes) instead.
DRIVER_RESOURCES = {"cpu": 0, "gpu": 0, "memory": 2**20}


def worker_resources(resources: Any) -> dict[str, float]:
    """What each of a data-parallel trial's workers reserves: its share of the trial's CPUs and
    ``gpus_per_worker`` GPUs."""
    return {"CPU": resources.cpu / resources.workers, "GPU": resources.gpus_per_worker or 0.0}


def ddp_trainable(params: dict[str, Any]) -> None:
    """The body of a data-parallel Tune trial: run the trial as a Ray Train job and wait for it.

    Rows reach Tune (and the driver's recorder) through ``TuneReportCallback``; Ray Train retries a
    failed worker group ``max_failures`` times from its latest checkpoint. A run that still fails
    ends as one failed row (and the Tune trial ends normally, so Tune does not retry the retries)."""
    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial = resolve(params["trial"])
    run = trial.params["run"]
    per_worker = run["worker_resources"]
    use_gpu = per_worker.get("GPU", 0) > 0
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config=trial.params,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=run["workers"], use_gpu=use_gpu, resources_per_worker={k: v for k, v in per_worker.items() if v}
        ),
        run_config=ray.train.RunConfig(
            name=trial.trial_id,
            **ray_storage(trial.sweep_dir.train_dir),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=run["keep"]),
            failure_config=ray.train.FailureConfig(max_failures=run["max_failures"]),
            callbacks=[TuneReportCallback()],
        ),
    )
    try:
        trainer.fit()
    except Exception as e:
        tune.report(failed_result(trial, worker_error(e)))


def worker_error(e: BaseException) -> str:
    """The innermost worker exception of a failed Ray Train run, as one line."""
    inner: BaseException = e
    seen = set()
    while id(inner) not in seen:
        seen.add(id(inner))
        nxt = getattr(inner, "worker_failures", None)  # WorkerGroupError: rank -> exception
        if isinstance(nxt, dict) and nxt:
            inner = nxt[min(nxt)]
            continue
        if isinstance(getattr(inner, "controller_failure", None), BaseException):  # ControllerError
            inner = inner.controller_failure
            continue
        if inner.__cause__ is not None:
            inner = inner.__cause__
            continue
        break
    text = str(inner).strip()
    if len(text.splitlines()) > 1:  # a traceback rendered into the message (Ray's task errors)
        return exception_line(text)
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


def _worker_loop(params: dict[str, Any]) -> None:
    """One Ray Train worker: the trial's run function with this rank's report and checkpointer."""
    import ray.train

    trial = resolve(params)
    run, folder = trial.params["run"], trial.sweep_dir
    rank = ray.train.get_context().get_world_rank()
    if run["worker_resources"].get("GPU", 0) > 0:
        import ray.train.torch

        torch.cuda.set_device(ray.train.torch.get_device())  # `cuda` in the trial = this worker's GPU
    beat = heartbeat(trial.metrics)
    if rank == 0:
        report = row_reporter(trial, lambda metrics: ray.train.report(metrics))
    else:  # rows come from rank 0; the others keep the report barrier in step

        def report(row: dict[str, Any]) -> None:
            ray.train.report(dict(beat))

    checkpointer = None
    if run["every"]:
        checkpointer = TrainCheckpointer(
            run["every"], trial.trial_id, folder.checkpoint_roots(trial.trial_id), beat, rank
        )
    artifacts = trial_artifacts(trial) if rank == 0 else None
    run_resolved(trial, report, checkpointer, artifacts)
