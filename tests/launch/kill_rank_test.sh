#!/bin/bash
# SIGKILL of one rank of a 2-rank clip_tiny run, under launch/mpirun.sh or launch/slurm/train.sbatch:
# the launcher ends within 60 s with a non-zero status, no process of the run is left, and the
# launcher's last word names the dead rank.
#   kill_rank_test.sh mpirun|sbatch
source "$(dirname "$0")/lib.sh"
mode=${1:?mpirun or sbatch}
bound=60
dir=$(new_dir "kill-$mode")
train_args=(--set train.steps=100000 --set log.every_steps=1 --quiet)

case "$mode" in
  mpirun)
    run=$dir/run
    TESSERA_BIN=$bin "$src/launch/mpirun.sh" -n 2 --run-dir "$run" "$src/configs/clip_tiny.pbtxt" \
      "${train_args[@]}" >"$dir/out" 2>&1 &
    launcher=$!
    var=OMPI_COMM_WORLD_RANK
    alive=(kill -0 $launcher)
    ;;
  sbatch)
    use_cluster
    id=$(TESSERA_BIN=$bin TESSERA_RUNS=$dir sbatch --parsable -J kill -n 2 --chdir="$src" \
      -o "$dir/slurm.out" "$src/launch/slurm/train.sbatch" configs/clip_tiny.pbtxt \
      "${train_args[@]}") || fail "sbatch refused the job"
    run=$dir/kill-$id
    var=SLURM_PROCID
    alive=(job_running "$id")
    ;;
  *) fail "unknown mode $mode" ;;
esac

wait_metrics "$run" 2 240 "${alive[@]}"
victim=$(rank_pid "$run" $var 1) || fail "rank 1 of $run not found"
echo "killing rank 1 (pid $victim) of $run"
kill -9 "$victim"
t0=$SECONDS

if [ "$mode" = mpirun ]; then
  status=0
  timeout $bound tail --pid=$launcher -f /dev/null || { kill $launcher; fail "mpirun.sh still running after ${bound}s"; }
  wait $launcher || status=$?
  out=$dir/out
else
  wait_job "$id" $bound
  scontrol show job "$id" | grep -E 'JobState|ExitCode'
  status=$(job_field "$id" ExitCode | cut -d: -f1)
  [ "$(job_state "$id")" = FAILED ] || fail "job state $(job_state "$id"), want FAILED"
  out=$run/job.log
fi
no_processes_left "$run" $((bound - (SECONDS - t0)))
echo "--- launcher output ($out), exit status $status after $((SECONDS - t0)) s"
cat "$out"
[ "$status" -ne 0 ] || fail "exit status 0 after a rank was killed"
[ "$status" -ne 75 ] || fail "exit status 75 (resumable) after a rank was killed"
last=$(tail -n 3 "$out")
case "$mode" in
  mpirun) want='mpirun.sh: job failed \(exit status [0-9]+\): rank 1 .*exited on signal 9' ;;
  sbatch) want='train.sbatch: rank 1 on [^ ]+ ended first \(Killed\)' ;;
esac
grep -qE "$want" <<<"$last" || fail "the last lines do not name rank 1 (want /$want/): $last"
rm -rf "$dir"
echo PASS
