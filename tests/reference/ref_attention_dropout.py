"""Reference for ops/attention.h with dropout on the probabilities, given the mask: the explicit
(softmax(q k^T / sqrt(D) + causal mask) * factor) v in float64, factor (B, H, T, T) holding
1 / (1 - p) for kept and 0 for dropped probabilities (what scaled_dot_product_attention's dropout
does with its own mask); lse of the undropped scores; gradients by torch autograd."""
from ref_attention import attention


def compute(t, a):
    out, lse, dqkv = attention(t["qkv"].double(), t["dout"].double(), int(a["n_heads"]),
                               a["causal"] == "1", factor=t["factor"].double())
    return {"out": out.float(), "lse": lse.float(), "dqkv": dqkv.float()}
