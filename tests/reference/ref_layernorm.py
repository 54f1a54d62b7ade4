"""Reference for ops/layernorm.h: forward outputs and every backward output via autograd.

dweight/dbias accumulate, so the case passes the pre-filled grads (dweight0, dbias0) and the
expected result is prefill + gradient.
"""
import torch
import torch.nn.functional as F


def compute(t, a):
    eps = float(a["eps"])
    x = t["x"].clone().requires_grad_(True)
    w = t["weight"].clone().requires_grad_(True)
    b = t["bias"].clone().requires_grad_(True)
    c = x.shape[-1]
    y = F.layer_norm(x, (c,), w, b, eps)
    y.backward(t["dy"])
    xd = t["x"]
    mean = xd.mean(-1).reshape(-1)
    rstd = 1.0 / torch.sqrt(xd.var(-1, unbiased=False) + eps).reshape(-1)
    return {
        "y": y,
        "mean": mean,
        "rstd": rstd,
        "dx": x.grad,
        "dweight": t["dweight0"] + w.grad,
        "dbias": t["dbias0"] + b.grad,
    }
