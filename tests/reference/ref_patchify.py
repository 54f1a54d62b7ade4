"""Reference for ops/patchify.h: patches in (py, px, c) order, row-major over patches, and the
inverse (DiT's unpatchify einsum)."""


def compute(t, a):
    p = int(a["p"])
    x = t["images"]
    B, H, W, C = x.shape
    patches = (x.reshape(B, H // p, p, W // p, p, C).permute(0, 1, 3, 2, 4, 5)
               .reshape(B, (H // p) * (W // p), p * p * C))
    y = t["patches"]
    images = (y.reshape(B, H // p, W // p, p, p, C).permute(0, 1, 3, 2, 4, 5)
              .reshape(B, H, W, C))
    return {"patches_out": patches, "images_out": images}
