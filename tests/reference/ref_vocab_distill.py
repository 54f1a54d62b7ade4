"""Reference for models/distillation.h vocab_distillation_term: a language model's per-token
T^2 * KL(softmax(teacher / T) || softmax(student / T)) over the first `vocab` columns (a padded
vocabulary's other columns take no part and get zero gradient), averaged over the rows whose target
is not ignore_index, and its gradient w.r.t. the student logits times `scale`, by autograd."""
import torch
import torch.nn.functional as F


def compute(t, a):
    T = float(a["temperature"])
    scale = float(a["scale"])
    vocab = int(a["vocab"])
    ignore = int(a["ignore_index"])
    full = t["student"].double()
    s = full[:, :vocab].clone().requires_grad_(True)
    teacher = t["teacher"].double()[:, :vocab]
    keep = t["targets"].long() != ignore
    kl = F.kl_div(F.log_softmax(s / T, dim=-1), F.log_softmax(teacher / T, dim=-1),
                  reduction="none", log_target=True).sum(-1)
    kd = (kl[keep].sum() / keep.sum()) * T * T
    (kd * scale).backward()
    grad = torch.zeros_like(full)
    grad[:, :vocab] = s.grad
    return {"kd": kd.reshape(1).float(), "grad": grad.float()}
