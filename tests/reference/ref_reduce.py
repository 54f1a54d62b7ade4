"""Reference for ops/reduce.h, in float64.

The harness returns float32 tensors, too coarse for a double result, so each result r comes back
as two floats: hi = float(r) and lo = float(r - hi); hi + lo carries about 48 bits of r.
"""
import torch


def _split(name, r):
    hi = r.float().double()
    return {name + "_hi": hi.reshape(1), name + "_lo": (r - hi).reshape(1)}


def compute(t, a):
    x = t["x"].reshape(-1)
    out = {}
    out.update(_split("sum", x.sum()))
    out.update(_split("mean", x.mean()))
    out.update(_split("sum_squares", (x * x).sum()))
    out.update(_split("l2_norm", torch.linalg.vector_norm(x)))
    return out
