"""Reference for ops/adamw.h: torch.optim.AdamW in float64 over several steps.

Inputs per case: p0 (N), grads (STEPS, N), optional mask (N, 1 = decay). The parameter is split
into two leaf tensors by the mask, one per param group (weight_decay = wd and 0), which is how a
PyTorch user excludes biases and norms; the results are scattered back to N elements.
"""
import torch


def compute(t, a):
    p0, grads = t["p0"], t["grads"]
    n = p0.numel()
    decay = t["mask"] != 0 if "mask" in t else torch.ones(n, dtype=torch.bool)
    scale = float(a["grad_scale"])
    groups, index = [], []
    for chosen, wd in ((decay, float(a["wd"])), (~decay, 0.0)):
        idx = chosen.nonzero().flatten()
        if idx.numel() == 0:
            continue
        groups.append({"params": [torch.nn.Parameter(p0[idx].clone())], "weight_decay": wd})
        index.append(idx)
    opt = torch.optim.AdamW(groups, lr=float(a["lr"]),
                            betas=(float(a["beta1"]), float(a["beta2"])), eps=float(a["eps"]))
    for s in range(grads.shape[0]):
        for group, idx in zip(groups, index):
            group["params"][0].grad = grads[s][idx] * scale
        opt.step()
    out = {k: torch.zeros(n, dtype=torch.float64) for k in ("p", "m", "v")}
    for group, idx in zip(groups, index):
        param = group["params"][0]
        state = opt.state[param]
        out["p"][idx] = param.detach()
        out["m"][idx] = state["exp_avg"]
        out["v"][idx] = state["exp_avg_sq"]
    out["delta"] = out["p"] - p0
    return out
