# Shared by the launch tests (sourced): paths, the local Slurm cluster, finding a run's ranks.
# Every process a test looks for is found by its unique run directory on the command line, never
# by name: other tests and other users' jobs run on the same machine.
set -uo pipefail
src=${TESSERA_SOURCE_DIR:?run from ctest (TESSERA_SOURCE_DIR)}
bin=${TESSERA_BIN:?run from ctest (TESSERA_BIN)}
work=${TESSERA_TEST_WORK:?run from ctest (TESSERA_TEST_WORK)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive

fail() {
  echo "FAIL: $*"
  exit 1
}

# A fresh directory for this test under the build tree.
new_dir() {
  local d=$work/$1-$$
  rm -rf "$d"
  mkdir -p "$d"
  echo "$d"
}

use_cluster() {
  "$src/launch/slurm/local-cluster.sh" start >/dev/null || fail "the local Slurm cluster did not start"
  eval "$("$src/launch/slurm/local-cluster.sh" env)"
}

# job_state ID: COMPLETED, RUNNING, PENDING, FAILED, ...
job_state() { scontrol show job "$1" -o 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2; }
job_field() { scontrol show job "$1" -o 2>/dev/null | grep -oE "(^| )$2=[^ ]+" | cut -d= -f2; }

# wait_job ID SECONDS: waits until the job has ended; fails (and cancels it) past the bound.
wait_job() {
  local id=$1 bound=$2 t0=$SECONDS s
  while :; do
    s=$(job_state "$id")
    case "$s" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) return 0 ;;
    esac
    if ((SECONDS - t0 > bound)); then
      scancel "$id"
      fail "job $id still $s after ${bound}s"
    fi
    sleep 1
  done
}

# job_running ID: the job is pending or running.
job_running() { [[ "$(job_state "$1")" =~ ^(PENDING|RUNNING|CONFIGURING|REQUEUED)$ ]]; }

# pids_of RUN_DIR: the tessera processes of that run.
pids_of() {
  local p
  for p in $(pgrep -f -- "--run-dir $1( |$)" || true); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = tessera ] && echo "$p"
  done
}

# rank_pid RUN_DIR VAR RANK: the process of that run whose environment has VAR=RANK
# (OMPI_COMM_WORLD_RANK under mpirun, SLURM_PROCID under srun).
rank_pid() {
  local p
  for p in $(pids_of "$1"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "$2=$3"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# wait_metrics RUN_DIR LINES SECONDS CHECK...: until metrics.jsonl has that many lines (training
# runs); fails early when the command CHECK (the launcher is alive) fails.
wait_metrics() {
  local t0=$SECONDS run=$1 lines=$2 bound=$3
  shift 3
  until [ -f "$run/metrics.jsonl" ] && [ "$(wc -l <"$run/metrics.jsonl")" -ge "$lines" ]; do
    ((SECONDS - t0 > bound)) && fail "$run/metrics.jsonl has not reached $lines lines after $bound s"
    "$@" || fail "the launcher ended before $run/metrics.jsonl reached $lines lines"
    sleep 0.5
  done
}

# no_processes_left RUN_DIR SECONDS: every process of the run is gone within the bound.
no_processes_left() {
  local t0=$SECONDS left
  while :; do
    left=$(pgrep -f -- "$1" || true)
    [ -z "$left" ] && return 0
    if ((SECONDS - t0 > $2)); then
      ps -o pid,etime,args -p $(echo $left | tr ' ' ',') || true
      kill -9 $left 2>/dev/null
      fail "processes of $1 still running $2 s after the kill"
    fi
    sleep 1
  done
}
