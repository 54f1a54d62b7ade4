#!/bin/bash
# tessera pack over 2 and 3 MPI ranks vs 1 process: the same samples (pixels, captions, labels,
# tokens) in the manifests, the same skipped inputs, and a failing rank is named, not a hang.
# Usage: pack_mpi_test.sh TESSERA SOURCE_DIR
set -euo pipefail
tessera=$1
src=$2
py=${TESSERA_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" "$src/tests/data_pipeline/pack_mpi_make_inputs.py" "$work/in"
"$tessera" tokenizer train --input "$work/in/captions.txt" --out "$work/tok" --vocab 60 >/dev/null
args=(--index "$work/in/index.jsonl" --tokenizer "$work/tok.model" --resolution 16
      --context 12 --samples-per-shard 7 --val-fraction 0.3)
"$tessera" pack "${args[@]}" --out "$work/one" >"$work/one.log"
mpirun --oversubscribe -np 2 "$tessera" pack "${args[@]}" --out "$work/two" >"$work/two.log"
ls "$work/two" | grep -q -- '-r00001-' || { echo "FAIL: no shard of rank 1"; exit 1; }
"$py" "$src/tests/data_pipeline/pack_mpi_compare.py" --unique-captions "$work/one" "$work/two"
# 3 ranks: blocks of 14 or 15 inputs, shard boundaries elsewhere again.
mpirun --oversubscribe -np 3 "$tessera" pack "${args[@]}" --out "$work/three" >"$work/three.log"
"$py" "$src/tests/data_pipeline/pack_mpi_compare.py" --unique-captions "$work/one" "$work/three"
grep '^  skipped' "$work/one.log" >"$work/one.skipped"
grep '^  skipped' "$work/two.log" >"$work/two.skipped"
[ "$(wc -l <"$work/one.skipped")" = 3 ] || { echo "FAIL: expected 3 skipped"; cat "$work/one.log"; exit 1; }
diff "$work/one.skipped" "$work/two.skipped" || { echo "FAIL: skip reports differ"; exit 1; }
grep '^  skipped' "$work/three.log" | diff "$work/one.skipped" - || { echo "FAIL: 3 ranks"; exit 1; }

# webdataset tars (no labels): 2 ranks == 1 process, same skips (missing image, missing caption).
# Relative tar paths (run from $work): the split keys "TAR:KEY" do not depend on mktemp's name.
cd "$work"
targs=(--tar "in/part0.tar,in/part1.tar" --resolution 16 --samples-per-shard 5 --val-fraction 0.3)
"$tessera" pack "${targs[@]}" --out "$work/tar1" >"$work/tar1.log"
mpirun --oversubscribe -np 2 "$tessera" pack "${targs[@]}" --out "$work/tar2" >"$work/tar2.log"
"$py" "$src/tests/data_pipeline/pack_mpi_compare.py" --unique-captions "$work/tar1" "$work/tar2"
grep '^  skipped' "$work/tar1.log" >"$work/tar1.skipped"
[ "$(wc -l <"$work/tar1.skipped")" = 3 ] || { echo "FAIL: tar: expected 3 skipped"; cat "$work/tar1.log"; exit 1; }
grep '^  skipped' "$work/tar2.log" | diff "$work/tar1.skipped" - || { echo "FAIL: tar skips"; exit 1; }
cd - >/dev/null

# Rank 1 cannot write its first shard (a directory sits where its temporary file goes): the
# job must fail, name rank 1, and write no manifest.
mkdir -p "$work/bad/train-r00001-00000.h5.tmp" "$work/bad/val-r00001-00000.h5.tmp"
set +e
timeout 60 mpirun --oversubscribe -np 2 "$tessera" pack "${args[@]}" --out "$work/bad" \
  >"$work/bad.log" 2>&1
rc=$?
set -e
cat "$work/bad.log"
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { echo "FAIL: exit status $rc (0: no error, 124: hang)"; exit 1; }
grep -q 'rank 1' "$work/bad.log" || { echo "FAIL: the message does not name rank 1"; exit 1; }
[ ! -e "$work/bad/train.pbtxt" ] && [ ! -e "$work/bad/val.pbtxt" ] ||
  { echo "FAIL: a manifest was written by a failed pack"; exit 1; }
echo PASS
