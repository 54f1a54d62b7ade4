#!/usr/bin/env bash
# Starts `tessera train` under Open MPI's mpirun with defaults that suit it.
#
#   launch/mpirun.sh [options] CONFIG [tessera train arguments...]
#
#   -n, --np N          ranks (default: the hostfile's slots, else this machine's cores)
#   --hostfile FILE     Open MPI hostfile ("node1 slots=8" per line); without it, this machine
#   --threads T         threads per rank (default: cores per host / ranks per host, at least 1)
#   --run-dir DIR       the run directory (default runs/CONFIGNAME-YYYYmmdd-HHMMSS); give the
#                       same DIR again with --resume auto to continue a run
#   --tessera PATH      the binary (default $TESSERA_BIN, else build/tessera of this checkout)
#   --mpirun-arg ARG    one more argument for mpirun (repeatable), e.g. --mpirun-arg=--tag-output
#   --dry-run           print the layout and the command, start nothing
#
# What it sets up, and why:
# - threads: TESSERA_NUM_THREADS and OMP_NUM_THREADS = T for every rank, so ranks x threads
#   matches the cores instead of every rank starting one OpenMP thread per core.
# - binding: each rank bound to its own T cores (--map-by slot:PE=T --bind-to core) so the
#   OpenMP threads of one rank stay off the others' cores; with more ranks than cores
#   (a laptop test) --oversubscribe and no binding, and waiting threads sleep
#   (OMP_WAIT_POLICY=passive) instead of spinning on cores other ranks need.
# - environment: every TESSERA_* and OMP_* variable, PATH and LD_LIBRARY_PATH are forwarded
#   to remote hosts (-x); local ranks inherit the environment anyway.
# - root: Open MPI refuses to run as root unless told; in containers (CI) that is intended.
# - the output goes to the terminal and to RUN_DIR/launch.log; when a rank dies the last line
#   names it.
# Exit status: tessera's (0 done, 1 error, 75 stopped after saving a checkpoint: run again with
# --resume auto and the same --run-dir), or mpirun's when a rank was killed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit "${1:-0}"
}
die() {
  echo "mpirun.sh: $*" >&2
  exit 1
}

np="" hostfile="" threads="" run_dir="" dry_run=0
tessera=${TESSERA_BIN:-$here/../build/tessera}
mpirun_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage 0 ;;
    -n | --np) np=${2:?"$1 needs a value"}; shift 2 ;;
    --np=*) np=${1#*=}; shift ;;
    --hostfile) hostfile=${2:?"--hostfile needs a value"}; shift 2 ;;
    --hostfile=*) hostfile=${1#*=}; shift ;;
    --threads) threads=${2:?"--threads needs a value"}; shift 2 ;;
    --threads=*) threads=${1#*=}; shift ;;
    --run-dir) run_dir=${2:?"--run-dir needs a value"}; shift 2 ;;
    --run-dir=*) run_dir=${1#*=}; shift ;;
    --tessera) tessera=${2:?"--tessera needs a value"}; shift 2 ;;
    --tessera=*) tessera=${1#*=}; shift ;;
    --mpirun-arg) mpirun_extra+=("${2:?"--mpirun-arg needs a value"}"); shift 2 ;;
    --mpirun-arg=*) mpirun_extra+=("${1#*=}"); shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    -*) die "unknown option '$1' (launcher options come before CONFIG; see --help)" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "mpirun.sh: CONFIG is required" >&2; usage 2; }
config=$1
shift
[ -f "$config" ] || die "config '$config' not found"
[ -x "$tessera" ] || die "tessera binary '$tessera' not found or not executable (./scripts/build, or --tessera PATH)"
command -v mpirun >/dev/null || die "mpirun not found (Debian: openmpi-bin)"
for a in "$@"; do
  case "$a" in
    --run-dir | --run-dir=*) die "give --run-dir before CONFIG (the launcher writes launch.log there)" ;;
  esac
done

is_uint() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }
cores=$(nproc)
if [ -n "$hostfile" ]; then
  [ -f "$hostfile" ] || die "hostfile '$hostfile' not found"
  # Hosts and slots as Open MPI reads them: "host [slots=N]", '#' comments; one slot by default.
  read -r hosts slots < <(awk '
    { sub(/#.*/, "") } NF == 0 { next }
    { n = 1; for (i = 2; i <= NF; ++i) if ($i ~ /^slots=/) { split($i, kv, "="); n = kv[2] }
      h[$1] = 1; s += n }
    END { print length(h), s }' "$hostfile")
  [ "$hosts" -ge 1 ] || die "hostfile '$hostfile' names no host"
  cores_per_host=$cores  # assumes hosts like this one; --threads overrides
else
  hosts=1 slots=$cores cores_per_host=$cores
fi
[ -n "$np" ] || np=$slots
is_uint "$np" || die "--np must be a positive integer, got '$np'"
ranks_per_host=$(((np + hosts - 1) / hosts))
if [ -z "$threads" ]; then
  threads=$((cores_per_host / ranks_per_host))
  [ "$threads" -ge 1 ] || threads=1
fi
is_uint "$threads" || die "--threads must be a positive integer, got '$threads'"

args=(--np "$np")
[ -n "$hostfile" ] && args+=(--hostfile "$hostfile")
if [ $((ranks_per_host * threads)) -gt "$cores_per_host" ] || [ "$np" -gt "$slots" ]; then
  placement="oversubscribed ($np ranks x $threads threads on $((hosts * cores_per_host)) cores), not bound"
  args+=(--oversubscribe --bind-to none)
else
  placement="each rank bound to $threads core(s)"
  args+=(--map-by "slot:PE=$threads" --bind-to core)
fi
[ "$(id -u)" = 0 ] && args+=(--allow-run-as-root)
export TESSERA_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
for v in PATH LD_LIBRARY_PATH $(compgen -e | grep -E '^(TESSERA|OMP)_' || true); do
  [ -n "${!v+x}" ] && args+=(-x "$v")
done

if [ -z "$run_dir" ]; then
  name=$(basename "$config")
  run_dir=runs/${name%.*}-$(date +%Y%m%d-%H%M%S)
fi
cmd=(mpirun "${args[@]}" "${mpirun_extra[@]}" "$tessera" train --config "$config"
  --run-dir "$run_dir" "$@")

echo "mpirun.sh: $np rank(s) on $hosts host(s)${hostfile:+ from $hostfile}, $threads thread(s) per rank, $placement"
echo "mpirun.sh: run directory $run_dir"
echo "mpirun.sh: ${cmd[*]}"
[ $dry_run = 1 ] && exit 0

mkdir -p "$run_dir"
log=$run_dir/launch.log
status=0
"${cmd[@]}" 2>&1 | tee -a "$log" || status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ] && [ "$status" -ne 75 ]; then
  # Open MPI's own report ("mpirun noticed that process rank 1 ... exited on signal 9") sits in
  # a box among the ranks' output; repeat the essential on the last line.
  dead=$(grep -oE 'process rank [0-9]+ with PID [0-9]+ on node [^ ]+ exited on signal [0-9]+( \([^)]*\))?' "$log" | tail -1 || true)
  if [ -n "$dead" ]; then
    echo "mpirun.sh: job failed (exit status $status): ${dead#process }; the other ranks were stopped" >&2
  else
    echo "mpirun.sh: job failed (exit status $status); the first error above names the rank" >&2
  fi
elif [ "$status" -eq 75 ]; then
  echo "mpirun.sh: stopped after saving a checkpoint; continue with: $0 --run-dir $run_dir $config --resume auto" >&2
fi
exit "$status"
