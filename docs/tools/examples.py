"""Regenerate the example outputs of docs/run.md, docs/status.md and docs/export.md by running the
commands they show, in the scratch folder /tmp/docsrun (the paths the pages print).

    python docs/tools/examples.py                  # every example: runs three small sweeps (minutes)
    python docs/tools/examples.py status-live ...  # only these examples (and what their session needs first)

In a page, an example is the fenced block after a line ``<!-- example: NAME -->``; its commands are
:data:`EXAMPLES`' and their output replaces the block. Examples of one session share one fresh
/tmp/docsrun and run in order. ``tests/unit/test_docs_examples.py`` checks, without running
anything, that the pages show these commands and only trial ids that they produce.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRATCH = Path("/tmp/docsrun")
SMOKE4 = (
    "ablate run sweeps/smoke.yaml --set 'grid={predictor: [{name: linear}, {name: directpred, rho: 0.3, eps: 0.1}]}' "
    "--set 'seeds=[0,1]' --set train.epochs=2 --set eval.every=1"
)
TRACKED = (
    "ablate run sweeps/smoke.yaml --set name=smoke_tracked --set 'grid={predictor: [{name: directpred}]}' "
    "--set 'seeds=[0,1]' --set train.epochs=2 --set eval.every=1 --set 'logging=[tensorboard,mlflow,wandb]' --no-table"
)
SMOKE30 = "ablate run sweeps/smoke.yaml --set train.epochs=30"
STATUS = "ablate status results/smoke"


@dataclass(frozen=True)
class Example:
    """One block of a page: the commands it shows (shell syntax, as typed), the session it belongs
    to, and how its text is made (default: each command run in turn, ``$ command`` and its output)."""

    page: str
    session: str
    commands: tuple[str, ...]
    make: Callable[[Example], str] | None = None


def run(command: str, check: bool = True) -> str:
    """``$ command`` and what it printed (stdout and stderr as they came), run in the scratch folder."""
    argv = shlex.split(command)
    if argv[0] == "ablate":
        argv = [sys.executable, "-m", "ablate.cli", *argv[1:]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    out = subprocess.run(argv, cwd=SCRATCH, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and out.returncode not in (0, 2):  # 2: the examples of a refused input
        raise SystemExit(f"{command}: exit code {out.returncode}\n{out.stdout}")
    return f"$ {command}\n{out.stdout}"


def commands(example: Example) -> str:
    return "".join(run(c) for c in example.commands)


def live_status(example: Example) -> str:
    """A 30-epoch smoke run asked about once two trials are done and two are running; then the run
    is killed (``kill -9``), which leaves what the Parquet files alone say for the next example."""
    argv = [sys.executable, "-m", "ablate.cli", *shlex.split(SMOKE30)[1:]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, cwd=SCRATCH, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 1800
        while proc.poll() is None and time.monotonic() < deadline:
            text = run(STATUS, check=False)
            if re.search(r": 8 trials: 2 done, 2 running, 4 pending", text):
                return f"$ {SMOKE30} &\n{text}"
            time.sleep(1)
        raise SystemExit(f"{SMOKE30}: never had 2 trials done and 2 running")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(2)  # the watchdog takes the killed run's Ray down


def finished_status(example: Example) -> str:
    """The same run resumed to its end (its output not shown), then the status."""
    run(f"{SMOKE30} --no-table")
    return run(STATUS)


def sidecar(example: Example) -> str:
    """The JSON sidecar written by the export example, its ``config`` section cut."""
    doc = json.loads((SCRATCH / "trunk.json").read_text())
    doc["config"] = "... (the whole resolved trial config)"
    return json.dumps(doc, indent=2) + "\n"


def tracked_files(example: Example) -> str:
    """What the trackers wrote, read back with each tracker's own reader."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    companion = SCRATCH / "results" / "_smoke_tracked"
    ids = sorted(p.name for p in (companion / "tensorboard").iterdir())
    acc = EventAccumulator(str(companion / "tensorboard" / ids[0]))
    acc.Reload()
    scalars = [(e.step, round(e.value, 4)) for e in acc.Scalars("ray/tune/probe_top1_best")]
    client = MlflowClient(f"sqlite:///{companion / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke_tracked")
    runs = sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.info.run_name)
    keys = ("eig_align", "probe_top1_best", "z_std")

    def metrics(r: object) -> dict[str, float]:
        return {k: round(r.data.metrics[k], 4) for k in keys}

    lines = [
        run(example.commands[0]).rstrip("\n"),
        f'>>> EventAccumulator("results/_smoke_tracked/tensorboard/{ids[0]}").Scalars("ray/tune/probe_top1_best")',
        f"{scalars}                                   # (step = epoch, value)",
        '>>> MlflowClient(uri).search_runs([experiment "smoke_tracked"])'
        "   # run name, status, tags.status, params, metrics",
        *(
            f"{r.info.run_name} {r.info.status} {r.data.tags.get('status')} {r.data.params['predictor.name']} "
            f"{r.data.params['seed']} {metrics(r)}"
            for r in runs
        ),
        run(example.commands[1]).rstrip("\n"),
    ]
    return "\n".join(lines) + "\n"


