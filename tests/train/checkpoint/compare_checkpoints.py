"""Compares two checkpoint step directories written with the same layout, bit for bit, with h5py
(an independent reader of the HDF5 files): every rank file, every dataset (parameters and Adam
moments). Exit status 1 and the differing datasets on a mismatch."""
import glob
import os
import sys

import h5py
import numpy as np


def datasets(step_dir):
    out = {}
    for path in sorted(glob.glob(os.path.join(step_dir, "rank_*.h5"))):
        with h5py.File(path, "r") as f:
            for name in f.keys():
                out[(os.path.basename(path), name)] = f[name][()]
    return out


a, b = datasets(sys.argv[1]), datasets(sys.argv[2])
if not a:
    sys.exit(f"{sys.argv[1]}: no rank files")
if sorted(a) != sorted(b):
    sys.exit(f"different datasets: {sorted(set(a) ^ set(b))[:5]}")
bad = [k for k in a if a[k].shape != b[k].shape or
       not np.array_equal(a[k].view(np.uint32), b[k].view(np.uint32))]
if bad:
    sys.exit(f"{len(bad)} of {len(a)} datasets differ, e.g. {bad[:3]}")
print(f"{len(a)} datasets bitwise equal: {sys.argv[1]} == {sys.argv[2]}")
