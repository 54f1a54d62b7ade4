#!/bin/bash
# Disk full: the run directory on a 3 MiB tmpfs holds one checkpoint of the tiny GPT (1.8 MiB)
# but not two. The second save fails with a clear error naming the checkpoint, leaves no partial
# directory, and the first checkpoint stays committed and loads (a resume elsewhere continues
# from it). Needs root for mount(8): without it the test fails, saying so.
# usage: disk_full_test.sh MPIEXEC TESSERA SOURCE_DIR
set -u
MPIEXEC=$1 TESSERA=$2 SRC=$3
WORK=$(mktemp -d)
FULL=$WORK/full
mkdir -p "$FULL"
cleanup() { umount "$FULL" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
if ! mount -t tmpfs -o size=3m tmpfs "$FULL"; then
  echo "FAIL: cannot mount a tmpfs at $FULL (this test needs root)"
  exit 1
fi
export TESSERA_NUM_THREADS=1 OMP_WAIT_POLICY=passive
sets=(--config "$SRC/configs/gpt_tiny.pbtxt" --set train.steps=4 --set train.peak_flops=1e9
      --set data.global_batch_size=4 --set checkpoint.every_steps=1)
"$MPIEXEC" --oversubscribe -np 2 "$TESSERA" train --quiet --run-dir "$FULL/run" "${sets[@]}" \
  >"$WORK/full.log" 2>&1
rc=$?
cat "$WORK/full.log" | grep -v "^\s*$" | grep -iv "mpirun\|--------\|help\|process\|exit code\|node" | head -5
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
[ "$rc" != 0 ] || fail "the run did not fail on a full disk"
grep -q "checkpoint of step 2 failed, nothing committed: .*rank_0000[01].h5" "$WORK/full.log" ||
  fail "no clear error naming the checkpoint file"
ls -a "$FULL/run/checkpoints"
[ "$(ls -a "$FULL/run/checkpoints" | grep -c tmp-step)" = 0 ] || fail "a partial directory is left"
[ "$(cat "$FULL/run/checkpoints/latest")" = step_00000001 ] || fail "latest does not point at step 1"
"$MPIEXEC" --oversubscribe -np 2 "$TESSERA" train --quiet --run-dir "$WORK/elsewhere" "${sets[@]}" \
  --resume "$FULL/run" >"$WORK/resume.log" 2>&1 || fail "resume from the intact checkpoint failed"
grep "resumed from" "$WORK/resume.log"
grep -q "resumed from $FULL/run/checkpoints/step_00000001" "$WORK/resume.log" ||
  fail "did not resume from step 1"
[ "$failures" = 0 ] || exit 1
echo "disk full: the save failed cleanly and the previous checkpoint loads"
