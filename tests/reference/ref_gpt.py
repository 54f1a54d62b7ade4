"""Reference for models::Gpt: loss, logits and every parameter's gradient (float64 autograd).

Inputs: every parameter by its global name, "tokens" and "targets"; attrs: n_layers, n_heads,
tied ("1"/"0").
"""
import torch_models

BATCH = ("tokens", "targets")


def compute(t, a):
    params = {k: v.clone().requires_grad_(True) for k, v in t.items() if k not in BATCH}
    loss, logits = torch_models.gpt_loss(params, t["tokens"], t["targets"], int(a["n_layers"]),
                                         int(a["n_heads"]), a["tied"] == "1")
    loss.backward()
    out = {"loss": loss.reshape(1), "logits": logits}
    for name, p in params.items():
        out["grad." + name] = p.grad
    return out
