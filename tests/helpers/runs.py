"""``ablate run`` as the system tests drive it: a run in its own process (with its own Ray) that a
test watches and interrupts, and every analysis command on one results folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def run_process(*argv: str) -> Iterator[subprocess.Popen]:
    """``ablate run ARGV`` in a subprocess (unbuffered, stdout a pipe: a log, not a terminal, and
    never the RAY_ADDRESS of this process); killed if the test leaves it running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", "run", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def wait_for(ready: Callable[[], Any], proc: subprocess.Popen, what: str, timeout: float = 240) -> Any:
    """Poll ``ready()`` until it is truthy (its value is returned) while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        value = ready()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(
        f"{what} did not happen while the run ran:\n{proc.communicate()[0] if proc.poll() is not None else ''}"
    )


def interrupt(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Send ``sig`` to a run that is still running; its exit code and output."""
    assert proc.poll() is None, f"the run ended before it could be interrupted:\n{proc.communicate()[0]}"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def every_command(
    main: Callable[[list[str]], int], folder: str, capsys: Any, to: Path, figures: str, report: str
) -> None:
    """status, table, plot, report, compare and export on ``folder`` (a two-predictor sweep with two
    seeds, z_std filled): each exits 0 and prints what it should."""
    compare = ["--a", "predictor.name=directpred", "--b", "predictor.name=linear", "--metric", "z_std"]
    for argv, expect in (
        (["status", folder], "4 done"),
        (["table", folder], "(n=2)"),
        (["plot", folder, "--format", "png"], figures),
        (["report", folder], report),
        (["compare", folder, *compare], "Welch t"),
        (["export", folder, "--best", "z_std", "--to", str(to)], "load it with"),
    ):
        assert main(argv) == 0, argv
        assert expect in capsys.readouterr().out, argv
    assert to.stat().st_size > 0
