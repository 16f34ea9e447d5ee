"""The sbatch script of ``ablate submit --slurm`` (options: :mod:`ablate.cluster.options`).

The script follows Ray's SLURM guide: one ``srun`` step per role starts one Ray runtime per node
(``ray start --head --block`` on the node the batch script runs on, ``ray start --address --block``
on the others), then ``ablate run <sweep> --address <head>`` drives the sweep from the batch shell,
then the Ray steps are stopped. The driver runs in the batch shell itself (not under ``srun``) so that
the shell can forward SLURM's early warning signal to it and return its exit code unchanged.

Signals (why USR1 and not TERM): ``--signal=B:USR1@<grace>`` makes SLURM send USR1 to the batch
shell ``grace`` seconds before ``--time`` runs out; the shell turns it into SIGTERM for ``ablate run``
(which stops Tune and keeps every finished trial) and, within ``--max-requeues``, requeues the job
itself. A plain SIGTERM means preemption or ``scancel``: it is forwarded too but never requeues
(SLURM requeues a preempted ``--requeue`` job by itself; a cancelled job must stay cancelled).

Quoting: every value that comes from the user or the sweep file is a single ``shlex.quote``-d word
in the shell part; ``#SBATCH`` values (read by sbatch, not by the shell) are validated to safe
characters by :class:`SlurmOptions`, the log folder is double-quoted for sbatch where it needs it.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

from ablate.cluster.options import SlurmOptions, check_count
from ablate.errors import UserError

RAY_WAIT_S = 300  # how long the script waits for the Ray head (and then the workers) to come up


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


def ablate_run_words(sweep_path: str, storage: str, sets: Iterable[str], max_concurrent: int | None) -> list[str]:
    """The arguments after ``ablate run``, one list item per shell word."""
    words = [sweep_path, "--storage", storage]
    for item in sets:
        words += ["--set", item]
    if max_concurrent:
        words += ["--max-concurrent", str(max_concurrent)]
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
    python: str | None = None,
    workdir: str | None = None,
) -> str:
    """The sbatch script that runs ``ablate run sweep_path --storage storage --set ...`` on a Ray
    cluster of ``options.nodes`` nodes, logging to ``log_dir``. ``python`` (default: this interpreter)
    is the environment the job runs in; ``workdir`` (default: the current directory) is where it runs."""
    if max_concurrent is not None:
        check_count("--max-concurrent", max_concurrent)
    python = os.path.abspath(python or sys.executable)  # not realpath: a venv's python is a symlink
    workdir = os.path.abspath(workdir or os.getcwd())
    words = " ".join(shlex.quote(w) for w in ablate_run_words(sweep_path, storage, sets, max_concurrent))
    run_line = f'"$PYTHON" -m ablate.cli run {words} --address "$RAY_HEAD" &'
    lines = [*_sbatch_header(options, sweep_name, log_dir), *_settings(options, python, workdir)]
    return "\n".join(lines) + "\n" + _BODY.replace("@ABLATE_RUN@", run_line)


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
    ]
    if o.grace:
        head.append(f"#SBATCH --signal=B:USR1@{o.grace}")
    return head + [f"#SBATCH {arg}" for arg in o.sbatch_args]


def _settings(o: SlurmOptions, python: str, workdir: str) -> list[str]:
    """The script's settings block: every value one shell-quoted word."""
    q = shlex.quote
    srun_gpus = f"--gpus-per-node={o.gpus_per_node}" if o.gpus_per_node else ""
    return [
        "",
        "set -euo pipefail",
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
    ]


