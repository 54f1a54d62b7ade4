#!/bin/bash
# The command line on encoded shards (format version 2): tessera pack --max-side, tessera inspect
# (+ --sheet), a few training steps of every image model (ViT 32 px, CLIP and SigLIP 64 px, DiT
# 16 px) from the same pack, and tessera eval of the ViT checkpoint on the val split.
# Usage: encoded_cli_test.sh TESSERA SOURCE_DIR
set -euo pipefail
tessera=$1
src=$2
py=${TESSERA_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" "$src/tests/data_pipeline/pack_mpi_make_inputs.py" "$work/in"
"$tessera" tokenizer train --input "$work/in/captions.txt" --out "$work/tok" --vocab 60 >/dev/null
"$tessera" pack --index "$work/in/index.jsonl" --tokenizer "$work/tok.model" --context 12 \
  --max-side 40 --quality 90 --samples-per-shard 16 --val-fraction 0.3 --out "$work/enc" \
  >"$work/pack.log"
grep -q '^format_version: 2' "$work/enc/train.pbtxt" || { echo "FAIL: manifest not v2"; exit 1; }
grep -q '^resolution: 40' "$work/enc/train.pbtxt" || { echo "FAIL: max side not recorded"; exit 1; }
# --resolution sizes pixels; with the encoded flags it is refused, not ignored.
if "$tessera" pack --index "$work/in/index.jsonl" --max-side 40 --resolution 16 \
     --out "$work/x" 2>"$work/x.err"; then
  echo "FAIL: --resolution with --max-side accepted"; exit 1
fi
grep -q -- '--resolution' "$work/x.err" || { echo "FAIL: no reason given"; cat "$work/x.err"; exit 1; }

"$tessera" inspect "$work/enc/train-00000.h5" --sheet "$work/sheet.png" --count 9 >"$work/inspect.log"
grep -q 'format_version 2' "$work/inspect.log" || { cat "$work/inspect.log"; exit 1; }
grep -q 'image_bytes' "$work/inspect.log" || { cat "$work/inspect.log"; exit 1; }
# 9 tiles of 96 px in 3 columns with 2 px borders: 3 * 96 + 4 * 2 = 296.
[ "$("$py" "$src/tests/eval/png_info.py" "$work/sheet.png")" = "296 296" ] ||
  { echo "FAIL: sheet size $("$py" "$src/tests/eval/png_info.py" "$work/sheet.png")"; exit 1; }
"$tessera" inspect "$work/enc/train.pbtxt" --verify >/dev/null

train() {  # name config extra --set ...
  local name=$1 cfg=$2
  shift 2
  "$tessera" train --config "$src/configs/$cfg.pbtxt" --run-dir "$work/run_$name" \
    --set data.source="$work/enc/train.pbtxt" --set train.steps=3 --set log.every_steps=1 \
    --set data.global_batch_size=8 --set checkpoint.every_steps=3 --set eval.every_steps=3 \
    --set eval.batches=1 "$@" >"$work/$name.log" 2>&1 ||
    { tail -20 "$work/$name.log"; echo "FAIL: $name training"; exit 1; }
  # 3 training records and an evaluation on the val split beside the manifest.
  [ "$(grep -vc '"kind"' "$work/run_$name/metrics.jsonl")" = 3 ] || { echo "FAIL: $name"; exit 1; }
  grep -q '"kind":"eval"' "$work/run_$name/metrics.jsonl" || { echo "FAIL: $name eval"; exit 1; }
}
train vit vit_tiny --set model.vit.n_classes=3 --set data.augment=true
train clip clip_tiny --set model.clip.text.vocab_size=60 --set model.clip.text.context=12
train siglip siglip_tiny --set model.clip.text.vocab_size=60 --set model.clip.text.context=12
train dit dit_tiny --set model.dit.n_classes=3
"$tessera" eval --checkpoint "$work/run_vit" --split val --out "$work/eval.json" >/dev/null
"$py" - "$work/eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["n_samples"] > 0, r
print("eval ok:", {k: r[k] for k in ("n_samples", "top1") if k in r})
PY
echo "PASS"
