#!/bin/bash
# One rank of 2 fails inside backward with collectives in flight (TESSERA_FAIL_IN_BACKWARD,
# train/fault_injection.h: it also starts a collective its peer never joins, as a rank whose
# collective failed does) and the job ends at once with that rank's message, exit status non-zero
# (docs/DESIGN.md decision 7). Before the fix the failing rank waited in Trainer::release()'s
# destructors for its collectives and the job hung until the collective watchdog, which is left
# at its default 600 s here so that it cannot be what ends the job; the timeout below is far
# shorter. At ZeRO stage 0 (buckets all-reduced during backward) and stage 3 (reduce-scatters and
# the units' prefetched all-gathers in flight).
#   rank_failure_test.sh TESSERA MPIEXEC CONFIG
source "$(dirname "$0")/train_script_prelude.sh"
# Small buckets: several per backward, so the failure comes with the first in flight and more to go.
args=(train --config "$config" --quiet --set train.steps=3 --set checkpoint.every_steps=0
      --set parallel.bucket_bytes=16384)

for stage in 0 3; do
  name="2 ranks, stage $stage"
  TESSERA_FAIL_IN_BACKWARD=1:2 timeout 90 "$mpiexec" --oversubscribe -np 2 \
    -x TESSERA_FAIL_IN_BACKWARD "$tessera" "${args[@]}" --run-dir "$dir/stage$stage" \
    --set parallel.zero_stage=$stage >"$dir/stage$stage.log" 2>&1
  status=$?
  cat "$dir/stage$stage.log"
  echo "--- $name: exit status $status"
  [ "$status" -ne 124 ] || fail "$name: still running after 90 s (the failing rank hung)"
  [ "$status" -ne 0 ] || fail "$name: exited 0 although rank 1 failed"
  want="rank 1: injected failure in backward of step 2"
  n=$(grep -cF "$want" "$dir/stage$stage.log")
  [ "$n" -eq 1 ] || fail "$name: \"$want\" printed $n times, want once"
  grep -q "collective watchdog" "$dir/stage$stage.log" && fail "$name: ended by the watchdog"
done
echo PASS
