"""Independent zero-shot and retrieval metrics in numpy, on embeddings dumped by
clip_eval_test: DIR/meta.json {"n", "dim", "classes", "templates"} and raw little-endian
float32 / int32 files image.f32 (n, dim), text.f32 (n, dim), prompts.f32 (classes*templates,
dim), labels.i32 (n). Prints the metrics as JSON. Ties count against the sample (the rank is
the number of OTHER candidates scoring >= the right one), as eval/metrics.h defines it."""
import json
import sys

import numpy as np

d = sys.argv[1]
meta = json.load(open(f"{d}/meta.json"))
n, dim, k, t = meta["n"], meta["dim"], meta["classes"], meta["templates"]
img = np.fromfile(f"{d}/image.f32", dtype="<f4").reshape(n, dim).astype(np.float64)
txt = np.fromfile(f"{d}/text.f32", dtype="<f4").reshape(n, dim).astype(np.float64)
prm = np.fromfile(f"{d}/prompts.f32", dtype="<f4").reshape(k, t, dim).astype(np.float64)
labels = np.fromfile(f"{d}/labels.i32", dtype="<i4")

cls = prm.mean(axis=1)
cls /= np.linalg.norm(cls, axis=1, keepdims=True)
scores = (img @ cls.T).astype(np.float32)


def ranks(s, right):
    return np.array([(row >= row[r]).sum() - 1 for row, r in zip(s, right)])


zr = ranks(scores, labels)
sim = (img @ txt.T).astype(np.float32)
i2t = ranks(sim, np.arange(n))
t2i = ranks(sim.T, np.arange(n))
out = {
    "zero_shot_top1": float((zr < 1).mean()),
    "zero_shot_top5": float((zr < 5).mean()),
    "chance_top1": 1.0 / k,
    "majority_top1": float(np.bincount(labels, minlength=k).max() / n),
}
for name, r in (("image_to_text", i2t), ("text_to_image", t2i)):
    for kk in (1, 5, 10):
        out[f"{name}_r{kk}"] = float((r < kk).mean())
print(json.dumps(out))
