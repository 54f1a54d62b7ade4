"""Reference for ops/cross_entropy.h's SoftTargets: label smoothing (PyTorch's own
F.cross_entropy(label_smoothing=...)) and two-label mixing (mixup/CutMix targets built as timm does:
lam * smoothed onehot(a) + (1 - lam) * smoothed onehot(b), scored by -sum(y * log_softmax)).
Rows whose target is ignore_index are left out of the mean and get zero gradient; a padded row
(valid_cols) scores only its first valid_cols columns. Gradients through autograd.
"""
import torch
import torch.nn.functional as F


def compute(t, a):
    ignore = int(a["ignore_index"])
    dloss = float(a["dloss"])
    eps = float(a["smoothing"])
    valid = int(a.get("valid_cols", "-1"))
    full = t["logits"]
    cols = full.shape[-1] if valid < 0 else valid
    logits = full[:, :cols].clone().requires_grad_(True)
    targets = t["targets"]
    keep = targets != ignore
    dlogits = torch.zeros_like(full)
    if "mix_targets" not in t:
        # PyTorch's label smoothing, the semantics tessera promises.
        loss = F.cross_entropy(logits, targets, ignore_index=ignore, label_smoothing=eps)
    else:
        lam = t["weights"][keep].unsqueeze(1)
        off = eps / cols
        on = 1.0 - eps + off
        ya = torch.full((int(keep.sum()), cols), off, dtype=full.dtype)
        ya.scatter_(1, targets[keep].unsqueeze(1), on)
        yb = torch.full((int(keep.sum()), cols), off, dtype=full.dtype)
        yb.scatter_(1, t["mix_targets"][keep].unsqueeze(1), on)
        y = lam * ya + (1 - lam) * yb
        loss = torch.sum(-y * F.log_softmax(logits[keep], dim=-1), dim=-1).mean()
    (loss * dloss).backward()
    dlogits[:, :cols] = logits.grad
    return {"loss": loss.reshape(1), "dlogits": dlogits}
