"""PyTorch models of tessera's four families, same shapes as a tessera config (the peer).

Written the way a PyTorch user tuning for CPU speed would write them in torch 1.13: nn.Linear
everywhere (addmm on BLAS), a fused qkv projection, and attention as explicit
softmax(Q K^T / sqrt(D)) V with batched matmuls (1.13 has no scaled_dot_product_attention; the
formulation used is among the fastest measured: causal scores as one baddbmm onto an additive
-inf mask, 25-29 ms fwd+bwd for B=8, H=6, T=256, D=64 on 2 threads, vs 30 ms for masked_fill
on the scores; copying q, k contiguous first was within noise). Each forward returns the loss.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu(x):
    return F.gelu(x, approximate="tanh")


def attention(qkv, n_heads, causal_mask):
    """qkv (B, T, 3C) -> (B, T, C). causal_mask: (T, T) additive -inf mask or None."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    D = C // n_heads
    q, k, v = qkv.view(B, T, 3, n_heads, D).permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, D)
    q = q * (1.0 / math.sqrt(D))
    if causal_mask is None:
        s = q @ k.transpose(-1, -2)  # (B, H, T, T)
    else:
        s = torch.baddbmm(causal_mask, q.reshape(B * n_heads, T, D),
                          k.reshape(B * n_heads, T, D).transpose(1, 2)).view(B, n_heads, T, T)
    o = torch.softmax(s, dim=-1) @ v  # (B, H, T, D)
    return o.transpose(1, 2).reshape(B, T, C)


def causal_mask(T, device=None):
    return torch.full((T, T), float("-inf"), device=device).triu(1)


class Attention(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x, mask):
        return self.proj(attention(self.qkv(x), self.n_heads, mask))


