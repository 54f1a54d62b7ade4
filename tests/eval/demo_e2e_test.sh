#!/usr/bin/env bash
# End-to-end (label slow): ./scripts/demo (the README's main job) at a given step count. It
# packs the demo data (reused when present), trains CLIP (configs/clip_demo.pbtxt) on 2 MPI
# ranks, runs scripts/demo_eval; this checks what a newcomer is promised: checkpoints,
# metrics.jsonl with train and eval records, TensorBoard events (read by the tensorboard
# package), PNG curves, and eval.json whose zero-shot top-1 on the val split is at least 2x
# chance (1 / 22 categories). The goal for the full demo is 3x; 600 steps reached 2.98x
# on the agreed machine, so the test holds the clear-margin bar, not the goal.
# Usage: demo_e2e_test.sh SOURCE_DIR [STEPS]   (the binary under test must be SOURCE/build/tessera,
# which the demo scripts call)
set -euo pipefail
src="$1"
steps="${2:-600}"
cd "$src"
[ -x build/tessera ] || { echo "FAIL: $src/build/tessera is missing (./scripts/build)"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run="$work/run"
# The README's command itself (setup and build are no-ops here: packages present, binary built).
status=0
./scripts/demo --steps "$steps" --run-dir "$run" > "$work/demo.log" 2>&1 || status=$?
[ $status -eq 0 ] || { tail -40 "$work/demo.log"; echo "FAIL: ./scripts/demo exited $status"; exit 1; }
last=$(tail -1 "$work/demo.log")
sed -n '/demo: evaluating/,$p' "$work/demo.log"
[ "$last" = "$run" ] || { echo "FAIL: the demo's last line is '$last', not the run dir"; exit 1; }
[ -f "$run/checkpoints/latest" ] || { echo "FAIL: no checkpoints/latest"; exit 1; }
[ -d "$run/checkpoints/$(cat "$run/checkpoints/latest")" ] ||
  { echo "FAIL: checkpoints/latest names no directory"; exit 1; }
for f in loss lr; do
  /usr/bin/python3 tests/eval/png_info.py "$run/plots/$f.png" > /dev/null ||
    { echo "FAIL: plots/$f.png is not a valid PNG"; exit 1; }
done
events=$(ls "$run"/tb/events.out.tfevents.* | head -1)
.venv/bin/python tests/train/read_tensorboard.py "$events" > "$work/tb.json" ||
  { echo "FAIL: tensorboard cannot read $events (run scripts/setup)"; exit 1; }
/usr/bin/python3 - "$run" "$work/tb.json" "$steps" <<'PY'
import json, sys
run, tb, steps = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
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
assert e["zero_shot_top1"] >= 2 * e["chance_top1"], "zero-shot top-1 below 2x chance"
print("demo_e2e_test: all checks passed")
PY
