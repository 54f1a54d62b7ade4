#!/bin/bash
# tessera export and tessera inspect on a checkpoint written by 4 ranks as dp 2 x tp 2 through
# launch/mpirun.sh: the safetensors file holds every parameter whole under its global name, equal
# to the checkpoint's pieces assembled independently with h5py (and loadable by torch);
# inspect verifies every checksum, and after one flipped byte in a stored chunk it fails naming
# the tensor. export --weights: a dp 2 x tp 2 ZeRO-1 run with an EMA of the weights exports the
# saved EMA bitwise by default and with --weights ema, the raw parameters with --weights raw
# (and the two differ); a run without an EMA refuses --weights ema. The same for the state dicts of
# other libraries, --format open_clip (that CLIP run) and --format timm (a ViT classifier run laid
# out alike): each tensor equals the saved EMA, or with --weights raw the saved parameters,
# bitwise under state_dict_export_check.py's own name mapping.
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

# --weights (eval/load.h resolve_weights): the run above saved no EMA.
! "$bin" export --checkpoint "$run" --weights ema --out "$dir/none.safetensors" \
  2>"$dir/noema.err" || fail "export --weights ema of a run without an EMA succeeded"
grep -q "holds no EMA of the weights" "$dir/noema.err" || fail "no-EMA error: $(cat "$dir/noema.err")"
! "$bin" export --checkpoint "$run" --weights best --out "$dir/none.safetensors" \
  2>"$dir/best.err" || fail "export --weights best succeeded"
grep -q "\-\-weights must be ema, raw or auto, got 'best'" "$dir/best.err" ||
  fail "bad --weights error: $(cat "$dir/best.err")"
# An EMA sharded by ZeRO-1 over dp and split by tp, assembled from its pieces (pre_norm: a
# CLIPModel, for --format hf).
ema_run=$dir/ema_run
timeout 240 env TESSERA_BIN="$bin" launch/mpirun.sh -n 4 --run-dir "$ema_run" \
  configs/clip_tiny.pbtxt --set parallel.tensor_parallel=2 --set parallel.zero_stage=1 \
  --set model.clip.image.pre_norm=true \
  --set train.steps=3 --set checkpoint.every_steps=3 --set train.ema_decay=0.9 --quiet ||
  fail "training run with an EMA failed"
ema_step=$ema_run/checkpoints/$(cat "$ema_run/checkpoints/latest")
"$bin" export --checkpoint "$ema_run" --out "$dir/auto.safetensors" || fail "export (auto) failed"
"$bin" export --checkpoint "$ema_run" --weights ema --out "$dir/ema.safetensors" ||
  fail "export --weights ema failed"
"$bin" export --checkpoint "$ema_run" --weights raw --out "$dir/raw.safetensors" ||
  fail "export --weights raw failed"
for f in auto ema; do
  /usr/bin/python3 "$src/tests/launch/export_check.py" "$ema_step" "$dir/$f.safetensors" "$dir" ema ||
    fail "export ($f) differs from the saved EMA"
done
/usr/bin/python3 "$src/tests/launch/export_check.py" "$ema_step" "$dir/raw.safetensors" "$dir" param ||
  fail "export --weights raw differs from the saved parameters"
cmp -s "$dir/ema.safetensors" "$dir/raw.safetensors" && fail "EMA and raw exports are identical"
"$bin" export --checkpoint "$ema_run" --format hf --weights ema --out "$dir/hf_ema" >/dev/null ||
  fail "export --format hf --weights ema failed"
"$bin" export --checkpoint "$ema_run" --format hf --weights raw --out "$dir/hf_raw" >/dev/null ||
  fail "export --format hf --weights raw failed"
cmp -s "$dir/hf_ema/model.safetensors" "$dir/hf_raw/model.safetensors" &&
  fail "hf exports of the EMA and the raw weights are identical"
vit_run=$dir/vit_ema_run
timeout 240 env TESSERA_BIN="$bin" launch/mpirun.sh -n 4 --run-dir "$vit_run" \
  configs/vit_tiny.pbtxt --set parallel.tensor_parallel=2 --set parallel.zero_stage=1 \
  --set train.steps=3 --set checkpoint.every_steps=3 --set train.ema_decay=0.9 --quiet ||
  fail "ViT training run with an EMA failed"
vit_step=$vit_run/checkpoints/$(cat "$vit_run/checkpoints/latest")
for case in "open_clip $ema_run $ema_step" "timm $vit_run $vit_step"; do
  read -r format run_dir step_dir <<<"$case"
  for w in ema:ema raw:param; do
    "$bin" export --checkpoint "$run_dir" --format "$format" --weights "${w%%:*}" \
      --out "$dir/${format}_${w%%:*}.safetensors" >/dev/null ||
      fail "export --format $format --weights ${w%%:*} failed"
    /usr/bin/python3 "$src/tests/launch/state_dict_export_check.py" "$step_dir" \
      "$dir/${format}_${w%%:*}.safetensors" "$format" "$dir" "${w##*:}" ||
      fail "export --format $format --weights ${w%%:*} differs from the saved ${w##*:} tensors"
  done
done
rm -rf "$dir"
echo PASS
