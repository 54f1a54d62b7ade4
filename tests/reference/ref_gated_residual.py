"""Reference for ops/gated_residual.h (DiT adaLN-Zero): y = x + gate * h over T, and the
gradients of gate and h via autograd (written, so no pre-filled grads)."""


def compute(t, a):
    x = t["x"].clone().requires_grad_(True)
    gate = t["gate"].clone().requires_grad_(True)
    h = t["h"].clone().requires_grad_(True)
    y = x + gate.unsqueeze(1) * h
    y.backward(t["dy"])
    return {"y": y, "dx": x.grad, "dgate": gate.grad, "dh": h.grad}
