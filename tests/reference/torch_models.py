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
