"""Reference for train/mixing.h: mixup and CutMix of image pairs (2k, 2k+1) given each pair's
draw (kind 0 none / 1 mixup / 2 CutMix, lambda as drawn, CutMix box centre), written from the
papers' definitions in the form timm uses: mixup x' = lam x + (1 - lam) x_partner; CutMix pastes
the partner's box of side int(S * sqrt(1 - lam)) centred at (cy, cx), clipped, and re-weights lam by
the box's area. Returns the mixed images and each image's weight on its own label.
"""
import math

import torch


def compute(t, a):
    images = t["images"].clone()  # (B, S, S, C)
    kind = t["kind"].tolist()
    lam = t["lam"].tolist()
    cy = t["cy"].tolist()
    cx = t["cx"].tolist()
    B, S = images.shape[0], images.shape[1]
    out = images.clone()
    weight = torch.ones(B, dtype=torch.float32)
    for k in range(B // 2):
        i, j = 2 * k, 2 * k + 1
        if kind[k] == 1:
            lk = torch.tensor(lam[k], dtype=torch.float32)
            out[i] = lk * images[i] + (1 - lk) * images[j]
            out[j] = lk * images[j] + (1 - lk) * images[i]
            weight[i] = weight[j] = lam[k]
        elif kind[k] == 2:
            cut = int(S * math.sqrt(1.0 - lam[k]))
            y0 = min(max(cy[k] - cut // 2, 0), S)
            y1 = min(max(cy[k] + cut // 2, 0), S)
            x0 = min(max(cx[k] - cut // 2, 0), S)
            x1 = min(max(cx[k] + cut // 2, 0), S)
            out[i, y0:y1, x0:x1] = images[j, y0:y1, x0:x1]
            out[j, y0:y1, x0:x1] = images[i, y0:y1, x0:x1]
            weight[i] = weight[j] = 1.0 - (y1 - y0) * (x1 - x0) / float(S * S)
    return {"images": out, "weight": weight}
