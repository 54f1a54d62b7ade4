"""Reference for ops/attention.h: the explicit softmax(q k^T / sqrt(D) + mask) v in float64,
gradients by torch autograd."""
import math

import torch


def attention(qkv, dout, heads, causal, factor=None):
    """qkv (B, T, 3C), dout (B, T, C); factor (B, H, T, T) multiplies the probabilities
    (attention dropout's kept/1-p mask) when given. Returns out, lse and dqkv."""
    qkv = qkv.clone().requires_grad_(True)
    B, T, C3 = qkv.shape
    C = C3 // 3
    D = C // heads

    def split_heads(x):  # (B, T, C) -> (B, H, T, D)
        return x.reshape(B, T, heads, D).transpose(1, 2)

    q, k, v = (split_heads(x) for x in qkv.split(C, dim=-1))
    s = q @ k.transpose(-1, -2) / math.sqrt(D)
    if causal:
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        s = s.masked_fill(future, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # (B, H, T)
    p = torch.softmax(s, dim=-1)
    if factor is not None:
        p = p * factor
    out = (p @ v).transpose(1, 2).reshape(B, T, C)
    out.backward(dout)
    return out, lse, qkv.grad


def compute(t, a):
    out, lse, dqkv = attention(t["qkv"], t["dout"], int(a["n_heads"]), a["causal"] == "1")
    return {"out": out, "lse": lse, "dqkv": dqkv}
