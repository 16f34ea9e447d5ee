"""The Ray session of one ``ablate run``: Ray's environment, starting (or attaching to) Ray quietly,
and the nodes it has.

Importing this module sets Ray's and Tune's environment defaults before any part of Ray is
imported (every Ray import of ``ablate`` is in this room, after this module).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ablate.errors import UserError

os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # relative data paths resolve like on the CLI
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C is ours: stop, keep results, exit
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # diverged rows carry no metric
# No usage telemetry from a local Ray (compute nodes are often offline; the SLURM script's
# `ray start --disable-usage-stats` says the same); RAY_USAGE_STATS_ENABLED=1 turns it back on.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send the process's file descriptor 2 (C++ and Python writes alike) to ``path`` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def init_ray(address: str | None, log_dir: Path) -> bool:
    """Start a local Ray (or attach to ``address``); Ray's chatter goes to ``<log_dir>/ray.log``.
    Returns whether this call connected (and so should shut down again)."""
    import ray

    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "ray.log")
    for name in ("ray", "ray.tune", "ray.train"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.propagate = False
    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in ("RAY_CHDIR_TO_TRIAL_DIR", "PYTHONPATH") if k in os.environ}
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": env, "working_dir": None} if address else None,
    )
    # "local": a new Ray of our own, never whatever `ray start` left in /tmp/ray/ray_current_cluster
    # (plain ray.init() would attach to that); RAY_ADDRESS in the environment still wins, as in Ray.
    kwargs["address"] = address or "local"
    try:
        with _stderr_to(log_dir / "ray.log"):  # Ray prints start-up notices on fd 2; the user sees our progress line
            ray.init(**{k: v for k, v in kwargs.items() if v is not None})
    except ConnectionError as e:
        raise UserError(
            f"--address {address}: no Ray cluster answers there ({e}); start one with "
            "`ray start --head` or check the address (auto = the cluster this node belongs to)"
        ) from None
    return True


def shutdown_ray() -> None:
    import ray

    ray.shutdown()


def preload_tune() -> None:
    """Import Ray Tune now (about a second, once per process): what a driver pays before its first sweep."""
    import ray.tune  # noqa: F401


def alive_nodes() -> list[dict[str, float]]:
    """The resources of every live node of the connected Ray cluster."""
    import ray

    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def skip_callback_telemetry() -> None:
    """Skip Ray Tune's callback census while usage stats are off.

    To tag its telemetry with the kinds of callbacks passed, ``tune.run`` imports Ray's MLflow,
    W&B, Comet and Aim integrations, and so mlflow itself where installed: 1.6 s of every sweep
    (measured, 2 cores), more than Tune's whole cost per trial. With usage stats off the tag is
    never sent, so not computing it changes nothing. A private Ray function: if it moves, Ray's
    own census simply runs.
    """
    try:
        from ray._common.usage.usage_lib import usage_stats_enabled
        from ray.air._internal import usage
    except ImportError:
        return
    census = getattr(usage, "tag_callbacks", None)
    if census is None or getattr(census, "ablate_wrapped", False):
        return

    def tag_callbacks(callbacks: Any) -> Any:
        return census(callbacks) if usage_stats_enabled() else False

    tag_callbacks.ablate_wrapped = True  # type: ignore[attr-defined]
    usage.tag_callbacks = tag_callbacks
