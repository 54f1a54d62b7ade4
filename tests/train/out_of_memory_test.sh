#!/bin/bash
# A run whose parameters do not fit the address-space limit ends with a clear error: the failed
# allocation's size, the rank, and the advice (parallel.zero_stage: 3 below stage 3; more ranks at
# stage 3), in one process and on 2 ranks under mpirun; never a bare std::bad_alloc or a crash.
#   out_of_memory_test.sh TESSERA MPIEXEC CONFIG
source "$(dirname "$0")/train_script_prelude.sh"
# d_model 8192 x 2 layers: 1.6e9 parameters, a 6.4 GB flat buffer against a 4 GiB limit, so the
# first allocation of the parameters fails (whatever the libraries' own address space is).
limit_kib=4194304
args=(train --config "$config" --quiet --set model.gpt.transformer.d_model=8192
      --set train.steps=1 --set checkpoint.every_steps=0 --set data.global_batch_size=2)

# expect NAME STAGE WANT... : the last run failed (not 0, not a signal) and its output holds WANT.
expect() {
  local name=$1 status=$2 out=$3
  shift 3
  cat "$out"
  echo "--- $name: exit status $status"
  [ "$status" -ne 0 ] || fail "$name: exited 0 under ulimit -v $limit_kib"
  [ "$status" -lt 128 ] || fail "$name: killed by a signal (status $status)"
  grep -q "std::bad_alloc" "$out" && ! grep -q "out of memory" "$out" && fail "$name: bare bad_alloc"
  for want in "$@"; do grep -qF -- "$want" "$out" || fail "$name: no \"$want\" in the output"; done
}

(ulimit -v $limit_kib && exec timeout 60 "$tessera" "${args[@]}" --run-dir "$dir/one") \
  >"$dir/one.log" 2>&1
expect "one process, stage 0" $? "$dir/one.log" "tessera train: " "out of memory allocating" \
  "parallel.zero_stage is 0" "parallel.zero_stage: 3 shards the parameters"

(timeout 60 "$mpiexec" --oversubscribe -np 2 bash -c 'ulimit -v "$0" && exec "${@:1}"' \
  "$limit_kib" "$tessera" "${args[@]}" --run-dir "$dir/two" --set parallel.zero_stage=3) \
  >"$dir/two.log" 2>&1
expect "2 ranks, stage 3" $? "$dir/two.log" "out of memory allocating" \
  "parallel.zero_stage is 3" "more data-parallel ranks make each shard smaller"
grep -qE "^rank [01]: allocator: out of memory allocating [0-9]+ bytes" "$dir/two.log" ||
  fail "2 ranks: no 'rank R: allocator: out of memory allocating N bytes' line"
echo PASS
