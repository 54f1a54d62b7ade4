#!/bin/bash
# Preemption under Slurm: a 2-task clip_tiny job (deterministic) is interrupted mid-run, saves,
# is requeued, resumes in the same run directory and finishes; its logged losses and final
# checkpoint equal an uninterrupted run's bitwise.
#   preempt_test.sh usr1      scancel --signal=USR1 (what --signal=USR1@120 sends before the time
#                             limit): the tasks save and exit 75, train.sbatch requeues the job
#   preempt_test.sh requeue   scontrol requeue: Slurm sends SIGTERM, the tasks save and exit 75,
#                             Slurm itself puts the job back in the queue
source "$(dirname "$0")/lib.sh"
mode=${1:?usr1 or requeue}
use_cluster
dir=$(new_dir "preempt-$mode")
steps=24
args=(--set train.steps=$steps --set train.deterministic=true --set log.every_steps=1
  --set checkpoint.every_steps=$steps --quiet)

id=$(TESSERA_BIN=$bin TESSERA_RUNS=$dir sbatch --parsable -J preempt -n 2 --chdir="$src" \
  -o "$dir/slurm.out" "$src/launch/slurm/train.sbatch" configs/clip_tiny.pbtxt "${args[@]}") ||
  fail "sbatch refused the job"
run=$dir/preempt-$id
wait_metrics "$run" 6 240 job_running "$id"
case "$mode" in
  usr1) scancel --signal=USR1 "$id" || fail "scancel --signal=USR1 failed" ;;
  requeue) scontrol requeue "$id" || fail "scontrol requeue failed" ;;
esac
echo "interrupted job $id at step $(tail -n 1 "$run/metrics.jsonl" | grep -oE '"step":[0-9]+')"

# Slurm may hold a requeued job back for a while; release it, but only once the previous
# incarnation is gone (its processes and its step daemon): a step of the new one launched while
# slurmd still cleans up the old step of the same id is aborted.
# And not in the second of the requeue: slurmd revokes the old job credential then, at one-second
# resolution, so a new one issued in the same second counts as revoked and slurmd refuses the
# relaunch ("Job N already killed, do not launch batch job"; the job ends FAILED, seen once in CI).
t0=$SECONDS
pending_since=""
while :; do
  state=$(job_state "$id")
  restarts=$(job_field "$id" Restarts)
  if [ "${restarts:-0}" -ge 1 ] && [ "$state" = PENDING ] && [ -z "$(pgrep -f -- "$run")" ] &&
    [ -z "$(pgrep -f "slurmstepd: \[$id\.")" ]; then
    pending_since=${pending_since:-$SECONDS}
    if ((SECONDS - pending_since >= 2)); then
      scontrol update jobid="$id" StartTime=now >/dev/null 2>&1 || true
    fi
  fi
  [ "${restarts:-0}" -ge 1 ] && [[ "$state" =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT)$ ]] && break
  if [ "${restarts:-0}" = 0 ] && [[ "$state" =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT)$ ]]; then
    cat "$run/job.log"
    fail "job $id ended $state without being requeued"
  fi
  ((SECONDS - t0 > 300)) && { scancel "$id"; fail "job $id: $state, restarts $restarts after 300 s"; }
  sleep 1
done
echo "requeued job $id ended after $((SECONDS - t0)) s"
scontrol show job "$id" | grep -E 'JobState|Restarts'
cat "$dir/slurm.out"
[ "$state" = COMPLETED ] || fail "job $id ended $state after its requeue"
saved=$(grep -oE 'stop signal: checkpoint of step [0-9]+ saved; exiting with 75' "$run/job.log") ||
  fail "no checkpoint saved at the interruption"
echo "$saved"
grep -q '(restart 1)' "$run/job.log" || fail "job.log shows no restart"
# Resumed, not started over: each step trained (and logged) once in all.
logged=$(grep -c '"loss"' "$run/metrics.jsonl")
[ "$logged" = $steps ] || fail "$logged step records in metrics.jsonl, want $steps (started over?)"
if [ "$mode" = usr1 ]; then
  grep -q "train.sbatch: stopped after saving a checkpoint; requeueing job $id" "$run/job.log" ||
    fail "train.sbatch did not requeue on exit status 75"
fi

timeout 240 env TESSERA_BIN="$bin" "$src/launch/mpirun.sh" -n 2 --threads 1 --run-dir "$dir/ref" \
  "$src/configs/clip_tiny.pbtxt" "${args[@]}" >"$dir/ref.out" 2>&1 ||
  { cat "$dir/ref.out"; fail "the uninterrupted run failed"; }
/usr/bin/python3 "$src/tests/launch/compare_runs.py" "$run" "$dir/ref" $steps ||
  fail "the preempted run differs from the uninterrupted one"
rm -rf "$dir"
echo PASS
