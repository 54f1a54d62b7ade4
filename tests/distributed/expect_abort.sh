#!/bin/bash
# CTest driver for the failure tests: runs abort_probe (or nccl_abort_probe) under mpirun and
# asserts that the job ends with a non-zero status within a bound and prints the expected message.
#   expect_abort.sh MPIEXEC NP PROBE MODE
set -u
mpiexec=$1 np=$2 probe=$3 mode=$4
max_seconds=20
# Open MPI runs as root in this container; pass the permission on (CTest sets it too).
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OMP_NUM_THREADS=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
timeout 60 "$mpiexec" --oversubscribe -np "$np" "$probe" "$mode" >"$out" 2>&1
status=$?
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
cat "$out"
echo "--- exit status $status after ${elapsed}s"
fail() { echo "FAIL: $*"; exit 1; }
# GPU probes on a machine without one: a skip (CTest SKIP_RETURN_CODE 77), never a pass.
if [ "$status" -eq 0 ] && grep -q "^no CUDA device" "$out"; then echo "SKIP: no CUDA device"; exit 77; fi
[ "$status" -ne 0 ] || fail "the job exited 0"
[ "$status" -ne 124 ] || fail "the job hung (killed by timeout after 60 s)"
(( $(echo "$elapsed < $max_seconds" | bc) )) || fail "took ${elapsed}s (bound ${max_seconds}s)"
grep -q "finished (unexpected)" "$out" && fail "a rank got past the failed step"
case "$mode" in
  hang)
    line=$(grep "collective watchdog:" "$out" | head -1)
    [ -n "$line" ] || fail "no watchdog line"
    for want in "all_reduce #4 on group 'world'" "1048576 f32 elements" "not complete after" \
                "not arrived: rank 1 (last issued #3)"; do
      [[ "$line" == *"$want"* ]] || fail "watchdog line lacks \"$want\": $line"
    done
    grep -q "^rank [02]: collective watchdog:" "$out" || fail "watchdog line not prefixed by rank"
    ;;
  nccl_hang)
    line=$(grep "collective watchdog:" "$out" | head -1)
    [ -n "$line" ] || fail "no watchdog line"
    for want in "all_reduce #4 on group 'world'" "NCCL" "not complete after" \
                "NCCL communicator aborted"; do
      [[ "$line" == *"$want"* ]] || fail "watchdog line lacks \"$want\": $line"
    done
    grep -q "^rank 0: collective watchdog:" "$out" || fail "watchdog line not prefixed by rank"
    ;;
  throw)
    last=$((np - 1))
    n=$(grep -c "^rank $last: injected failure in step 4$" "$out")
    [ "$n" -eq 1 ] || fail "the thrower's message appears $n times (want once)"
    ;;
  *) fail "unknown mode $mode" ;;
esac
echo "PASS"
