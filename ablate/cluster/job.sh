#!/bin/bash
# The body of the sbatch script that `ablate submit --slurm` writes (ablate/cluster/script.py). The
# script is its #SBATCH lines, its settings block (every value one shell-quoted word), then this file
# from the line after `# ---- job`. The settings it reads:
#   SUBMIT_DIR PYTHON VENV_BIN NODE_CPUS NODE_GPUS GRACE MAX_REQUEUES RAY_WAIT_S RAY_STOP_S
#   SRUN_GPUS (array: srun's GPU option, or nothing)   RUN_ARGS (array: the arguments of `ablate run`)
# `make lint` checks this file with shellcheck.
# ---- job
set -euo pipefail
cd "$SUBMIT_DIR"
export PATH="$VENV_BIN:$PATH" PYTHONUNBUFFERED=1  # the environment ablate submit ran in
unset RAY_ADDRESS  # sbatch copies the submitting shell's environment; this job's Ray is its own
RAY=("$PYTHON" -m ray.scripts.scripts)  # Ray's CLI of this very interpreter
log() { echo "[ablate $(date '+%F %T')] $*"; }

# ---- 1. one Ray runtime per node: the head where this script runs, workers on the other nodes
mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
HEAD_NODE=${SLURMD_NODENAME:-${NODES[0]}}
mapfile -t WORKER_NODES < <(printf '%s\n' "${NODES[@]}" | grep -vxF "$HEAD_NODE" || true)
WORKERS=${#WORKER_NODES[@]}
PORT=$(( 20000 + SLURM_JOB_ID % 10000 ))  # per job, so two jobs sharing a node do not collide
if (( WORKERS > 0 )); then
  HEAD_IP=$("$PYTHON" -m ablate.cluster.slurm route-ip "${WORKER_NODES[0]}")  # the head as the workers reach it
else
  HEAD_IP=127.0.0.1
fi
RAY_HEAD="$HEAD_IP:$PORT"
# Ray's files per job and node (/tmp/ray-<job>-<k> on the job's k-th node): /tmp/ray/ray_current_cluster
# would make any later ray.init() on these nodes (another user's, another job's) attach to this
# cluster, or fail once it is gone; and where nodes share /tmp, each raylet needs its own sockets
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

# shellcheck disable=SC2329  # called by the traps below
stop_sweep() {  # a signal arrived: SIGTERM to `ablate run`, which stops Tune and keeps finished trials
  STOPPED=$1
  log "$1: stopping the sweep; finished trials are kept"
  if [[ -n "$DRIVER" ]]; then kill -TERM "$DRIVER" 2>/dev/null || true; fi
}
trap 'REQUEUE=1; stop_sweep "time limit in ${GRACE}s"' USR1
trap 'stop_sweep "SIGTERM (preempted or cancelled)"' TERM

running() {  # the Ray steps (their srun processes) still running
  local pid
  for pid in "${RAY_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
  done
}

stop_ray() {  # ablate run has written everything by now: end the Ray steps at once
  (( ${#RAY_PIDS[@]} )) || return 0
  log "stopping Ray on ${#NODES[@]} node(s) (srun then reports the Ray steps as cancelled: expected)"
  kill -TERM "${RAY_PIDS[@]}" 2>/dev/null || true  # srun ends its step on its node
  local deadline=$(( SECONDS + RAY_STOP_S )) left
  while left=$(running) && [[ -n "$left" ]] && (( SECONDS < deadline )); do sleep 1; done
  if [[ -n "$left" ]]; then  # an srun whose node was lost can wait for it for ever
    log "Ray steps still running after ${RAY_STOP_S}s (a lost node?): killing their srun"
    # shellcheck disable=SC2086  # one pid per word
    kill -KILL $left 2>/dev/null || true
  fi
  wait "${RAY_PIDS[@]}" 2>/dev/null || true
  RAY_PIDS=()
}
trap stop_ray EXIT

ray_nodes() {  # alive nodes of our Ray cluster, as its GCS counts them
  "$PYTHON" -m ablate.runner.nodes wait "$RAY_HEAD" 0 0 2>/dev/null || echo 0
}

wait_head() {  # until the head's GCS port answers (a bash TCP probe: no Python while Ray starts)
  local deadline=$(( SECONDS + RAY_WAIT_S ))
  # shellcheck disable=SC2016  # expanded by the inner bash
  until timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$HEAD_IP" "$PORT" 2>/dev/null; do
    kill -0 "${RAY_PIDS[0]}" 2>/dev/null || { log "the Ray head step exited early (its output is above)"; return 1; }
    if (( SECONDS >= deadline )); then log "the Ray head did not answer at $RAY_HEAD in ${RAY_WAIT_S}s"; return 1; fi
    sleep 0.5
  done
}

wait_nodes() {  # wait_nodes N: until N Ray nodes are up (best effort: Tune uses late nodes as they join)
  local deadline=$(( SECONDS + RAY_WAIT_S )) n=0
  # one Python process polls the GCS for up to 20 s at a time; in between, the Ray steps must still run
  until n=$("$PYTHON" -m ablate.runner.nodes wait "$RAY_HEAD" "$1" 20 2>/dev/null); do
    if [[ -z "$(running)" ]]; then log "the Ray steps exited early (their output is above)"; return 1; fi
    if (( SECONDS >= deadline )); then log "only ${n:-0} of $1 Ray nodes up after ${RAY_WAIT_S}s"; return 1; fi
  done
}

log "job $SLURM_JOB_ID: Ray head on $HEAD_NODE at $RAY_HEAD, $WORKERS worker node(s), restart ${SLURM_RESTART_COUNT:-0}"
srun --nodes=1 --ntasks=1 --cpus-per-task="$NODE_CPUS" "${SRUN_GPUS[@]}" --nodelist="$HEAD_NODE" \
  "${RAY[@]}" start --head --block --node-ip-address="$HEAD_IP" --port="$PORT" --include-dashboard=false \
  --num-cpus="$NODE_CPUS" --num-gpus="$NODE_GPUS" --temp-dir="$RAY_TMP-0" --disable-usage-stats &
RAY_PIDS+=($!)
wait_head || exit 1
# One step per worker node (not one step over all of them): a lost node ends its own step only, and
# the Ray workers on the other nodes go on
for k in "${!WORKER_NODES[@]}"; do
  srun --nodes=1 --ntasks=1 --cpus-per-task="$NODE_CPUS" "${SRUN_GPUS[@]}" --nodelist="${WORKER_NODES[k]}" \
    "${RAY[@]}" start --block --address="$RAY_HEAD" --num-cpus="$NODE_CPUS" --num-gpus="$NODE_GPUS" \
    --temp-dir="$RAY_TMP-$(( k + 1 ))" --disable-usage-stats &
  RAY_PIDS+=($!)
done
if wait_nodes "${#NODES[@]}"; then
  log "Ray is up on ${#NODES[@]} node(s)"
elif (( $(ray_nodes) == 0 )); then
  log "the Ray head did not start"
  exit 1
else
  log "going on with the nodes that are up; Tune uses late nodes as they join"
fi

# ---- 2. the sweep (finished trials are skipped: a resubmitted or requeued job resumes)
RC=130
if [[ -z "$STOPPED" ]]; then
  log "running ablate run against $RAY_HEAD"
  "$PYTHON" -m ablate.cli run "${RUN_ARGS[@]}" --address "$RAY_HEAD" &
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
