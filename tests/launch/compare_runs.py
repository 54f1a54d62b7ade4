"""Asserts two run directories trained identically: usage compare_runs.py RUN_A RUN_B STEPS

Every step 1..STEPS is logged in both metrics.jsonl files with bitwise equal loss and grad norm
(a resumed run appends; the last record of a step counts), and the latest checkpoints of both
hold the same datasets with bitwise equal values (parameters and Adam moments, read with h5py).
Both runs must have used the same layout (the files are compared rank by rank)."""
import glob
import json
import os
import sys

import h5py
import numpy as np

a, b, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])


def logged(run):
    out = {}
    for line in open(os.path.join(run, "metrics.jsonl")):
        r = json.loads(line)
        if "loss" in r and r.get("kind") != "eval":
            out[r["step"]] = (r["loss"], r["grad_norm"])
    return out


la, lb = logged(a), logged(b)
assert sorted(la) == list(range(1, steps + 1)), f"{a}: logged steps {sorted(la)}"
assert sorted(lb) == list(range(1, steps + 1)), f"{b}: logged steps {sorted(lb)}"
diff = [s for s in la if la[s] != lb[s]]
assert not diff, f"losses differ from step {diff[0]}: {la[diff[0]]} vs {lb[diff[0]]}"


def tensors(run):
    step = open(os.path.join(run, "checkpoints", "latest")).read().strip()
    out = {}
    for path in sorted(glob.glob(os.path.join(run, "checkpoints", step, "*.h5"))):
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: out.__setitem__(os.path.basename(path) + ":" + n, o[()])
                         if isinstance(o, h5py.Dataset) else None)
    return step, out


sa, ta = tensors(a)
sb, tb = tensors(b)
assert sa == sb, f"latest checkpoints differ: {sa} vs {sb}"
assert ta.keys() == tb.keys() and ta, (len(ta), len(tb))
bad = [k for k in ta if not np.array_equal(ta[k], tb[k])]
assert not bad, f"{len(bad)} datasets differ, e.g. {bad[:3]}"
print(f"equal: {steps} steps of loss/grad norm, {len(ta)} datasets of {sa}")
