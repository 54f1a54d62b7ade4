#!/bin/bash
# sbatch of launch/slurm/train.sbatch on the local cluster: clip_tiny on 2 tasks trains to the end;
# the run directory runs/JOBNAME-JOBID holds the resolved config, the metrics up to the last step,
# the checkpoints and the job's log, and the log shows both ranks in one world.
source "$(dirname "$0")/lib.sh"
use_cluster
dir=$(new_dir sbatch-train)
steps=30
id=$(TESSERA_BIN=$bin TESSERA_RUNS=$dir sbatch --parsable -J clip -n 2 --chdir="$src" \
  -o "$dir/slurm.out" "$src/launch/slurm/train.sbatch" configs/clip_tiny.pbtxt \
  --set train.steps=$steps --set log.every_steps=10 --set checkpoint.every_steps=10) ||
  fail "sbatch refused the job"
run=$dir/clip-$id
wait_job "$id" 240
scontrol show job "$id" | grep -E 'JobState|ExitCode'
cat "$dir/slurm.out"
[ "$(job_state "$id")" = COMPLETED ] || fail "job $id ended $(job_state "$id")"
[ "$(job_field "$id" ExitCode)" = 0:0 ] || fail "exit code $(job_field "$id" ExitCode)"
for f in config.pbtxt metrics.jsonl job.log checkpoints/latest; do
  [ -s "$run/$f" ] || fail "$run/$f missing or empty"
done
grep -q 'world 2 = dp 2 x tp 1' "$run/job.log" || fail "job.log does not show a world of 2 ranks"
grep -q '^train.sbatch: finished' "$run/job.log" || fail "job.log lacks 'train.sbatch: finished'"
last=$(tail -n 1 "$run/metrics.jsonl")
[[ "$last" == *"\"step\":$steps"[,}]* ]] || fail "last metrics record is not step $steps: $last"
latest=$(cat "$run/checkpoints/latest")
[ "$latest" = "$(printf 'step_%08d' $steps)" ] || fail "checkpoints/latest is '$latest'"
rm -rf "$dir"
echo PASS
