"""Reference for models::Dit (float64 autograd).

Inputs: every parameter by its global name, "images", "labels" (after the label drop),
"timesteps", "noise"; for the sampler also "sample_noise" and "sample_labels". Attrs: n_layers,
n_heads, patch, n_classes, schedule ("linear"/"cosine"), steps (diffusion steps), activation
(a torch_models.ACTIVATIONS name; default "gelu_tanh"), and for the
sampler ddim_steps, guidance and clip_denoised ("1" clamps each step's x0 to [-1, 1]; default
"0"). Returns the loss, the noise prediction "eps" at the batch's x_t,
every parameter's gradient ("grad.NAME") and, when asked, "samples".
"""
import torch_models

DATA = ("images", "labels", "timesteps", "noise", "sample_noise", "sample_labels")


def compute(t, a):
    params = {k: v.clone().requires_grad_(True) for k, v in t.items() if k not in DATA}
    L, H, P = int(a["n_layers"]), int(a["n_heads"]), int(a["patch"])
    alpha_bar = torch_models.dit_alpha_bar(a["schedule"], int(a["steps"]))
    act = torch_models.ACTIVATIONS[a.get("activation", "gelu_tanh")]
    out = {}
    if "images" in t:
        loss = torch_models.dit_loss(params, t["images"], t["labels"], t["timesteps"], t["noise"],
                                     alpha_bar, L, H, P, act)
        loss.backward()
        out["loss"] = loss.reshape(1)
        for name, p in params.items():
            out["grad." + name] = p.grad
    if "sample_noise" in t:
        out["samples"] = torch_models.dit_ddim(
            params, t["sample_noise"], t["sample_labels"], float(a["guidance"]),
            int(a["ddim_steps"]), alpha_bar, int(a["n_classes"]), L, H, P,
            clip_denoised=a.get("clip_denoised", "0") == "1", act=act)
    return out
