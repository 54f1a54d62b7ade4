"""Reference for models::Vit: loss, logits and every parameter's gradient (float64 autograd).

Inputs: every parameter by its global name, "images" and "labels"; attrs: patch, n_layers,
n_heads.
"""
import torch_models

BATCH = ("images", "labels")


def compute(t, a):
    params = {k: v.clone().requires_grad_(True) for k, v in t.items() if k not in BATCH}
    loss, logits = torch_models.vit_loss(params, t["images"], t["labels"], int(a["patch"]),
                                         int(a["n_layers"]), int(a["n_heads"]))
    loss.backward()
    out = {"loss": loss.reshape(1), "logits": logits}
    for name, p in params.items():
        out["grad." + name] = p.grad
    return out
