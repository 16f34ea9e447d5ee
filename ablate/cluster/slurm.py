"""``ablate submit --slurm``: write the sbatch script of a sweep, submit it, say how to follow it.

The script (:mod:`ablate.cluster.script`) starts one Ray runtime per node and runs ``ablate run``
against it; everything about resuming is the runner's: a resubmitted, requeued or preempted job runs
only the trials whose final row is not in the results yet. The script and the job logs live in
``<storage>/<sweep>/_slurm/`` (``<jobid>.sbatch``, ``<jobid>.out``).

Also a tiny helper the script calls on the head node: ``python -m ablate.cluster.slurm route-ip HOST``
prints this node's address on the route to HOST (the address the Ray workers reach the head at).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional

from ablate.cluster.options import SlurmOptions
from ablate.cluster.script import job_name, render_sbatch, slurm_dir
from ablate.cluster.storage import check_shared_storage
from ablate.errors import UserError

__all__ = ["SlurmOptions", "render_sbatch", "submit", "add_submit_parser", "cmd_submit", "check_fits", "route_ip"]


def submit(script: Path | str, sbatch: str = "sbatch") -> str:
    """``sbatch --parsable script`` -> the job id. sbatch's refusal becomes a one-line UserError."""
    try:
        proc = subprocess.run([sbatch, "--parsable", str(script)], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError(f"{sbatch} not found: run ablate submit on a SLURM login node, or use --dry-run "
                        "to print the script") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{sbatch} did not answer in 120 s; is slurmctld up? (try sinfo)") from None
    if proc.returncode != 0:
        text = " ".join(line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip())
        raise UserError(f"sbatch refused the job: {text or f'exit code {proc.returncode}'}")
    job = proc.stdout.strip().split(";")[0]  # --parsable: "<jobid>[;<cluster>]"
    if not re.fullmatch(r"\d+(_\d+)?", job):
        raise UserError(f"sbatch answered {proc.stdout.strip()!r} instead of a job id")
    return job


def check_fits(resources, options: SlurmOptions) -> None:  # noqa: ANN001 - a Sweep's Resources
    """One trial must fit on one node's Ray runtime, or Ray would keep it pending for ever."""
    cpu, gpu = float(getattr(resources, "cpu", 0) or 0), float(getattr(resources, "gpu", 0) or 0)
    if cpu > options.cpus_per_task:
        raise UserError(f"a trial needs {cpu:g} CPUs (resources.cpu) but a node gets --cpus-per-task "
                        f"{options.cpus_per_task}; raise --cpus-per-task or lower resources.cpu")
    if gpu > options.gpus_per_node:
        raise UserError(f"a trial needs {gpu:g} GPUs (resources.gpu) but a node gets --gpus-per-node "
                        f"{options.gpus_per_node}; raise --gpus-per-node or lower resources.gpu")


def route_ip(host: str) -> str:
    """This node's IP address on the route to ``host`` (a UDP connect sends nothing)."""
    family, _, _, _, addr = socket.getaddrinfo(host, 9, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        return s.getsockname()[0]


# ---------------------------------------------------------------- CLI
def add_submit_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ablate submit`` (its handler is :func:`cmd_submit`)."""
    p = subparsers.add_parser(
        "submit", help="submit a sweep as a SLURM job (a Ray cluster over --nodes nodes running ablate run)",
        description="Write an sbatch script that starts Ray on every node of the allocation (head on the first, "
        "workers on the others), runs `ablate run` against it and stops Ray; submit it with sbatch. "
        "Submitting again resumes: finished trials are skipped. The script and the job's log go to "
        "<storage>/<sweep>/_slurm/.")
    p.add_argument("sweep", help="sweep file")
    p.add_argument("--slurm", action="store_true", help="submit to SLURM (the only scheduler so far; the default)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key by its dotted path, passed on to ablate run (repeatable)")
    p.add_argument("--nodes", type=int, default=1, help="nodes, one Ray runtime each (default 1)")
    p.add_argument("--cpus-per-task", type=int, default=None,
                   help="CPUs per node for Ray (one task per node; default: the sweep's resources.cpu, at least 1)")
    p.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node (default 0: no GPU line)")
    p.add_argument("--time", default=None, help="time limit, e.g. 24:00:00 or 1-12:00:00 (default: the partition's)")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--account", default=None, help="SLURM account to charge")
    p.add_argument("--storage", default=None,
                   help="results location all nodes see (default: the sweep's storage:, else results/)")
    p.add_argument("--shared-storage-ok", action="store_true",
                   help="trust that --storage is on a filesystem every node mounts, even where ablate cannot tell "
                   "(multi-node runs otherwise refuse node-local storage)")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most N trials at once (passed to ablate run)")
    p.add_argument("--grace", type=int, default=120,
                   help="seconds before --time at which the sweep is stopped and saved (default 120; 0 = none)")
    p.add_argument("--max-requeues", type=int, default=0,
                   help="when --time runs out, requeue the job itself up to N times to go on (default 0)")
    p.add_argument("--sbatch-arg", dest="sbatch_args", action="append", default=[], metavar="--OPTION[=VALUE]",
                   help="extra #SBATCH option, e.g. --sbatch-arg=--qos=high (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the script; write and submit nothing")
    p.set_defaults(func=cmd_submit)
    return p


def cmd_submit(args: argparse.Namespace, stream=None) -> int:  # noqa: ANN001
    """Handler of ``ablate submit``: validate, render, and (unless --dry-run) write + sbatch."""
    from ablate.configtree import parse_set
    from ablate.sweep import load_sweep

    out = stream or sys.stdout
    sweep_path = os.path.abspath(_sweep_file(args.sweep))
    sweep = load_sweep(sweep_path, parse_set(args.sets), validate_paths=True)
    cpus = args.cpus_per_task if args.cpus_per_task is not None else max(1, math.ceil(sweep.resources.cpu))
    options = SlurmOptions(nodes=args.nodes, cpus_per_task=cpus, gpus_per_node=args.gpus_per_node, time=args.time,
                           partition=args.partition, account=args.account, grace=args.grace,
                           max_requeues=args.max_requeues, sbatch_args=tuple(args.sbatch_args))
    check_fits(sweep.resources, options)
    storage = args.storage or sweep.storage or "results"
    storage = storage if "://" in storage else os.path.abspath(storage)
    check_shared_storage(storage, options.nodes, args.shared_storage_ok)
    script = render_sbatch(options, sweep_path, sweep.name, storage, args.sets, max_concurrent=args.max_concurrent)
    if args.dry_run:
        out.write(script)
        return 0
    logs = Path(slurm_dir(storage, sweep.name))
    logs.mkdir(parents=True, exist_ok=True)
    pending = logs / f"{job_name(sweep.name)}.sbatch"
    pending.write_text(script)
    job = submit(pending)
    kept = logs / f"{job}.sbatch"
    pending.replace(kept)  # SLURM keeps its own copy; ours is named after the job for the record
    log = logs / f"{job}.out"
    print(f"submitted {sweep.name} as SLURM job {job} ({options.nodes} node{'s' * (options.nodes > 1)}); "
          f"script {kept}", file=out)
    print(f"follow it:  squeue -j {job}   tail -f {_rel(log)}", file=out)
    print(f"results:    {_rel(Path(storage) / sweep.name) if '://' not in storage else storage}"
          f"   (submit the same command again to resume; finished trials are skipped)", file=out)
    return 0


def _sweep_file(target: str) -> Path:
    """The sweep file; a results folder stands for its ``_sweep.yaml`` (the sweep as it was run)."""
    path = Path(target)
    if path.is_dir():
        if not (path / "_sweep.yaml").is_file():
            raise UserError(f"{path}: not a results folder of `ablate run` (no _sweep.yaml); give the sweep file")
        return path / "_sweep.yaml"
    return path


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: Optional[Iterable[str]] = None) -> int:
    """``python -m ablate.cluster.slurm route-ip HOST`` (used by the generated script)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "route-ip":
        print(route_ip(args[1]))
        return 0
    print("usage: python -m ablate.cluster.slurm route-ip HOST", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
