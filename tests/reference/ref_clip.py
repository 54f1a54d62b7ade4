"""Reference for models::Clip: loss, normalised embeddings and every parameter's gradient
(float64 autograd).

Inputs: every parameter by its global name, "images", "text", "text_eot"; attrs: patch,
image_layers, image_heads, text_layers, text_heads, siglip ("1"/"0"), max_logit_scale.
"""
import torch_models

BATCH = ("images", "text", "text_eot")


def compute(t, a):
    params = {k: v.clone().requires_grad_(True) for k, v in t.items() if k not in BATCH}
    loss, img, txt = torch_models.clip_loss(
        params, t["images"], t["text"], t["text_eot"], int(a["patch"]), int(a["image_layers"]),
        int(a["image_heads"]), int(a["text_layers"]), int(a["text_heads"]), a["siglip"] == "1",
        float(a["max_logit_scale"]))
    loss.backward()
    out = {"loss": loss.reshape(1), "image_embeddings": img, "text_embeddings": txt}
    for name, p in params.items():
        out["grad." + name] = p.grad
    return out
