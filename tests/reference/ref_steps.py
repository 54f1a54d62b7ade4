"""Reference for 5 (or N) AdamW steps of any tessera model (float64 autograd + torch.optim.AdamW).

Inputs: "p.NAME" for every parameter's initial value; "bK.FIELD" for the batch of step K.
Attrs: kind (gpt/vit/clip/dit), steps, lr, beta1, beta2, eps, weight_decay, grad_clip, decay
(comma-separated names of the parameters that decay), and the model's shape attributes.
Returns "p.NAME" after the steps and "loss.K" for every step.
"""
import torch

import torch_models


def loss_fn(kind, p, b, a):
    if kind == "gpt":
        return torch_models.gpt_loss(p, b["tokens"], b["targets"], int(a["n_layers"]),
                                     int(a["n_heads"]), a["tied"] == "1")[0]
    if kind == "vit":
        return torch_models.vit_loss(p, b["images"], b["labels"], int(a["patch"]),
                                     int(a["n_layers"]), int(a["n_heads"]))[0]
    if kind == "clip":
        return torch_models.clip_loss(p, b["images"], b["text"], b["text_eot"], int(a["patch"]),
                                      int(a["n_layers"]), int(a["n_heads"]), int(a["n_layers"]),
                                      int(a["n_heads"]), a["siglip"] == "1",
                                      float(a["max_logit_scale"]))[0]
    if kind == "dit":
        alpha_bar = torch_models.dit_alpha_bar(a["schedule"], int(a["diffusion_steps"]))
        return torch_models.dit_loss(p, b["images"], b["labels"], b["timesteps"], b["noise"],
                                     alpha_bar, int(a["n_layers"]), int(a["n_heads"]),
                                     int(a["patch"]))
    raise ValueError(kind)


def compute(t, a):
    params = {k[2:]: v.clone().requires_grad_(True) for k, v in t.items() if k.startswith("p.")}
    steps = int(a["steps"])
    batches = [{k.split(".", 1)[1]: v for k, v in t.items() if k.startswith(f"b{s}.")}
               for s in range(steps)]
    decay = set(a["decay"].split(",")) if a["decay"] else set()
    groups = [{"params": [p for n, p in params.items() if n in decay],
               "weight_decay": float(a["weight_decay"])},
              {"params": [p for n, p in params.items() if n not in decay], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=float(a["lr"]), betas=(float(a["beta1"]), float(a["beta2"])),
                            eps=float(a["eps"]))
    out = {}
    for s in range(steps):
        opt.zero_grad()
        loss = loss_fn(a["kind"], params, batches[s], a)
        loss.backward()
        if float(a["grad_clip"]) > 0:
            torch.nn.utils.clip_grad_norm_(list(params.values()), float(a["grad_clip"]))
        opt.step()
        out[f"loss.{s}"] = loss.detach().reshape(1)
    for n, p in params.items():
        out["p." + n] = p.detach()
    return out
