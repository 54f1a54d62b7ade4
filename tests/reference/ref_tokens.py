"""Reference for ops/tokens.h: patchify as a reshape/permute of the NHWC images."""


def compute(t, a):
    x = t["images"]
    B, H, W, C = x.shape
    p = int(a["patch"])
    patches = x.reshape(B, H // p, p, W // p, p, C).permute(0, 1, 3, 2, 4, 5)
    return {"patches": patches.reshape(B, (H // p) * (W // p), p * p * C)}
