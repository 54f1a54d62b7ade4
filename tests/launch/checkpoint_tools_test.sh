#!/bin/bash
# tessera export and tessera inspect on a checkpoint written by 4 ranks as dp 2 x tp 2 through
# launch/mpirun.sh: the safetensors file holds every parameter whole under its global name, equal
# to the checkpoint's pieces assembled independently with h5py (and loadable by torch);
# inspect verifies every checksum, and after one flipped byte in a stored chunk it fails naming
# the tensor.
source "$(dirname "$0")/lib.sh"
dir=$(new_dir ckpt-tools)
run=$dir/run
cd "$src"
timeout 240 env TESSERA_BIN="$bin" launch/mpirun.sh -n 4 --run-dir "$run" configs/clip_tiny.pbtxt \
  --set parallel.tensor_parallel=2 --set train.steps=2 --set checkpoint.every_steps=2 --quiet ||
  fail "training run failed"
step=$run/checkpoints/$(cat "$run/checkpoints/latest")
"$bin" export --checkpoint "$run" --format safetensors --out "$dir/model.safetensors" ||
  fail "export failed"
protoc -I"$src/proto" --python_out="$dir" "$src/proto/checkpoint.proto" "$src/proto/config.proto" ||
  fail "protoc failed"
/usr/bin/python3 "$src/tests/launch/export_check.py" "$step" "$dir/model.safetensors" "$dir" ||
  fail "the export differs from the checkpoint"

"$bin" inspect "$run" >"$dir/inspect.out" || { cat "$dir/inspect.out"; fail "inspect of a good checkpoint failed"; }
grep -q 'written by world 4 = dp 2 x tp 2' "$dir/inspect.out" || fail "inspect does not show the layout"
grep -q '^verified: commit marker and every checksum of 255 tensors' "$dir/inspect.out" ||
  fail "inspect did not verify all 255 tensors: $(tail -1 "$dir/inspect.out")"
# A tensor split by tp is stored in 2 pieces.
awk '$1 == "param" && $5 != -1 && $6 == 2 {found = 1} END {exit !found}' "$dir/inspect.out" ||
  fail "inspect lists no tp-split tensor stored in 2 pieces"

# Flip one byte inside the first chunk of one stored tensor (in a copy).
cp -r "$step" "$dir/bad"
victim=$(/usr/bin/python3 - "$dir/bad" <<'PY'
import sys, h5py
path = sys.argv[1] + "/rank_00001.h5"
with h5py.File(path, "r") as f:
    name = sorted(n for n in f if n.startswith("param:"))[0]
    offset = f[name].id.get_chunk_info(0).byte_offset
with open(path, "r+b") as f:
    f.seek(offset + 5)
    b = f.read(1)
    f.seek(offset + 5)
    f.write(bytes([b[0] ^ 0x10]))
print(name.split(":")[1])
PY
) || fail "could not corrupt the copy"
status=0
"$bin" inspect "$dir/bad" >"$dir/bad.out" 2>"$dir/bad.err" || status=$?
cat "$dir/bad.err"
[ $status = 1 ] || fail "inspect of a corrupted checkpoint exited $status, want 1"
grep -E "^  param +$victim .*FAILED" "$dir/bad.out" || fail "inspect does not flag tensor $victim"
grep -A1 -E "^  param +$victim " "$dir/bad.out" | tail -1 | grep -q 'rank_00001.h5' ||
  fail "the error for $victim does not name rank_00001.h5"
! "$bin" export --checkpoint "$dir/bad" --out "$dir/bad.safetensors" 2>"$dir/export.err" ||
  fail "export of a corrupted checkpoint succeeded"
cat "$dir/export.err"
[ ! -e "$dir/bad.safetensors" ] || fail "export of a corrupted checkpoint left a file"
rm -rf "$dir"
echo PASS