class Mlp(nn.Module):
    def __init__(self, d, r):
        super().__init__()
        self.fc = nn.Linear(d, r * d)
        self.proj = nn.Linear(r * d, d)

    def forward(self, x):
        return self.proj(gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-LN block: x + attn(ln1(x)); x + mlp(ln2(x))."""

    def __init__(self, t):
        super().__init__()
        d = t.d_model
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, t.n_heads)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = Mlp(d, t.mlp_ratio)

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


def _init(module, std=0.02):
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)


class Gpt(nn.Module):
    """GPT-2: token + learned positions, causal pre-LN blocks, ln_f, tied (or own) LM head."""

    def __init__(self, g):
        super().__init__()
        d = g.transformer.d_model
        # The same padded vocabulary as tessera (GptConfig.vocab_pad_multiple, as Megatron and
        # llm.c pad GPT-2's 50257 to a multiple of 128): tables of Vp rows, loss over the first V.
        m = max(1, g.vocab_pad_multiple)
        self.vocab, vp = g.vocab_size, (g.vocab_size + m - 1) // m * m
        self.tok_emb = nn.Embedding(vp, d)
        self.pos_emb = nn.Embedding(g.context, d)
        self.blocks = nn.ModuleList(Block(g.transformer) for _ in range(g.transformer.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = None if g.tie_embedding else nn.Linear(d, vp, bias=False)
        _init(self)

    def forward(self, tokens, targets):
        B, T = tokens.shape
        x = self.tok_emb(tokens) + self.pos_emb.weight[:T]
        mask = causal_mask(T)
        for b in self.blocks:
            x = b(x, mask)
        w = self.tok_emb.weight if self.head is None else self.head.weight
        logits = F.linear(self.ln_f(x), w)  # (B, T, Vp)
        if logits.shape[-1] != self.vocab:
            logits = logits[..., : self.vocab]  # (B, T, V): padded ids are never targets
        return F.cross_entropy(logits.reshape(B * T, -1), targets.view(-1))


class ImageTower(nn.Module):
    """ViT trunk: Linear on flattened patches, cls token, learned positions, blocks, ln_f.
    Returns the cls token's final feature (B, d)."""

    def __init__(self, v):
        super().__init__()
        d = v.transformer.d_model
        self.p, n = v.patch, (v.image_size // v.patch) ** 2
        self.patch = nn.Linear(v.patch * v.patch * v.channels, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.blocks = nn.ModuleList(Block(v.transformer) for _ in range(v.transformer.n_layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, images):  # (B, H, W, C) channels-last pixels
        B, H, W, C = images.shape
        p = self.p
        x = images.view(B, H // p, p, W // p, p, C).transpose(2, 3).reshape(B, -1, p * p * C)
        x = self.patch(x)  # (B, n, d)
        x = torch.cat([self.cls.expand(B, -1, -1), x], dim=1) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.ln_f(x[:, 0])


class Vit(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.tower = ImageTower(v)
        self.head = nn.Linear(v.transformer.d_model, v.n_classes)
        _init(self)

    def forward(self, images, labels):
        return F.cross_entropy(self.head(self.tower(images)), labels)


class TextTower(nn.Module):
    """Causal text transformer pooled at the end-of-text position (B, d)."""

    def __init__(self, t):
        super().__init__()
        d = t.transformer.d_model
        self.tok_emb = nn.Embedding(t.vocab_size, d)
        self.pos_emb = nn.Embedding(t.context, d)
        self.blocks = nn.ModuleList(Block(t.transformer) for _ in range(t.transformer.n_layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, tokens, eot):
        B, T = tokens.shape
        x = self.tok_emb(tokens) + self.pos_emb.weight[:T]
        mask = causal_mask(T)
        for b in self.blocks:
            x = b(x, mask)
        return self.ln_f(x[torch.arange(B), eot])


class Clip(nn.Module):
    """CLIP / SigLIP: both towers, linear projections (no bias), L2-normalised embeddings,
    learnable log logit scale (clamped as CLIP does), symmetric InfoNCE or sigmoid loss."""

    def __init__(self, c):
        super().__init__()
        self.image = ImageTower(c.image)
        self.text = TextTower(c.text)
        self.image_proj = nn.Linear(c.image.transformer.d_model, c.embed_dim, bias=False)
        self.text_proj = nn.Linear(c.text.transformer.d_model, c.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(c.init_logit_scale)))
        self.max_logit_scale = c.max_logit_scale
        self.siglip = c.loss == c.SIGLIP
        if self.siglip:
            self.logit_bias = nn.Parameter(torch.tensor(float(c.init_logit_bias)))
        _init(self)

    def forward(self, images, tokens, eot):
        zi = F.normalize(self.image_proj(self.image(images)), dim=-1)  # (B, E)
        zt = F.normalize(self.text_proj(self.text(tokens, eot)), dim=-1)  # (B, E)
        scale = self.logit_scale.clamp(max=self.max_logit_scale).exp()
        logits = scale * zi @ zt.t()  # (B, B)
        B = logits.shape[0]
        if self.siglip:
            labels = 2 * torch.eye(B) - 1
            return -F.logsigmoid(labels * (logits + self.logit_bias)).sum() / B
        target = torch.arange(B)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def sincos_2d(d, side):
    """DiT's fixed 2-D sine-cosine position embedding (side*side, d)."""
    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
        out = pos.reshape(-1, 1).double() * omega
        return torch.cat([out.sin(), out.cos()], dim=1)
    g = torch.arange(side)
    gy, gx = torch.meshgrid(g, g, indexing="ij")
    return torch.cat([one_d(d // 2, gy), one_d(d // 2, gx)], dim=1).float()


def timestep_features(t, dim=256, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class AdaLnBlock(nn.Module):
    """DiT adaLN-Zero block: LNs without affine, (shift, scale, gate) x 2 from SiLU(c)."""

    def __init__(self, t):
        super().__init__()
        d = t.d_model
        self.ln1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, t.n_heads)
        self.ln2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(d, t.mlp_ratio)
        self.ada = nn.Linear(d, 6 * d)

    def forward(self, x, c):
        s1, sc1, g1, s2, sc2, g2 = self.ada(F.silu(c)).chunk(6, dim=-1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.ln1(x), s1, sc1), None)
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.ln2(x), s2, sc2))


class Dit(nn.Module):
    """DiT: patch Linear + fixed sin-cos positions, timestep MLP + class embedding (with a null
    class for classifier-free guidance), adaLN-Zero blocks, adaLN final layer; predicts eps."""

    def __init__(self, x):
        super().__init__()
        t = x.transformer
        d = t.d_model
        self.p, self.side = x.patch, x.image_size // x.patch
        pdim = x.patch * x.patch * x.channels
        self.patch = nn.Linear(pdim, d)
        self.register_buffer("pos", sincos_2d(d, self.side))
        self.t_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.n_classes, self.class_dropout = x.n_classes, x.class_dropout
        self.y_emb = nn.Embedding(x.n_classes + 1, d) if x.n_classes > 0 else None
        self.blocks = nn.ModuleList(AdaLnBlock(t) for _ in range(t.n_layers))
        self.ln_f = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_f = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, pdim)
        _init(self)
        for m in [b.ada for b in self.blocks] + [self.ada_f, self.out]:  # adaLN-Zero
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        betas = torch.linspace(1e-4, 0.02, x.diffusion_steps, dtype=torch.float64)
        if x.beta_schedule == x.COSINE:
            s = 0.008
            f = torch.cos((torch.arange(x.diffusion_steps + 1) / x.diffusion_steps + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        self.register_buffer("abar", torch.cumprod(1 - betas, 0).float())

    def forward(self, x0, labels, t, noise):  # x0 (B, H, W, C), labels (B,), t (B,), noise like x0
        B, H, W, C = x0.shape
        a = self.abar[t].view(B, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        p = self.p
        x = xt.view(B, H // p, p, W // p, p, C).transpose(2, 3).reshape(B, -1, p * p * C)
        x = self.patch(x) + self.pos  # (B, n, d)
        c = self.t_mlp(timestep_features(t))
        if self.y_emb is not None:
            drop = torch.rand(B) < self.class_dropout
            c = c + self.y_emb(torch.where(drop, torch.full_like(labels, self.n_classes), labels))
        for b in self.blocks:
            x = b(x, c)
        shift, scale = self.ada_f(F.silu(c)).chunk(2, dim=-1)
        eps = self.out(modulate(self.ln_f(x), shift, scale))  # (B, n, p*p*C)
        target = noise.view(B, H // p, p, W // p, p, C).transpose(2, 3).reshape(B, -1, p * p * C)
        return F.mse_loss(eps, target)


def build(cfg):
    m = cfg.model
    kind = m.WhichOneof("kind")
    return {"gpt": Gpt, "vit": Vit, "clip": Clip, "dit": Dit}[kind](getattr(m, kind))
