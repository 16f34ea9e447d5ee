"""The sbatch script of ``ablate submit --slurm`` (options: :mod:`ablate.cluster.options`).

The script is three parts: the ``#SBATCH`` lines and a settings block, written here, then the job
itself, the bash of ``job.sh`` beside this module (a real script file, checked by shellcheck), copied
verbatim. It follows Ray's SLURM guide: one ``srun`` step per node starts one Ray runtime there
(``ray start --head --block`` on the node the batch script runs on, ``ray start --address --block``
on each other node), then ``ablate run <sweep> --address <head>`` drives the sweep from the batch
shell, then the Ray steps are stopped. The driver runs in the batch shell itself (not under ``srun``) so that
the shell can forward SLURM's early warning signal to it and return its exit code unchanged.

Signals (why USR1 and not TERM): ``--signal=B:USR1@<grace>`` makes SLURM send USR1 to the batch
shell ``grace`` seconds before ``--time`` runs out; the shell turns it into SIGTERM for ``ablate run``
(which stops Tune and keeps every finished trial) and, within ``--max-requeues``, requeues the job
itself. A plain SIGTERM means preemption or ``scancel``: it is forwarded too but never requeues
(SLURM requeues a preempted ``--requeue`` job by itself; a cancelled job must stay cancelled).

Node failure: the job is submitted with ``--no-kill``, so SLURM does not end it when a worker node
fails; Ray retries that node's trials elsewhere (``max_failures``) and the sweep goes on with the nodes
left. The node running the batch script is the exception: its loss ends (and requeues) the job.

Quoting: every value that comes from the user or the sweep file is a single ``shlex.quote``-d word
in the settings block (``RUN_ARGS`` is a bash array of them), which ``job.sh`` only ever expands
quoted; ``#SBATCH`` values (read by sbatch, not by the shell) are validated to safe characters by
:class:`SlurmOptions`, the log folder is double-quoted for sbatch where it needs it.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from pathlib import Path

from ablate.cluster.options import SlurmOptions, check_count
from ablate.errors import UserError

RAY_WAIT_S = 300  # how long the script waits for the Ray head (and then the workers) to come up
RAY_STOP_S = 30  # how long it gives the Ray steps to end before it kills their srun (a lost node's waits)
JOB_MARK = "# ---- job\n"  # job.sh's own header ends here: the script takes what follows


@cache
def job_body() -> str:
    """The bash that follows the settings block: ``job.sh`` after its own header."""
    text = files("ablate.cluster").joinpath("job.sh").read_text(encoding="utf-8")
    return text[text.index(JOB_MARK) + len(JOB_MARK) :]


def job_name(sweep_name: str) -> str:
    """``ablate-<sweep>`` with anything but letters, digits, ``_ . -`` replaced by ``_``."""
    return "ablate-" + re.sub(r"[^A-Za-z0-9_.-]", "_", sweep_name)


def _sbatch_output(folder: str) -> str:
    """``--output=<folder>/%j.out`` for an #SBATCH line: sbatch does no shell parsing there but takes a
    double-quoted value; ``%`` starts one of its patterns, so a literal one is doubled."""
    if re.search(r'["\\\n\r]', folder):
        raise UserError(
            f"{folder!r}: the SLURM log folder must not contain double quotes, backslashes or "
            "line breaks; choose another --storage"
        )
    value = folder.replace("%", "%%") + "/%j.out"
    return f'--output="{value}"' if re.search(r"\s|'", value) else f"--output={value}"


def ablate_run_words(
    sweep_path: str, storage: str, sets: Iterable[str], max_concurrent: int | None, shared_storage_ok: bool = False
) -> list[str]:
    """The arguments after ``ablate run``, one list item per shell word."""
    words = [sweep_path, "--storage", storage]
    for item in sets:
        words += ["--set", item]
    if max_concurrent:
        words += ["--max-concurrent", str(max_concurrent)]
    if shared_storage_ok:  # ablate run on the job's Ray cluster applies the same rule as submit
        words.append("--shared-storage-ok")
    return words


def render_sbatch(
    options: SlurmOptions,
    sweep_path: str,
    sweep_name: str,
    storage: str,
    log_dir: Path,
    sets: Iterable[str] = (),
    *,
    max_concurrent: int | None = None,
    shared_storage_ok: bool = False,
    python: str | None = None,
    workdir: str | None = None,
) -> str:
    """The sbatch script that runs ``ablate run sweep_path --storage storage --set ...`` on a Ray
    cluster of ``options.nodes`` nodes, logging to ``log_dir``. ``python`` (default: this interpreter)
    is the environment the job runs in; ``workdir`` (default: the current directory) is where it runs.
    ``shared_storage_ok`` passes ``--shared-storage-ok`` on to ``ablate run``."""
    if max_concurrent is not None:
        check_count("--max-concurrent", max_concurrent)
    python = os.path.abspath(python or sys.executable)  # not realpath: a venv's python is a symlink
    workdir = os.path.abspath(workdir or os.getcwd())
    run_args = ablate_run_words(sweep_path, storage, sets, max_concurrent, shared_storage_ok)
    lines = [*_sbatch_header(options, sweep_name, log_dir), *_settings(options, python, workdir, run_args)]
    return "\n".join(lines) + "\n\n" + job_body()


def _sbatch_header(o: SlurmOptions, sweep_name: str, log_dir: Path) -> list[str]:
    """The ``#SBATCH`` lines: what the job asks SLURM for, where its log goes, its early warning signal."""
    asks = {
        "--job-name": job_name(sweep_name),
        "--nodes": o.nodes,
        "--ntasks-per-node": 1,
        "--cpus-per-task": o.cpus_per_task,
        "--gpus-per-node": o.gpus_per_node or None,
        "--time": o.time.strip() if o.time is not None else None,
        "--partition": o.partition,
        "--account": o.account,
    }
    head = [
        "#!/bin/bash",
        f"# Written by `ablate submit --slurm` for sweep {job_name(sweep_name)[7:]}; submit it again to resume.",
    ]
    head += [f"#SBATCH {k}={v}" for k, v in asks.items() if v is not None]
    head += [
        f"#SBATCH {_sbatch_output(str(log_dir))}",  # stderr joins stdout in the same file
        "#SBATCH --open-mode=append",  # a requeued job (same id) appends to its log instead of wiping it
        "#SBATCH --requeue",
        "#SBATCH --no-kill",  # a lost worker node: Ray retries its trials on the others (module docstring)
    ]
    if o.grace:
        head.append(f"#SBATCH --signal=B:USR1@{o.grace}")
    return head + [f"#SBATCH {arg}" for arg in o.sbatch_args]


def _settings(o: SlurmOptions, python: str, workdir: str, run_args: list[str]) -> list[str]:
    """The script's settings block: every value one shell-quoted word."""
    q = shlex.quote
    srun_gpus = f"--gpus-per-node={o.gpus_per_node}" if o.gpus_per_node else ""
    return [
        "",
        "# ---- settings (written by ablate submit; every value is one shell-quoted word)",
        f"SUBMIT_DIR={q(workdir)}",
        f"PYTHON={q(python)}",
        f"VENV_BIN={q(os.path.dirname(python))}",
        f"NODE_CPUS={o.cpus_per_task}",
        f"NODE_GPUS={o.gpus_per_node}",
        f"SRUN_GPUS=({srun_gpus})",
        f"GRACE={o.grace}",
        f"MAX_REQUEUES={o.max_requeues}",
        f"RAY_WAIT_S={RAY_WAIT_S}",
        f"RAY_STOP_S={RAY_STOP_S}",
        f"RUN_ARGS=({' '.join(q(w) for w in run_args)})",
    ]
