"""Faithful PyTorch versions of tessera's layers and models, for equivalence tests.

Parameters carry tessera's global names; a fused QKV weight of global shape (3, C, C) is read as
the (3C, C) weight of one nn.Linear. Everything runs in the dtype of the tensors given (the tests
use float64).
"""
import math

import torch
import torch.nn.functional as F


def gelu(x):
    return F.gelu(x, approximate="tanh")


# TransformerConfig.activation by name (the attr value the reference scripts take): tessera's
# default tanh GELU, the exact (erf) GELU, and OpenAI CLIP's QuickGELU.
ACTIVATIONS = {
    "gelu_tanh": gelu,
    "gelu_erf": lambda x: F.gelu(x, approximate="none"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
}


def layernorm(p, name, x):
    return F.layer_norm(x, x.shape[-1:], p[name + ".weight"], p[name + ".bias"], 1e-5)


def linear(p, name, x):
    w = p[name + ".weight"]
    w = w.reshape(-1, w.shape[-1])
    b = p.get(name + ".bias")
    return F.linear(x, w, None if b is None else b.reshape(-1))


def attention(p, name, x, n_heads, causal):
    B, T, C = x.shape
    D = C // n_heads
    qkv = linear(p, name + ".qkv", x)
    q, k, v = qkv.split(C, dim=-1)
    q, k, v = (t.reshape(B, T, n_heads, D).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(D)
    if causal:
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, float("-inf"))
    o = torch.softmax(s, dim=-1) @ v
    return linear(p, name + ".proj", o.transpose(1, 2).reshape(B, T, C))


def block(p, name, x, n_heads, causal):
    x = x + attention(p, name + ".attn", layernorm(p, name + ".ln1", x), n_heads, causal)
    h = layernorm(p, name + ".ln2", x)
    return x + linear(p, name + ".mlp.proj", gelu(linear(p, name + ".mlp.fc", h)))


def gpt_loss(p, tokens, targets, n_layers, n_heads, tied):
    B, T = tokens.shape
    x = p["tok_emb.weight"][tokens] + p["pos_emb.weight"][:T].unsqueeze(0)
    for i in range(n_layers):
        x = block(p, f"blocks.{i}", x, n_heads, causal=True)
    h = layernorm(p, "ln_f", x)
    head = p["tok_emb.weight"] if tied else p["head.weight"]
    logits = h @ head.t()
    loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-100)
    return loss, logits


# ---- DiT (models/dit.h) ---------------------------------------------------------------------
# Written from the paper's reference code (facebookresearch/DiT models.py, diffusion/), with
# tessera's parameter names: patch_embed, t_embed.fc1/fc2, y_embed, blocks.i.{adaln, attn, mlp},
# final.{adaln, linear}. Patches are channels-last (py, px, c); eps only (no learned sigma).


