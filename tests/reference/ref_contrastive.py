"""Reference for ops/contrastive.h (float64 autograd)."""
import torch
import torch.nn.functional as F


def compute(t, a):
    out = {}
    if "x" in t:
        x = t["x"].clone().requires_grad_(True)
        y = F.normalize(x, dim=-1)
        y.backward(t["dy"])
        out.update(y=y, dx=x.grad)
    if "logits" in t:
        logits = t["logits"].clone().requires_grad_(True)
        bi, bt = logits.shape
        offset = int(a["offset"])
        z = -torch.ones(bi, bt, dtype=logits.dtype)
        z[torch.arange(bi), offset + torch.arange(bi)] = 1
        loss = -F.logsigmoid(z * (logits + float(a["bias"]))).sum() / bi
        (loss * float(a["dloss"])).backward()
        out.update(loss=loss.reshape(1), dlogits=logits.grad)
    return out
