"""Reference for ops/cross_entropy.h: mean softmax cross-entropy with ignore_index and its
gradient via autograd. Where every target is ignored, tessera defines the loss as 0 and the
gradient as zero (PyTorch gives NaN), so the reference does the same. With valid_cols >= 0 (a
padded vocabulary) the loss is PyTorch's cross-entropy of the first valid_cols columns, and the
gradient of the other columns is zero.
"""
import torch
import torch.nn.functional as F


def compute(t, a):
    ignore = int(a["ignore_index"])
    dloss = float(a["dloss"])
    valid = int(a.get("valid_cols", "-1"))
    full = t["logits"]
    cols = full.shape[-1] if valid < 0 else valid
    logits = full[:, :cols].clone().requires_grad_(True)
    targets = t["targets"]
    lse = torch.logsumexp(full[:, :cols], dim=-1)
    dlogits = torch.zeros_like(full)
    if (targets != ignore).sum() == 0:
        return {"loss": torch.zeros(1, dtype=torch.float64), "lse": lse, "dlogits": dlogits}
    loss = F.cross_entropy(logits, targets, ignore_index=ignore, reduction="mean")
    (loss * dloss).backward()
    dlogits[:, :cols] = logits.grad
    return {"loss": loss.reshape(1), "lse": lse, "dlogits": dlogits}
