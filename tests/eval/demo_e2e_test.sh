#!/usr/bin/env bash
# End-to-end (label slow): ./scripts/demo (the README's main job) at given step counts. It packs
# the demo data (reused when present) and runs the default two-stage demo on 2 MPI ranks: a ViT
# classifier on the labels (RUN/pretrain), then CLIP with that trunk as its image tower's
# starting point, fine-tuned with a fresh text tower (RUN), then scripts/demo_eval. This checks
# what a newcomer is promised: both stages ran with the seed asked for, the image tower was loaded
# from the first stage and trains (nothing frozen), checkpoints, metrics.jsonl with train and eval
# records, TensorBoard events (read by the tensorboard package), PNG curves, and eval.json, made
# from the EMA of the CLIP stage's weights, whose zero-shot top-1 on the val split is at least
# BAR x chance (1 / 22 categories) and above the majority class (always answering the largest
# category, 0.287): issue 17's goal, both, since a near-constant predictor reaches the majority
# alone after 20 steps. README "The demo" has the measured seeds.
# Usage: demo_e2e_test.sh SOURCE_DIR [STEPS] [PRETRAIN_STEPS] [SEED] [BAR]   (the binary under
# test must be SOURCE/build/tessera, which the demo scripts call)
set -euo pipefail
src="$1"
steps="${2:-400}"
pretrain_steps="${3:-600}"
seed="${4:-2}"
bar="${5:-5}"
cd "$src"
[ -x build/tessera ] || { echo "FAIL: $src/build/tessera is missing (./scripts/build)"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run="$work/run"
# The README's command itself (setup and build are no-ops here: packages present, binary built).
status=0
./scripts/demo --steps "$steps" --pretrain-steps "$pretrain_steps" --seed "$seed" \
  --run-dir "$run" > "$work/demo.log" 2>&1 || status=$?
[ $status -eq 0 ] || { tail -40 "$work/demo.log"; echo "FAIL: ./scripts/demo exited $status"; exit 1; }
last=$(tail -1 "$work/demo.log")
sed -n '/demo: evaluating/,$p' "$work/demo.log"
[ "$last" = "$run" ] || { echo "FAIL: the demo's last line is '$last', not the run dir"; exit 1; }
[ -f "$run/checkpoints/latest" ] || { echo "FAIL: no checkpoints/latest"; exit 1; }
[ -f "$run/pretrain/checkpoints/latest" ] || { echo "FAIL: no pretrain/checkpoints/latest"; exit 1; }
grep -q "^init: 42 parameters from $run/pretrain/checkpoints/step_0*$pretrain_steps (step $pretrain_steps, vit)" \
  "$work/demo.log" || { echo "FAIL: the CLIP stage did not load the pretrained ViT trunk"; exit 1; }
! grep -q "^frozen (train.freeze)" "$work/demo.log" ||
  { echo "FAIL: the CLIP stage froze parameters; the default demo fine-tunes them all"; exit 1; }
for cfg in "$run/pretrain/config.pbtxt" "$run/config.pbtxt"; do
  grep -Eq "^ *seed: $seed\b" "$cfg" || { echo "FAIL: $cfg does not have train.seed $seed"; exit 1; }
done
[ -d "$run/checkpoints/$(cat "$run/checkpoints/latest")" ] ||
  { echo "FAIL: checkpoints/latest names no directory"; exit 1; }
for f in loss lr; do
  /usr/bin/python3 tests/eval/png_info.py "$run/plots/$f.png" > /dev/null ||
    { echo "FAIL: plots/$f.png is not a valid PNG"; exit 1; }
done
events=$(ls "$run"/tb/events.out.tfevents.* | head -1)
.venv/bin/python tests/train/read_tensorboard.py "$events" > "$work/tb.json" ||
  { echo "FAIL: tensorboard cannot read $events (run scripts/setup)"; exit 1; }
/usr/bin/python3 - "$run" "$work/tb.json" "$steps" "$bar" <<'PY'
import json, sys
run, tb, steps, bar = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3]), float(sys.argv[4])
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
train = [r for r in rows if "kind" not in r]
evals = [r for r in rows if r.get("kind") == "eval"]
assert train and train[-1]["step"] == steps, "metrics.jsonl lacks the last training step"
assert evals and evals[-1]["step"] == steps, f"no eval record at the last step: {evals}"
for tag in ("train/loss", "train/lr", "eval/loss"):
    assert tag in tb["scalars"], f"TensorBoard lacks {tag}: {sorted(tb['scalars'])}"
e = json.load(open(f"{run}/eval.json"))
print(f"zero_shot_top1 {e['zero_shot_top1']:.4f}  chance_top1 {e['chance_top1']:.4f}  "
      f"majority_top1 {e['majority_top1']:.4f}  ({e['n_samples']} val samples)")
assert e["family"] == "clip" and e["n_classes"] == 22, e
assert e["split"].endswith("val.pbtxt"), e["split"]
assert e["weights"] == "ema", f"the demo evaluated the {e['weights']} weights, not the EMA"
assert e["zero_shot_top1"] >= bar * e["chance_top1"], f"zero-shot top-1 below {bar}x chance"
assert e["zero_shot_top1"] > e["majority_top1"], "zero-shot top-1 not above the majority class"
print("demo_e2e_test: all checks passed")
PY
