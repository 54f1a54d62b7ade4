"""Checks that two packs of the same inputs (DIR_A, DIR_B) hold the same samples: per split,
the samples of the shards in manifest order (pixels, captions, labels, tokens) are equal, and
the manifests agree on counts, labels and tokenizer. Reads the shards with h5py, independently
of tessera's reader. --unique-captions: also check that no caption appears twice (the test's
inputs have unique captions, so a sample packed twice shows)."""
import os
import re
import sys

import h5py
import numpy as np


def manifest(path):
    text = open(path).read()
    return {
        "shards": re.findall(r'path: "([^"]+)"', text),
        "num_samples": int(re.search(r"^num_samples: (\d+)", text, re.M).group(1)),
        "labels": re.findall(r'label_names: "([^"]*)"', text),
        "tokenizer": re.findall(r'^tokenizer: "([^"]*)"', text, re.M),
    }


ARRAYS = ("images", "labels", "tokens", "token_lengths")


def samples(d, split):
    m = manifest(os.path.join(d, split + ".pbtxt"))
    out = {k: [] for k in ARRAYS}
    out["captions"] = []
    for s in m["shards"]:
        with h5py.File(os.path.join(d, s), "r") as f:
            for k in ARRAYS:  # labels and tokens exist only when the inputs have them
                if k in f:
                    out[k].append(f[k][...])
            off, cap = f["caption_offsets"][...], f["captions"][...].tobytes()
            out["captions"] += [cap[off[i]:off[i + 1]] for i in range(len(off) - 1)]
    for k in ARRAYS:
        out[k] = np.concatenate(out[k]) if out[k] else None
    return m, out


unique = "--unique-captions" in sys.argv[1:]
a, b = [x for x in sys.argv[1:] if x != "--unique-captions"]
total = 0
for split in ("train", "val"):
    ma, sa = samples(a, split)
    mb, sb = samples(b, split)
    for k in ("num_samples", "labels", "tokenizer"):
        assert ma[k] == mb[k], f"{split}: manifest {k} differs: {ma[k]} vs {mb[k]}"
    assert len(sa["captions"]) == ma["num_samples"], f"{split}: shards hold {len(sa['captions'])}"
    assert sa["captions"] == sb["captions"], f"{split}: captions differ"
    assert sa["images"] is not None and len(sa["images"]) == ma["num_samples"], f"{split}: images"
    for k in ARRAYS:
        assert (sa[k] is None) == (sb[k] is None), f"{split}: {k} in only one of them"
        assert sa[k] is None or np.array_equal(sa[k], sb[k]), f"{split}: {k} differ"
    if unique:
        assert len(set(sa["captions"])) == len(sa["captions"]), f"{split}: a sample appears twice"
    total += ma["num_samples"]
print(f"same {total} samples in {a} and {b}")