EXAMPLES: dict[str, Example] = {
    "run-smoke": Example("run.md", "smoke4", (SMOKE4,)),
    "run-again": Example("run.md", "smoke4", (f"{SMOKE4} --no-table",)),
    "export-best": Example(
        "export.md",
        "smoke4",
        ("ablate export results/smoke --best probe_top1_best --to trunk.pt", "ablate export results/smoke --trial zz"),
    ),
    "export-sidecar": Example("export.md", "smoke4", (), sidecar),
    "run-trackers": Example("run.md", "tracked", (TRACKED,)),
    "run-trackers-read": Example(
        "run.md",
        "tracked",
        ("ls results/_smoke_tracked/tensorboard", "ls results/_smoke_tracked/wandb/wandb"),
        tracked_files,
    ),
    "status-live": Example("status.md", "smoke30", (f"{SMOKE30} &", STATUS), live_status),
    "status-killed": Example("status.md", "smoke30", (STATUS,)),
    "status-done": Example("status.md", "smoke30", (STATUS,), finished_status),
}


def blocks(text: str) -> dict[str, tuple[int, int]]:
    """Example name -> (first, last + 1) line index of its block's content in a page's lines."""
    lines, out = text.splitlines(), {}
    for i, line in enumerate(lines):
        m = re.fullmatch(r"<!-- example: ([\w-]+) -->", line.strip())
        if m:
            if not lines[i + 1].startswith("```"):
                raise ValueError(f"example {m[1]}: no fenced block after its marker")
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            out[m[1]] = (i + 2, end)
    return out


def write_block(name: str, body: str) -> None:
    page = ROOT / "docs" / EXAMPLES[name].page
    lines = page.read_text().splitlines()
    first, end = blocks("\n".join(lines))[name]
    page.write_text("\n".join([*lines[:first], *body.rstrip("\n").splitlines(), *lines[end:]]) + "\n")


def main(names: list[str]) -> None:
    wanted = set(names) or set(EXAMPLES)
    sessions = {EXAMPLES[n].session for n in wanted}
    for session in dict.fromkeys(e.session for e in EXAMPLES.values()):
        if session not in sessions:
            continue
        shutil.rmtree(SCRATCH, ignore_errors=True)
        SCRATCH.mkdir(parents=True)
        (SCRATCH / "sweeps").symlink_to(ROOT / "sweeps")
        for name, example in EXAMPLES.items():  # every example of the session: later ones need earlier ones
            if example.session == session:
                body = (example.make or commands)(example)
                if name in wanted:
                    write_block(name, body)
                    print(f"docs/{example.page}: {name}", flush=True)


if __name__ == "__main__":
    unknown = [n for n in sys.argv[1:] if n not in EXAMPLES]
    if unknown:
        raise SystemExit(f"unknown examples {unknown}; choose from {', '.join(EXAMPLES)}")
    main(sys.argv[1:])
