"""Reference for models/distillation.h: T^2 * kl_div(log_softmax(s / T), softmax(t / T),
reduction='batchmean') and its gradient w.r.t. the student logits s, times `scale`, by autograd."""
import torch
import torch.nn.functional as F


def compute(t, a):
    T = float(a["temperature"])
    scale = float(a["scale"])
    s = t["student"].double().requires_grad_(True)
    teacher = t["teacher"].double()
    kd = F.kl_div(F.log_softmax(s / T, dim=-1), F.softmax(teacher / T, dim=-1),
                  reduction="batchmean") * T * T
    (kd * scale).backward()
    return {"kd": kd.reshape(1).float(), "grad": s.grad.float()}
