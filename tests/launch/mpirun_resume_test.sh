#!/bin/bash
# launch/mpirun.sh with 4 ranks, TP 2 (dp 2 x tp 2), clip_tiny, deterministic: one invocation
# runs to completion; a second run of the same config is stopped with SIGUSR1 to mpirun (which
# Open MPI forwards to every rank): it saves and exits 75; invoking mpirun.sh again with
# --resume auto and the same --run-dir continues from that checkpoint to the end, and the result
# equals the uninterrupted run bitwise (every logged loss, the final checkpoint).
source "$(dirname "$0")/lib.sh"
dir=$(new_dir mpirun-resume)
steps=12
args=(--set parallel.tensor_parallel=2 --set train.steps=$steps --set train.deterministic=true
  --set log.every_steps=1 --set checkpoint.every_steps=$steps --quiet)
launch() { timeout 240 env TESSERA_BIN="$bin" "$src/launch/mpirun.sh" -n 4 --run-dir "$@"; }

launch "$dir/whole" "$src/configs/clip_tiny.pbtxt" "${args[@]}" >"$dir/whole.out" 2>&1 ||
  { cat "$dir/whole.out"; fail "the uninterrupted 4-rank run failed"; }

run=$dir/stopped
launch "$run" "$src/configs/clip_tiny.pbtxt" "${args[@]}" >"$dir/first.out" 2>&1 &
launcher=$!
wait_metrics "$run" 4 240 kill -0 $launcher
mpirun_pid=$(pgrep -f -- "^mpirun .*--run-dir $run " | head -1) || fail "mpirun of $run not found"
kill -USR1 "$mpirun_pid"
status=0
wait $launcher || status=$?
cat "$dir/first.out"
[ $status = 75 ] || fail "the interrupted invocation exited $status, want 75"
grep -q -- "continue with: .* --resume auto" "$dir/first.out" || fail "no hint how to continue"
saved=$(cat "$run/checkpoints/latest")
[ "$saved" != "$(printf 'step_%08d' $steps)" ] || fail "the run finished before the signal"

launch "$run" "$src/configs/clip_tiny.pbtxt" "${args[@]}" --resume auto >"$dir/second.out" 2>&1 ||
  { cat "$dir/second.out"; fail "the resumed invocation failed"; }
grep -i "resum" "$dir/second.out" | head -2
/usr/bin/python3 "$src/tests/launch/compare_runs.py" "$run" "$dir/whole" $steps ||
  fail "the stopped-and-resumed run differs from the uninterrupted one"
rm -rf "$dir"
echo PASS
