#!/usr/bin/env bash
# The eval / plot / generate / sample verbs of the tessera binary: --help, their outputs on
# checkpoints of short synthetic GPT and DiT runs (PNG files checked by tests/eval/png_info.py,
# independent of libpng), and the bad uses with their messages; `tessera train`'s command line.
# Usage: cli_test.sh TESSERA_BINARY SOURCE_DIR
set -uo pipefail
tessera="$1"
src="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# expect_error "message part" command...: exit status 1 and the message on stderr.
expect_error() {
  local want="$1"; shift
  "$@" > "$work/out" 2> "$work/err"
  local rc=$?
  [ $rc -eq 1 ] || fail "$* exited $rc, expected 1"
  grep -qF -- "$want" "$work/err" || fail "$*: stderr lacks '$want': $(cat "$work/err")"
}

for verb in train eval plot generate sample; do
  "$tessera" $verb --help > "$work/help" || fail "tessera $verb --help exited non-zero"
  grep -q "usage: tessera $verb" "$work/help" || fail "tessera $verb --help prints no usage"
done
"$tessera" --help | grep -q "not yet built" && fail "the verb table still marks a verb as not yet built"

export TESSERA_NUM_THREADS=1
"$tessera" train --config "$src/configs/gpt_tiny.pbtxt" --set train.steps=3 \
  --set data.global_batch_size=4 --run-dir "$work/gpt" --quiet || fail "gpt training"
"$tessera" train --config "$src/configs/dit_tiny.pbtxt" --set train.steps=3 \
  --set data.global_batch_size=4 --run-dir "$work/dit" --quiet || fail "dit training"

# eval: table on stdout, JSON at --out and by default RUN_DIR/eval.json.
"$tessera" eval --checkpoint "$work/gpt" --max-samples 8 --batch 4 --out "$work/gpt.json" \
  > "$work/table" || fail "eval gpt"
grep -q "perplexity" "$work/table" || fail "eval table lacks perplexity"
/usr/bin/python3 - "$work/gpt.json" <<'PY' || fail "eval gpt JSON"
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r["family"] == "gpt" and r["step"] == 3, r
assert abs(r["perplexity"] - math.exp(r["val_loss"])) < 1e-9 * r["perplexity"], r
PY
"$tessera" eval --checkpoint "$work/dit" --max-samples 8 --batch 4 > /dev/null || fail "eval dit"
/usr/bin/python3 -c "
import json; r = json.load(open('$work/dit/eval.json'))
assert r['family'] == 'dit' and 'loss_t0_249' in r and 'loss_t750_999' in r, r" ||
  fail "eval dit JSON at RUN_DIR/eval.json"

# generate: prompt ids -> the prompt, '|', then --tokens new ids.
out=$("$tessera" generate --checkpoint "$work/gpt" --prompt "1 2 3" --greedy --tokens 4) ||
  fail "generate --greedy"
[ "$(echo "$out" | sed 's/.*|//' | wc -w)" -eq 4 ] || fail "generate printed '$out'"
"$tessera" generate --checkpoint "$work/gpt" --prompt "1 2 3" --top-k 5 --seed 2 > /dev/null ||
  fail "generate --top-k"

# sample: 2 classes x 3 images of 16 px, magnified 4x: 4 + 3 * (64 + 4) wide,
# 4 + 2 * (64 + 14 + 4) high (eval/generate.h image_grid).
"$tessera" sample --checkpoint "$work/dit" --out "$work/grid.png" --classes 0,1 --per-class 3 \
  --steps 4 > /dev/null || fail "sample"
size=$(/usr/bin/python3 "$src/tests/eval/png_info.py" "$work/grid.png") || fail "grid.png invalid"
[ "$size" = "208 168" ] || fail "grid.png is $size, expected 208 168"

# --device cpu: the same results as the default (the model on the named device, batches from the
# host); eval's JSON equal but for nothing, generate's greedy continuation identical.
"$tessera" eval --checkpoint "$work/gpt" --max-samples 8 --batch 4 --out "$work/gpt_cpu.json" \
  --device cpu > /dev/null || fail "eval --device cpu"
