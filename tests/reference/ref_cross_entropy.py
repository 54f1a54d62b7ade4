"""Reference for ops/cross_entropy.h: mean softmax cross-entropy with ignore_index and its
gradient via autograd. Where every target is ignored, tessera defines the loss as 0 and the
gradient as zero (PyTorch gives NaN), so the reference does the same.
"""
import torch
import torch.nn.functional as F


def compute(t, a):
    ignore = int(a["ignore_index"])
    dloss = float(a["dloss"])
    logits = t["logits"].clone().requires_grad_(True)
    targets = t["targets"]
    lse = torch.logsumexp(t["logits"], dim=-1)
    if (targets != ignore).sum() == 0:
        return {"loss": torch.zeros(1, dtype=torch.float64), "lse": lse,
                "dlogits": torch.zeros_like(t["logits"])}
    loss = F.cross_entropy(logits, targets, ignore_index=ignore, reduction="mean")
    (loss * dloss).backward()
    return {"loss": loss.reshape(1), "lse": lse, "dlogits": logits.grad}
