"""Reference for ops/matmul.h (matmul, linear forward/backward, f32 <-> bf16 conversion).

Each case has attr "kind". bf16 cases get inputs already rounded to bf16 by the test, so the
float64 reference sees exactly the values the kernel multiplies.
"""
import torch


def _matmul(t, a):
    x, y = t["a"], t["b"]
    if a["trans_a"] == "1":
        x = x.transpose(-1, -2)
    if a["trans_b"] == "1":
        y = y.transpose(-1, -2)
    return {"out": float(a["alpha"]) * (x @ y) + float(a["beta"]) * t["out0"]}


def _linear(t, a):
    x = t["x"].clone().requires_grad_(True)
    w = t["w"].clone().requires_grad_(True)
    b = t["b"].clone().requires_grad_(True) if "b" in t else None
    y = torch.nn.functional.linear(x, w, b)
    y.backward(t["dy"])
    out = {"y": y, "dx": x.grad, "dw": t["dw0"] + w.grad}
    if b is not None:
        out["db"] = t["db0"] + b.grad
    return out


def _convert(t, a):
    return {"rounded": t["src"].float().to(torch.bfloat16).float()}


def compute(t, a):
    return {"matmul": _matmul, "linear": _linear, "convert": _convert}[a["kind"]](t, a)
