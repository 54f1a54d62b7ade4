"""Reference for models/clip_distillation.h on one process: the student's and the teacher's
image-text logits (each model's own scale, SigLIP also its bias) over T, and
  INFONCE: T^2 * (kl_div(rows) + kl_div(columns)) / 2 with kl_div(log_softmax(student / T),
           softmax(teacher / T), 'batchmean') over the rows and over the transposed matrices;
  SIGLIP:  T^2 * sum of every pair's binary KL(sigmoid(teacher / T) || sigmoid(student / T)) / B.
Gradients of scale * KD w.r.t. the student's embeddings, scale t and bias, by autograd."""
import torch
import torch.nn.functional as F


def compute(t, a):
    T = float(a["temperature"])
    scale = float(a["scale"])
    siglip = a["siglip"] == "1"
    img = t["img"].double().requires_grad_(True)
    txt = t["txt"].double().requires_grad_(True)
    st = torch.tensor(float(a["t"]), dtype=torch.float64, requires_grad=True)
    sb = torch.tensor(float(a["bias"]), dtype=torch.float64, requires_grad=True)
    tt = float(a["teacher_t"])
    tb = float(a["teacher_bias"])
    s = st * img @ txt.T
    te = tt * t["teacher_img"].double() @ t["teacher_txt"].double().T
    if siglip:
        zs = (s + sb) / T
        zt = (te + tb) / T
        p = torch.sigmoid(zt)
        kl = p * (F.logsigmoid(zt) - F.logsigmoid(zs)) + (1 - p) * (F.logsigmoid(-zt) - F.logsigmoid(-zs))
        kd = T * T * kl.sum() / s.shape[0]
    else:
        def direction(x, y):
            return F.kl_div(F.log_softmax(x / T, dim=-1), F.softmax(y / T, dim=-1),
                            reduction="batchmean")
        kd = T * T * 0.5 * (direction(s, te) + direction(s.T, te.T))
    (kd * scale).backward()
    return {"kd": kd.reshape(1).float(), "dimg": img.grad.float(), "dtxt": txt.grad.float(),
            "dt": st.grad.reshape(1).float(),
            "dbias": (sb.grad if sb.grad is not None else torch.zeros(())).reshape(1).float()}