# The static part of the script: only shell variables from the settings block, no Python formatting.
_BODY = r"""
cd "$SUBMIT_DIR"
export PATH="$VENV_BIN:$PATH" PYTHONUNBUFFERED=1  # the environment ablate submit ran in
unset RAY_ADDRESS  # sbatch copies the submitting shell's environment; this job's Ray is its own
RAY=("$PYTHON" -m ray.scripts.scripts)  # Ray's CLI of this very interpreter
log() { echo "[ablate $(date '+%F %T')] $*"; }

# ---- 1. one Ray runtime per node: the head where this script runs, workers on the other nodes
mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
HEAD_NODE=${SLURMD_NODENAME:-${NODES[0]}}
WORKERS=$(( ${#NODES[@]} - 1 ))
PORT=$(( 20000 + SLURM_JOB_ID % 10000 ))  # per job, so two jobs sharing a node do not collide
if (( WORKERS > 0 )); then
  WORKER0=$(printf '%s\n' "${NODES[@]}" | grep -vxF "$HEAD_NODE" | head -n 1)
  HEAD_IP=$("$PYTHON" -m ablate.cluster.slurm route-ip "$WORKER0")  # the head as the workers reach it
else
  HEAD_IP=127.0.0.1
fi
RAY_HEAD="$HEAD_IP:$PORT"
# Ray's files per job: /tmp/ray/ray_current_cluster would make any later ray.init() on these nodes
# (another user's, another job's) attach to this cluster, or fail once it is gone
RAY_TMP="/tmp/ray-$SLURM_JOB_ID"
# Ray's token authentication with a fresh token per job, handed to every node by srun's environment
# (not via ~/.ray/auth_token, which a node may or may not share): nobody else can drive this cluster
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32))')
export RAY_AUTH_TOKEN
RAY_PIDS=()
DRIVER=""
STOPPED=""  # why the job was told to stop, if it was
REQUEUE=0

stop_sweep() {  # a signal arrived: SIGTERM to `ablate run`, which stops Tune and keeps finished trials
  STOPPED=$1
  log "$1: stopping the sweep; finished trials are kept"
  if [[ -n "$DRIVER" ]]; then kill -TERM "$DRIVER" 2>/dev/null || true; fi
}
trap 'REQUEUE=1; stop_sweep "time limit in ${GRACE}s"' USR1
trap 'stop_sweep "SIGTERM (preempted or cancelled)"' TERM

stop_ray() {  # ablate run has written everything by now: end the Ray steps at once
  (( ${#RAY_PIDS[@]} )) || return 0
  log "stopping Ray on ${#NODES[@]} node(s) (srun then reports the Ray steps as cancelled: expected)"
  kill -TERM "${RAY_PIDS[@]}" 2>/dev/null || true  # srun ends its step, on every node of it
  wait "${RAY_PIDS[@]}" 2>/dev/null || true
  RAY_PIDS=()
}
trap stop_ray EXIT

ray_nodes() {  # alive nodes of our Ray cluster (the "Active:" block of `ray status`)
  local n
  n=$(timeout 60 "${RAY[@]}" status --address="$RAY_HEAD" 2>/dev/null | sed -n '/^Active:/,/^Pending:/p' \
      | grep -c 'node_' || true)
  echo "${n:-0}"
}

wait_nodes() {  # wait_nodes N: until N nodes are up (1 = the head: required; more: best effort)
  local deadline=$(( SECONDS + RAY_WAIT_S ))
  until (( $(ray_nodes) >= $1 )); do
    for pid in "${RAY_PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null || { log "a Ray step exited early (its output is above)"; return 1; }
    done
    if (( SECONDS >= deadline )); then
      log "only $(ray_nodes) of $1 Ray nodes up after ${RAY_WAIT_S}s"
      return 1
    fi
    sleep 2
  done
}

log "job $SLURM_JOB_ID: Ray head on $HEAD_NODE at $RAY_HEAD, $WORKERS worker node(s), restart ${SLURM_RESTART_COUNT:-0}"
srun --nodes=1 --ntasks=1 --cpus-per-task="$NODE_CPUS" "${SRUN_GPUS[@]}" --nodelist="$HEAD_NODE" \
  "${RAY[@]}" start --head --block --node-ip-address="$HEAD_IP" --port="$PORT" --include-dashboard=false \
  --num-cpus="$NODE_CPUS" --num-gpus="$NODE_GPUS" --temp-dir="$RAY_TMP" --disable-usage-stats &
RAY_PIDS+=($!)
wait_nodes 1 || { log "the Ray head did not start"; exit 1; }
if (( WORKERS > 0 )); then
  srun --nodes="$WORKERS" --ntasks="$WORKERS" --ntasks-per-node=1 --cpus-per-task="$NODE_CPUS" "${SRUN_GPUS[@]}" \
    --exclude="$HEAD_NODE" \
    "${RAY[@]}" start --block --address="$RAY_HEAD" --num-cpus="$NODE_CPUS" --num-gpus="$NODE_GPUS" \
    --temp-dir="$RAY_TMP" --disable-usage-stats &
  RAY_PIDS+=($!)
  wait_nodes $(( WORKERS + 1 )) || log "going on with the nodes that are up; Tune uses late nodes as they join"
fi

# ---- 2. the sweep (finished trials are skipped: a resubmitted or requeued job resumes)
RC=130
if [[ -z "$STOPPED" ]]; then
  log "running ablate run against $RAY_HEAD"
  @ABLATE_RUN@
  DRIVER=$!
  while :; do
    RC=0
    wait "$DRIVER" || RC=$?
    kill -0 "$DRIVER" 2>/dev/null || break  # a trapped signal ended `wait` early: wait again
  done
  log "ablate run exited with code $RC"
fi
trap - USR1 TERM

# ---- 3. stop Ray; requeue when the time limit (not a cancel) stopped the sweep
stop_ray
if (( REQUEUE )); then
  if (( ${SLURM_RESTART_COUNT:-0} < MAX_REQUEUES )); then
    log "requeueing job $SLURM_JOB_ID (restart $(( ${SLURM_RESTART_COUNT:-0} + 1 )) of $MAX_REQUEUES);" \
        "it resumes the sweep"
    scontrol requeue "$SLURM_JOB_ID"
  else
    log "time limit reached: submit the same command again to resume (finished trials are skipped)"
  fi
fi
exit "$RC"
"""
