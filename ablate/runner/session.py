"""The Ray session of one ``ablate run``: Ray's environment, starting (or attaching to) Ray quietly,
the watchdog that takes a local Ray down with the driver, and the nodes it has.

Importing this module sets Ray's and Tune's environment defaults before any part of Ray is
imported (every Ray import of ``ablate`` is in this room, after this module).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
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


def init_ray(address: str | None, log_dir: Path, py_modules: Sequence[str] = ()) -> bool:
    """Start a local Ray (or attach to ``address``); Ray's chatter goes to ``<log_dir>/ray.log``.
    ``py_modules``: package folders Ray's runtime environment ships to every worker of the job (the
    sweep's plugins). Returns whether this call connected (and so should shut down again). A local Ray
    started here is watched (:func:`watch_local_ray`): it dies with this process, however that ends."""
    import ray

    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "ray.log")
    for name in ("ray", "ray.tune", "ray.train"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.propagate = False
    if ray.is_initialized():
        if py_modules:
            raise UserError(
                "this process already holds a Ray session that ablate did not start, so the sweep's plugins "
                "cannot be shipped to its workers; call ray.shutdown() first (ablate then starts or attaches its own)"
            )
        return False
    env = {k: os.environ[k] for k in ("RAY_CHDIR_TO_TRIAL_DIR", "PYTHONPATH") if k in os.environ}
    runtime_env: dict[str, Any] = {"env_vars": env, "working_dir": None} if address else {}
    if py_modules:
        runtime_env["py_modules"] = list(py_modules)
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env=runtime_env or None,
    )
    # "local": a new Ray of our own, never whatever `ray start` left in /tmp/ray/ray_current_cluster
    # (plain ray.init() would attach to that). The API passes RAY_ADDRESS from the environment as
    # the address, as ray.init() would read it.
    kwargs["address"] = address or "local"
    before = _descendants(os.getpid())
    try:
        with _stderr_to(log_dir / "ray.log"):  # Ray prints start-up notices on fd 2; the user sees our progress line
            ray.init(**{k: v for k, v in kwargs.items() if v is not None})
    except ConnectionError as e:
        raise UserError(
            f"--address {address}: no Ray cluster answers there ({e}); start one with "
            "`ray start --head` or check the address (auto = the cluster this node belongs to)"
        ) from None
    if address is None and "RAY_ADDRESS" not in os.environ:
        watch_local_ray({pid: start for pid, start in _descendants(os.getpid()).items() if pid not in before})
    return True


def shutdown_ray() -> None:
    import ray

    ray.shutdown()
    _WATCHDOG.release()


# ---------------------------------------------------------------- the watchdog
# Ray ties its head processes (GCS, raylet, monitors) to the driver that started them, but the
# raylet's agents (dashboard and runtime-env agent, about 190 MB) outlive a SIGKILLed driver by a
# minute: they notice the raylet is gone at once, then wait 60 s to report it to the dead GCS.
# The watchdog is a tiny process that blocks on a pipe from the driver; the pipe closes however the
# driver ends (kill -9 and the OOM killer included). Unless the driver said "done" first (after
# ray.shutdown(), which stops Ray's processes in its own order), it then kills the processes this
# driver's ray.init started that are still there. Each is named by pid and start time, so a reused
# pid is never hit.
_WATCH_CODE = """
import os, signal, sys
if sys.stdin.buffer.read() == b"done":  # ray.shutdown() ran: Ray stopped its own processes
    sys.exit(0)
for arg in sys.argv[1:]:
    pid, start = arg.split(":")
    try:
        with open(f"/proc/{pid}/stat") as f:
            alive = f.read().rsplit(")", 1)[1].split()[19] == start
        if alive:
            os.kill(int(pid), signal.SIGKILL)
    except (OSError, IndexError):
        pass
"""


class _Watchdog:
    """The running watchdog process and the driver's end of its pipe."""

    proc: subprocess.Popen | None = None
    pipe: int | None = None

    def start(self, processes: dict[int, str]) -> None:
        self.release()
        read, self.pipe = os.pipe()  # close-on-exec: no program the driver starts holds it open
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _WATCH_CODE, *(f"{pid}:{start}" for pid, start in processes.items())],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches the driver, not the watchdog
            )
        finally:
            os.close(read)

    def release(self) -> None:
        """After ``ray.shutdown``: tell the watchdog Ray was stopped in order, and let it exit."""
        if self.pipe is not None:
            with contextlib.suppress(OSError):
                os.write(self.pipe, b"done")
            os.close(self.pipe)
            self.pipe = None
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            self.proc = None


_WATCHDOG = _Watchdog()


def watch_local_ray(processes: dict[int, str]) -> None:
    """Start the watchdog over ``processes`` (pid -> start time, :func:`_descendants`), where
    ``/proc`` exists (Linux); elsewhere a killed driver leaves Ray's agents for a minute."""
    if processes and Path("/proc/self/stat").exists():
        _WATCHDOG.start(processes)


def _descendants(root: int) -> dict[int, str]:
    """pid -> start time (``/proc/<pid>/stat`` field 22) of every process below ``root``; {} without /proc."""
    parent: dict[int, int] = {}
    start: dict[int, str] = {}
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc/self/stat").exists() else []:
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        pid = int(entry.parent.name)
        parent[pid], start[pid] = int(fields[1]), fields[19]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return {pid: start[pid] for pid in found}


def preload_tune() -> None:
    """Import Ray Tune now (about a second, once per process): what a driver pays before its first sweep."""
    import ray.tune  # noqa: F401


def silent_reporter() -> Any:
    """A Tune progress reporter that reports nothing: ``ablate run`` shows its own progress line. Tune's
    default in a notebook (``JupyterNotebookReporter``) would clear the cell's output when it starts."""
    from ray.tune import ProgressReporter

    class Silent(ProgressReporter):
        def should_report(self, trials: Any, done: bool = False) -> bool:
            return False

        def report(self, *_: Any) -> None:
            pass

    return Silent()


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
