"""``ablate submit --slurm``: write the sbatch script of a sweep, submit it, say how to follow it.

The script (:mod:`ablate.cluster.script`) starts one Ray runtime per node and runs ``ablate run``
against it; everything about resuming is the runner's: a resubmitted, requeued or preempted job runs
only the trials whose final row is not in the results yet. The script and the job logs live in
``<storage>/_<sweep>/slurm/`` (``<jobid>.sbatch``, ``<jobid>.out``).

Also a tiny helper the script calls on the head node: ``python -m ablate.cluster.slurm route-ip HOST``
prints this node's address on the route to HOST (the address the Ray workers reach the head at).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from ablate.cluster.options import SlurmOptions
from ablate.cluster.script import job_name, render_sbatch
from ablate.errors import UserError
from ablate.results.layout import slurm_dir, sweep_location_text
from ablate.results.shared import check_shared_storage


def sbatch_submit(script: Path | str, sbatch: str = "sbatch") -> str:
    """``sbatch --parsable script`` -> the job id. sbatch's refusal becomes a one-line UserError."""
    try:
        proc = subprocess.run([sbatch, "--parsable", str(script)], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError(
            f"{sbatch} not found: run ablate submit on a SLURM login node, or use --dry-run to print the script"
        ) from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{sbatch} did not answer in 120 s; is slurmctld up? (try sinfo)") from None
    if proc.returncode != 0:
        text = " ".join(line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip())
        raise UserError(f"sbatch refused the job: {text or f'exit code {proc.returncode}'}")
    job = proc.stdout.strip().split(";")[0]  # --parsable: "<jobid>[;<cluster>]"
    if not re.fullmatch(r"\d+(_\d+)?", job):
        raise UserError(f"sbatch answered {proc.stdout.strip()!r} instead of a job id")
    return job


def check_fits(resources, options: SlurmOptions) -> None:
    """Every trial must fit the job's nodes, or Ray would keep it pending for ever: a one-process trial
    on one node's Ray runtime; a data-parallel trial's ``workers`` (each ``cpu / workers`` CPUs and
    ``gpus_per_worker`` GPUs) spread over the nodes, as Ray Train places them."""
    cpu, gpu = float(getattr(resources, "cpu", 0) or 0), float(getattr(resources, "gpu", 0) or 0)
    workers = int(getattr(resources, "workers", 1) or 1)
    per_cpu = cpu / workers
    per_gpu = float(getattr(resources, "gpus_per_worker", None) or gpu / workers)
    what = "a trial needs" if workers == 1 else f"each of a trial's {workers} data-parallel workers needs"
    if per_cpu > options.cpus_per_task:
        raise UserError(
            f"{what} {per_cpu:g} CPUs but a node gets --cpus-per-task {options.cpus_per_task}; "
            f"raise --cpus-per-task or lower resources.cpu"
        )
    if per_gpu > options.gpus_per_node:
        raise UserError(
            f"{what} {per_gpu:g} GPUs but a node gets --gpus-per-node {options.gpus_per_node}; "
            f"raise --gpus-per-node or lower resources.gpu"
        )
    per_node = min(
        int(options.cpus_per_task // per_cpu + 1e-9) if per_cpu else workers,
        int(options.gpus_per_node // per_gpu + 1e-9) if per_gpu else workers,
    )
    if per_node * options.nodes < workers:
        raise UserError(
            f"a trial's {workers} data-parallel workers ({per_cpu:g} CPUs, {per_gpu:g} GPUs each) do not fit "
            f"on {options.nodes} node(s) of --cpus-per-task {options.cpus_per_task} and --gpus-per-node "
            f"{options.gpus_per_node}; raise --nodes or lower resources.workers"
        )


def route_ip(host: str) -> str:
    """This node's IP address on the route to ``host`` (a UDP connect sends nothing)."""
    family, _, _, _, addr = socket.getaddrinfo(host, 9, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        return s.getsockname()[0]


def submit_sweep(
    sweep: Any,
    source: str,
    storage: str,
    options: SlurmOptions,
    sets: Iterable[str] = (),
    *,
    max_concurrent: int | None = None,
    shared_storage_ok: bool = False,
    dry_run: bool = False,
    stream: IO[str] | None = None,
) -> str | None:
    """Write the sbatch script that runs ``ablate run <source> --storage <storage> --set ...`` for the
    loaded ``sweep`` and submit it; return the job id (None with ``dry_run``, which prints the script).

    ``source`` is the sweep file, or a results folder (its own sweep file and overrides: the job runs
    exactly the trials the folder holds); ``storage`` a path or a URI every node sees."""
    out = stream or sys.stdout
    check_fits(sweep.resources, options)
    storage = storage if "://" in storage else os.path.abspath(storage)
    check_shared_storage(storage, options.nodes, shared_storage_ok)
    logs = slurm_dir(sweep.name, storage)
    script = render_sbatch(
        options,
        source,
        sweep.name,
        storage,
        logs,
        sets,
        max_concurrent=max_concurrent,
        shared_storage_ok=shared_storage_ok and options.nodes > 1,
    )
    if dry_run:
        out.write(script)
        return None
    logs.mkdir(parents=True, exist_ok=True)
    pending = logs / f"{job_name(sweep.name)}.sbatch"
    pending.write_text(script)
    job = sbatch_submit(pending)
    kept = logs / f"{job}.sbatch"
    pending.replace(kept)  # SLURM keeps its own copy; ours is named after the job for the record
    print(
        f"submitted {sweep.name} as SLURM job {job} ({options.nodes} node{'s' * (options.nodes > 1)}); script {kept}",
        file=out,
    )
    print(f"follow it:  squeue -j {job}   tail -f {_rel(logs / f'{job}.out')}", file=out)
    print(
        f"results:    {_rel(sweep_location_text(sweep.name, storage))}"
        f"   (submit the same command again to resume; finished trials are skipped)",
        file=out,
    )
    return job


def _rel(path: Path | str) -> str:
    """A local path relative to the current directory where it is inside it; anything else as is."""
    if "://" in str(path):
        return str(path)
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _main(argv: Iterable[str] | None = None) -> int:
    """``python -m ablate.cluster.slurm route-ip HOST`` (used by the generated script)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "route-ip":
        print(route_ip(args[1]))
        return 0
    print("usage: python -m ablate.cluster.slurm route-ip HOST", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main())
