"""Reference for ops/modulate.h (DiT adaLN): y = x * (1 + scale) + shift over T, and every
gradient via autograd (all written, so no pre-filled grads)."""


def compute(t, a):
    x = t["x"].clone().requires_grad_(True)
    shift = t["shift"].clone().requires_grad_(True)
    scale = t["scale"].clone().requires_grad_(True)
    y = x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
    y.backward(t["dy"])
    return {"y": y, "dx": x.grad, "dshift": shift.grad, "dscale": scale.grad}