cmp -s "$work/gpt.json" "$work/gpt_cpu.json" || fail "eval --device cpu differs from the default"
out_cpu=$("$tessera" generate --checkpoint "$work/gpt" --prompt "1 2 3" --greedy --tokens 4 \
  --device cpu) || fail "generate --device cpu"
[ "$out_cpu" = "$out" ] || fail "generate --device cpu printed '$out_cpu', the default '$out'"
"$tessera" sample --checkpoint "$work/dit" --out "$work/grid_cpu.png" --classes 0,1 \
  --per-class 3 --steps 4 --device cpu > /dev/null || fail "sample --device cpu"
cmp -s "$work/grid.png" "$work/grid_cpu.png" || fail "sample --device cpu differs from the default"

# --weights: a DiT run with an EMA of the weights evaluates and samples it by default, the raw
# weights on request (different numbers and images); a run without one refuses --weights ema.
"$tessera" train --config "$src/configs/dit_tiny.pbtxt" --set train.steps=3 \
  --set data.global_batch_size=4 --set train.ema_decay=0.9 --set optim.lr=1e-2 \
  --run-dir "$work/dit_ema" --quiet || fail "dit training with an EMA"
"$tessera" eval --checkpoint "$work/dit_ema" --max-samples 8 --batch 4 --out "$work/ema.json" \
  > /dev/null || fail "eval of the EMA"
"$tessera" eval --checkpoint "$work/dit_ema" --max-samples 8 --batch 4 --out "$work/raw.json" \
  --weights raw > /dev/null || fail "eval --weights raw"
/usr/bin/python3 - "$work/ema.json" "$work/raw.json" <<'PY' || fail "eval --weights JSON"
import json, sys
e, r = (json.load(open(p)) for p in sys.argv[1:])
assert e["weights"] == "ema" and r["weights"] == "raw", (e, r)
assert e["val_loss"] != r["val_loss"], (e["val_loss"], r["val_loss"])
PY
"$tessera" sample --checkpoint "$work/dit_ema" --out "$work/grid_ema.png" --classes 0 \
  --per-class 2 --steps 4 --weights ema > /dev/null || fail "sample --weights ema"
"$tessera" sample --checkpoint "$work/dit_ema" --out "$work/grid_raw.png" --classes 0 \
  --per-class 2 --steps 4 --weights raw > /dev/null || fail "sample --weights raw"
cmp -s "$work/grid_ema.png" "$work/grid_raw.png" && fail "EMA and raw samples are identical"
# --no-clip: plain DDIM (each step's x0 not clamped to [-1, 1]; models/dit.h), other samples.
"$tessera" sample --checkpoint "$work/dit_ema" --out "$work/grid_noclip.png" --classes 0 \
  --per-class 2 --steps 4 --weights ema --no-clip | grep -q "no clipping" || fail "sample --no-clip"
cmp -s "$work/grid_ema.png" "$work/grid_noclip.png" && fail "--no-clip changed nothing"
# A run that froze part of the model (train.freeze) saves no average for what it froze: the EMA
# evaluates with those parameters as saved (they never moved).
"$tessera" train --config "$src/configs/dit_tiny.pbtxt" --set train.steps=3 \
  --set data.global_batch_size=4 --set train.ema_decay=0.9 --set optim.lr=1e-2 \
  --set 'train.freeze=blocks.0.*' --run-dir "$work/dit_ema_frozen" --quiet ||
  fail "dit training with an EMA and train.freeze"
"$tessera" eval --checkpoint "$work/dit_ema_frozen" --max-samples 8 --batch 4 \
  --out "$work/ema_frozen.json" > /dev/null || fail "eval of the EMA of a run with train.freeze"
"$tessera" eval --checkpoint "$work/dit_ema_frozen" --max-samples 8 --batch 4 \
  --out "$work/raw_frozen.json" --weights raw > /dev/null || fail "eval --weights raw (frozen)"
/usr/bin/python3 - "$work/ema_frozen.json" "$work/raw_frozen.json" <<'PY' ||
import json, sys
e, r = (json.load(open(p)) for p in sys.argv[1:])
assert e["weights"] == "ema" and e["val_loss"] != r["val_loss"], (e, r)
PY
  fail "eval --weights with train.freeze: JSON"