def dit_alpha_bar(schedule, steps):
    """alpha_bar (steps,) float64: "linear" (improved-DDPM's scaled DDPM betas) or "cosine"."""
    if schedule == "cosine":
        f = lambda t: math.cos((t / steps + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = [min(1 - f(i + 1) / f(i), 0.999) for i in range(steps)]
        betas = torch.tensor(betas, dtype=torch.float64)
    else:
        scale = 1000.0 / steps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def dit_timestep_embedding(t, dim=256, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    args = t.double()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def dit_pos_embed(d, g):
    """DiT's get_2d_sincos_pos_embed (numpy meshgrid: the column index comes first)."""
    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
        out = pos.reshape(-1)[:, None] * omega[None]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    gh, gw = torch.meshgrid(torch.arange(g, dtype=torch.float64),
                            torch.arange(g, dtype=torch.float64), indexing="ij")
    return torch.cat([one_d(d // 2, gw), one_d(d // 2, gh)], dim=1)  # (g*g, d)


def dit_patchify(x, p):
    B, H, W, C = x.shape
    return (x.reshape(B, H // p, p, W // p, p, C).permute(0, 1, 3, 2, 4, 5)
            .reshape(B, (H // p) * (W // p), p * p * C))


def dit_unpatchify(x, p, H, W, C):
    B = x.shape[0]
    return x.reshape(B, H // p, W // p, p, p, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)


def dit_modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def dit_block(p, name, x, c, n_heads, act=gelu):
    mod = linear(p, name + ".adaln", F.silu(c))
    shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=1)
    ln = lambda v: F.layer_norm(v, v.shape[-1:], None, None, 1e-6)  # noqa: E731
    x = x + gate1.unsqueeze(1) * attention(p, name + ".attn", dit_modulate(ln(x), shift1, scale1),
                                           n_heads, causal=False)
    h = dit_modulate(ln(x), shift2, scale2)
    return x + gate2.unsqueeze(1) * linear(p, name + ".mlp.proj",
                                           act(linear(p, name + ".mlp.fc", h)))


def dit_eps(p, x, t, y, n_layers, n_heads, patch, act=gelu):
    """Noise prediction for x_t (B, H, W, C), timesteps t (B,), labels y (B,); act: the MLPs'
    nonlinearity (an ACTIVATIONS value)."""
    B, H, W, C = x.shape
    h = linear(p, "patch_embed", dit_patchify(x, patch))
    h = h + dit_pos_embed(h.shape[-1], H // patch).to(h.dtype).unsqueeze(0)
    temb = linear(p, "t_embed.fc2",
                  F.silu(linear(p, "t_embed.fc1", dit_timestep_embedding(t).to(h.dtype))))
    c = temb + p["y_embed.weight"][y]
    for i in range(n_layers):
        h = dit_block(p, f"blocks.{i}", h, c, n_heads, act)
    shift, scale = linear(p, "final.adaln", F.silu(c)).chunk(2, dim=1)
    h = dit_modulate(F.layer_norm(h, h.shape[-1:], None, None, 1e-6), shift, scale)
    return dit_unpatchify(linear(p, "final.linear", h), patch, H, W, C)


def dit_loss(p, images, labels, t, noise, alpha_bar, n_layers, n_heads, patch, act=gelu):
    ab = alpha_bar[t].to(images.dtype).reshape(-1, 1, 1, 1)
    x_t = ab.sqrt() * images + (1 - ab).sqrt() * noise
    eps = dit_eps(p, x_t, t, labels, n_layers, n_heads, patch, act)
    return F.mse_loss(eps, noise)


def dit_ddim(p, noise, labels, guidance, steps, alpha_bar, n_classes, n_layers, n_heads, patch,
             clip_denoised=False, act=gelu):
    """DDIM (eta = 0) with classifier-free guidance; timesteps i * T // steps, descending.
    clip_denoised: the predicted x0 clamped to [-1, 1] and eps recomputed from it (improved-DDPM's
    ddim_sample with clip_denoised=True)."""
    T = alpha_bar.shape[0]
    ts = [i * T // steps for i in range(steps)]
    x = noise
    B = x.shape[0]
    null = torch.full_like(labels, n_classes)
    for i in reversed(range(steps)):
        ab = alpha_bar[ts[i]].item()
        ab_prev = alpha_bar[ts[i - 1]].item() if i > 0 else 1.0
        t = torch.full((2 * B,), ts[i], dtype=torch.long)
        e = dit_eps(p, torch.cat([x, x]), t, torch.cat([labels, null]), n_layers, n_heads, patch,
                    act)
        e_c, e_u = e[:B], e[B:]
        eps = e_u + guidance * (e_c - e_u)
        x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        if clip_denoised:
            x0 = x0.clamp(-1, 1)
            eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        x = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
    return x
def patchify(images, patch):
    """(B, H, W, C) -> (B, H/p * W/p, p*p*C), each patch flattened in (py, px, c) order."""
    B, H, W, C = images.shape
    p = patch
    x = images.reshape(B, H // p, p, W // p, p, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


def vit_features(p, prefix, images, patch, n_layers, n_heads):
    """ViT encoder: the class token's row after the final LayerNorm, (B, d)."""
    x = linear(p, prefix + "patch_embed.proj", patchify(images, patch))
    B = x.shape[0]
    cls = p[prefix + "cls_token.weight"].reshape(1, 1, -1).expand(B, 1, -1)
    x = torch.cat([cls, x], dim=1) + p[prefix + "pos_emb.weight"].unsqueeze(0)
    if prefix + "ln_pre.weight" in p:  # VitConfig.pre_norm (CLIP's pre_layrnorm)
        x = layernorm(p, prefix + "ln_pre", x)
    for i in range(n_layers):
        x = block(p, f"{prefix}blocks.{i}", x, n_heads, causal=False)
    return layernorm(p, prefix + "ln_f", x)[:, 0]


def vit_loss(p, images, labels, patch, n_layers, n_heads):
    logits = linear(p, "head", vit_features(p, "", images, patch, n_layers, n_heads))
    return F.cross_entropy(logits, labels), logits


def text_features(p, prefix, text, eot, n_layers, n_heads):
    """CLIP text encoder: ln_f's output at each row's end-of-text position, (B, d)."""
    B, L = text.shape
    x = p[prefix + "tok_emb.weight"][text] + p[prefix + "pos_emb.weight"][:L].unsqueeze(0)
    for i in range(n_layers):
        x = block(p, f"{prefix}blocks.{i}", x, n_heads, causal=True)
    return layernorm(p, prefix + "ln_f", x)[torch.arange(B), eot]


def clip_loss(p, images, text, eot, patch, image_layers, image_heads, text_layers, text_heads,
              siglip, max_logit_scale):
    """CLIP (siglip False) or SigLIP loss and the normalised embeddings."""
    img = vit_features(p, "image.", images, patch, image_layers, image_heads)
    img = F.normalize(linear(p, "image.proj", img), dim=-1)
    txt = text_features(p, "text.", text, eot, text_layers, text_heads)
    txt = F.normalize(linear(p, "text.proj", txt), dim=-1)
    t = p["logit_scale"].clamp(max=max_logit_scale).exp()
    logits = t * img @ txt.t()
    B = logits.shape[0]
    if siglip:
        z = 2 * torch.eye(B, dtype=logits.dtype) - 1
        loss = -F.logsigmoid(z * (logits + p["logit_bias"])).sum() / B
    else:
        labels = torch.arange(B)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    return loss, img, txt
