#!/bin/bash
# launch/mpirun.sh --dry-run: the layout it prints and the mpirun command it builds, for a
# hostfile and for this machine (cores from nproc), without starting anything.
source "$(dirname "$0")/lib.sh"
dir=$(new_dir mpirun-layout)
cores=$(nproc)
dry() { TESSERA_BIN=$bin "$src/launch/mpirun.sh" --dry-run "$@" "$src/configs/clip_tiny.pbtxt" --quiet; }
expect() {  # expect OUTPUT REGEX
  grep -qE -- "$2" <<<"$1" || fail "want /$2/ in: $1"
}
printf '# two nodes\nnode-a slots=4\nnode-b slots=4 max_slots=8\n\n' >"$dir/hosts"
out=$(dry --hostfile "$dir/hosts" --run-dir "$dir/r") || fail "dry run failed: $out"
expect "$out" "^mpirun.sh: 8 rank\(s\) on 2 host\(s\) from $dir/hosts"
expect "$out" "--np 8 --hostfile $dir/hosts"
expect "$out" "train --config $src/configs/clip_tiny.pbtxt --run-dir $dir/r --quiet$"
expect "$out" "-x TESSERA_NUM_THREADS"
out=$(dry -n $((cores + 1)) --run-dir "$dir/r") || fail "dry run failed: $out"
expect "$out" "$((cores + 1)) rank\(s\) on 1 host\(s\), 1 thread\(s\) per rank, oversubscribed"
expect "$out" "--oversubscribe --bind-to none"
out=$(dry -n 1 --run-dir "$dir/r") || fail "dry run failed: $out"
expect "$out" "1 rank\(s\) on 1 host\(s\), $cores thread\(s\) per rank, each rank bound to $cores core"
expect "$out" "--map-by slot:PE=$cores --bind-to core"
[ ! -e "$dir/r" ] || fail "--dry-run created the run directory"
TESSERA_BIN=$bin "$src/launch/mpirun.sh" -n 0 "$src/configs/clip_tiny.pbtxt" 2>"$dir/err" &&
  fail "-n 0 accepted"
expect "$(cat "$dir/err")" "--np must be a positive integer, got '0'"
TESSERA_BIN=$bin "$src/launch/mpirun.sh" "$dir/missing.pbtxt" 2>"$dir/err" && fail "missing config accepted"
expect "$(cat "$dir/err")" "config '$dir/missing.pbtxt' not found"
rm -rf "$dir"
echo PASS
