"""Reference for ops/attention.h with dropout on the probabilities, given the mask: the explicit
(softmax(q k^T / sqrt(D) + causal mask) * factor) v in float64, factor (B, H, T, T) holding
1 / (1 - p) for kept and 0 for dropped probabilities (what scaled_dot_product_attention's dropout
does with its own mask); lse of the undropped scores; gradients by torch autograd."""
import math

import torch


def compute(t, a):
    heads = int(a["n_heads"])
    causal = a["causal"] == "1"
    qkv = t["qkv"].double().clone().requires_grad_(True)
    factor = t["factor"].double()
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
    out = ((torch.softmax(s, dim=-1) * factor) @ v).transpose(1, 2).reshape(B, T, C)
    out.backward(t["dout"].double())
    return {"out": out.float(), "lse": lse.float(), "dqkv": qkv.grad.float()}
