#!/bin/bash
# Preemption: SIGUSR1 sent to ONE rank of a 2-rank run makes both stop at the same step boundary,
# save and exit 75; the resumed run gets SIGTERM on the other rank and does the same; a final
# `--resume auto` finishes, and the result equals an uninterrupted run bit for bit.
# usage: preempt_test.sh MPIEXEC TESSERA SOURCE_DIR PYTHON
set -u
MPIEXEC=$1 TESSERA=$2 SRC=$3 PYTHON=$4
WORK=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
export TESSERA_NUM_THREADS=1 OMP_WAIT_POLICY=passive
sets=(--config "$SRC/configs/gpt_tiny.pbtxt" --set train.steps=300 --set train.peak_flops=1e9
      --set train.deterministic=true --set data.global_batch_size=4 --set log.every_steps=5)
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$MPIEXEC" --oversubscribe -np 2 "$TESSERA" train --quiet --run-dir "$WORK/ref" "${sets[@]}" \
  >"$WORK/ref.log" 2>&1 || { cat "$WORK/ref.log"; exit 1; }

run="$WORK/run"
# interrupt SIGNAL CHILD_INDEX LOG [--resume auto]: starts the run, waits for 2 more metrics
# lines, signals one rank (a child of mpirun), expects exit 75.
interrupt() {
  local sig=$1 which=$2 log=$3; shift 3
  local before=0
  [ -f "$run/metrics.jsonl" ] && before=$(wc -l <"$run/metrics.jsonl")
  "$MPIEXEC" --oversubscribe -np 2 "$TESSERA" train --quiet --run-dir "$run" "${sets[@]}" "$@" \
    >"$log" 2>&1 &
  local mp=$!
  for _ in $(seq 600); do
    [ -f "$run/metrics.jsonl" ] && [ "$(wc -l <"$run/metrics.jsonl")" -ge $((before + 2)) ] && break
    sleep 0.05
  done
  local pids=($(pgrep -P "$mp" | sort -n))
  kill -s "$sig" "${pids[$which]}"
  wait "$mp"
  local rc=$?
  [ "$rc" = 75 ] || fail "$sig to rank process $which: exit $rc, expected 75"
  grep "stop signal" "$log" || fail "$sig: no stop message"
}
interrupt USR1 1 "$WORK/1.log"
first=$(cat "$run/checkpoints/latest")
interrupt TERM 0 "$WORK/2.log" --resume auto
grep -q "resumed from .*$first" "$WORK/2.log" || fail "the second run did not resume from $first"
second=$(cat "$run/checkpoints/latest")
[ "$first" != "$second" ] || fail "no progress between the interruptions"
"$MPIEXEC" --oversubscribe -np 2 "$TESSERA" train --quiet --run-dir "$run" "${sets[@]}" \
  --resume auto >"$WORK/3.log" 2>&1 || fail "the final resume failed"
grep "resumed from" "$WORK/3.log"
"$PYTHON" "$SRC/tests/train/checkpoint/compare_checkpoints.py" "$WORK/ref/checkpoints/step_00000300" \
  "$run/checkpoints/step_00000300" || fail "the interrupted run's result differs"
[ "$failures" = 0 ] || exit 1
echo "preempted twice (SIGUSR1, SIGTERM to one rank each), resumed, equal to the uninterrupted run"