expect_error "holds no EMA of the weights" \
  "$tessera" eval --checkpoint "$work/gpt" --weights ema
expect_error "--weights must be ema, raw or auto, got 'best'" \
  "$tessera" sample --checkpoint "$work/dit_ema" --out "$work/x.png" --weights best

# plot: three charts from the GPT run (loss, lr; no eval records -> no eval.png).
"$tessera" plot "$work/gpt" --out "$work/plots" > "$work/plotted" || fail "plot"
for f in loss lr; do
  /usr/bin/python3 "$src/tests/eval/png_info.py" "$work/plots/$f.png" > /dev/null ||
    fail "$f.png invalid"
done

# Bad use.
expect_error "is a dit checkpoint; tessera generate needs gpt" \
  "$tessera" generate --checkpoint "$work/dit" --prompt "1"
expect_error "is a gpt checkpoint; tessera sample needs dit" \
  "$tessera" sample --checkpoint "$work/gpt" --out "$work/x.png"
expect_error "nope.pbtxt: no such manifest" \
  "$tessera" eval --checkpoint "$work/gpt" --split "$work/nope.pbtxt"
expect_error "$work/missing" "$tessera" eval --checkpoint "$work/missing"
expect_error "is not a token id" "$tessera" generate --checkpoint "$work/gpt" --prompt "one"
expect_error "metrics.jsonl" "$tessera" plot "$work/missing"
expect_error "--checkpoint CKPT is required" "$tessera" eval
expect_error "unknown option --bogus" "$tessera" eval --bogus
expect_error "unexpected argument 'stray'" "$tessera" eval --checkpoint "$work/gpt" stray
# train: flags through tools/cli_args.h like every verb; each usage error names the flag or
# argument, exits 1 and trains nothing.
expect_error "--config FILE is required" "$tessera" train --run-dir "$work/t"
expect_error "unknown option --bogus" "$tessera" train --config "$work/none.pbtxt" --bogus
expect_error "unknown option -c" "$tessera" train -c "$work/none.pbtxt"
expect_error "unexpected argument 'stray'" "$tessera" train --config "$work/none.pbtxt" stray
expect_error "--run-dir needs a value" "$tessera" train --config "$work/none.pbtxt" --run-dir
expect_error "--quiet takes no value" "$tessera" train --config "$work/none.pbtxt" --quiet=yes
[ -e "$work/t" ] && fail "a train usage error created its run directory"
expect_error "--device 'gpu' is not cpu, cuda or cuda:N" \
  "$tessera" eval --checkpoint "$work/gpt" --device gpu
# No machine has 100 GPUs; a CPU-only build says it has no CUDA support. Either way: an error.
expect_error "--device cuda:99:" "$tessera" generate --checkpoint "$work/gpt" --prompt "1" \
  --device cuda:99
expect_error "--device cuda:99:" "$tessera" sample --checkpoint "$work/dit" --out "$work/x.png" \
  --device cuda:99

# The CPU kernel path: info names it, TESSERA_CPU_ISA forces a lower one (oneDNN's bf16 GEMM then
# falls back to f32 compute below AVX-512), a bad value is an error naming the variable.
"$tessera" info > "$work/info" || fail "tessera info exited non-zero"
grep -qE "^cpu kernels (avx512|avx2|baseline) " "$work/info" || fail "info names no CPU path: $(cat "$work/info")"
TESSERA_CPU_ISA=baseline "$tessera" info > "$work/info" || fail "TESSERA_CPU_ISA=baseline info failed"
grep -q "^cpu kernels baseline (TESSERA_CPU_ISA" "$work/info" || fail "baseline not forced: $(cat "$work/info")"
grep -q "bf16 matmul f32 sgemm on bf16 operands" "$work/info" || fail "no bf16 fallback below AVX-512"
TESSERA_CPU_ISA=avx9 expect_error "TESSERA_CPU_ISA=avx9: unknown instruction-set path" "$tessera" info

if [ $failures -eq 0 ]; then echo "cli_test: all checks passed"; else echo "cli_test: $failures failed"; fi
[ $failures -eq 0 ]
