#!/bin/bash
# oneDNN running out of memory inside a step ends `tessera train` with the trainer's advice: the
# message names oneDNN's call, the matmul and its shapes (ops/cpu/onednn_status.h), and says "out
# of memory", so train/run_train.cc appends what to change. (Before, dnnl_sgemm's status 1 ended
# the run as a plain error; scripts/zero3_fit met it at ulimit -v 1.875 GiB.)
#   onednn_out_of_memory_test.sh TESSERA CONFIG
# How the failure is made to be oneDNN's: a run warms up for 3 steps (the caching allocator then
# reuses its blocks, and allocations under 1 MiB, which bypass it, are served from the heap glibc
# already has: MALLOC_MMAP_THRESHOLD_), then its address-space limit is lowered to just above what it
# has mapped (prlimit). What a step still maps afresh is oneDNN's sgemm packing buffers,
# allocated and freed inside each call; the first of them fails.
set -u
tessera=$1 config=$2
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
fail() {
  cat "$dir/log"
  echo "FAIL: $*"
  exit 1
}
export TESSERA_NUM_THREADS=1 MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=1048576
# A head of 512 x 8192 x 256 and 256-wide layers: sgemm calls large enough to need buffers.
stdbuf -oL -eL "$tessera" train --config "$config" --run-dir "$dir/run" --set train.steps=100000 \
  --set checkpoint.every_steps=0 --set log.every_steps=1 --set model.gpt.vocab_size=8192 \
  --set model.gpt.transformer.d_model=256 >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1200); do
  grep -q "^step *3/" "$dir/log" && break
  kill -0 "$pid" 2>/dev/null || fail "the run ended before step 3"
  sleep 0.1
done
grep -q "^step *3/" "$dir/log" || fail "no step 3 within 120 s"
# The limit: 2 MiB above the smallest address space seen over a second (between oneDNN's calls,
# whose buffers are unmapped again). Limiting below it instead refused every new mapping, and then
# the first to fail was a 512 KiB activation from the heap as often as oneDNN's buffers (the data
# prefetch thread's mallocs move the heap's free lists from run to run): 4 failures in 6 runs.
# The 2 MiB lets the heap grow a little but not oneDNN's sgemm packing buffers for these shapes
# (12 runs of 12 ended in dnnl_sgemm's out of memory).
vm_bytes=
for _ in $(seq 20); do
  v=$(awk '/^VmSize:/ {print $2 * 1024}' "/proc/$pid/status")
  if [ -z "$vm_bytes" ] || [ "$v" -lt "$vm_bytes" ]; then vm_bytes=$v; fi
  sleep 0.05
done
limit=$((vm_bytes + 2 * 1024 * 1024))
prlimit --pid "$pid" --as="$limit:" || fail "prlimit --pid $pid --as=$limit failed"
echo "address-space limit lowered to $limit bytes (VmSize was $vm_bytes) after step 3"
for _ in $(seq 600); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill "$pid" 2>/dev/null # still training after 60 s: exit status 143, a failure below
wait "$pid"
status=$?
pid=
grep -v "^step " "$dir/log"
echo "--- exit status $status"
[ "$status" -eq 1 ] || fail "exit status $status, expected 1 (an error; 143 = still training after 60 s)"
for want in "tessera train: out of memory in oneDNN's dnnl_sgemm (dnnl_out_of_memory" \
  "for f32 matmul m=" "parallel.zero_stage is 0" "fewer tokens per micro-batch"; do
  grep -qF -- "$want" "$dir/log" || fail "no \"$want\" in the output"
done
echo PASS
