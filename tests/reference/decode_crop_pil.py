"""Pillow/numpy side of tests/data_pipeline/decode_crop_test.cc: an independent decode + crop +
resize of the same bytes and the same crop boxes as data_pipeline/decode_crop.h.

  make DIR    write the test images with Pillow: JPEGs (baseline 4:2:0, progressive, 4:4:4,
              grayscale, CMYK, a large one for DCT scaling, a truncated one), PNGs (RGB,
              palette, 16-bit grayscale, RGBA, a large one) and WebPs (lossless, lossy, both
              with alpha, a large lossy one, a truncated one, an animated one, and huge.webp: a
              lossless file whose header is patched to claim 16383 x 16383).
  check DIR   read DIR/cases.txt (one case per line: file H W top left height width flip S k
              out.raw, written by the C++ test with its uint8 S x S x 3 output) and compare each
              with the reference below; print the errors; exit 1 if any exceeds its tolerance.
              Also DIR/decoded.txt if present (file H W out.raw: a whole decode_image result,
              H x W x 3), compared with Pillow's decode of the file.

Reference: Pillow decodes the whole file (alpha composited onto white and 16-bit samples keeping
their high byte, as image_decode.h documents); the image is reduced by k with k x k box means
(partial blocks average what they hold), then each output pixel samples reduced coordinate
(first + (i + 0.5) * len / S) / k - 0.5, clamped to the centres of the crop's first and last
pixels, bilinearly in float64, mirrored if flipped, rounded half up.

Tolerances (max absolute difference per channel, 0..255):
  PNG, any k: 1 (float32 vs float64 arithmetic before rounding).
  JPEG, k = 1: mean <= 0.05, max <= 3 (the region decode could differ from Pillow's whole-image
  decode in the chroma upsampling at the region's edge; measured: max 1, mean 0.000).
  WebP, whole decode: lossless 0 (exact); lossy mean <= 0.05, max <= 2 (Pillow decodes with
  the same libwebp, default fancy upsampling; measured: 0 for every file).
  WebP crops, any k: 1, as PNG (decoded whole, then the same box reduction).
  JPEG, k > 1: libjpeg's DCT-domain scaling is not a box mean of the full decode (it keeps the
  block's low frequencies; with 4:2:0 the chroma is scaled before upsampling): mean <= 1.5,
  99th percentile <= 10, max <= 40. Measured on these images: 4:4:4 and gray mean <= 0.4, max
  <= 4; 4:2:0 mean <= 1.4, p99 <= 9, max 31 (the 1-pixel dark stripes every 7 columns).
Run with Debian's /usr/bin/python3 (python3-pil, python3-numpy).
"""
import io
import os
import struct
import sys

import numpy as np
from PIL import Image


def synthetic(h, w, seed):
    """A photo-like image: gradients, discs, stripes and noise (hard and soft edges)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], axis=-1)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(10, min(h, w) / 3)
        color = rng.uniform(0, 255, 3)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = color
    img[:, ::7] = img[:, ::7] * 0.5
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make(d):
    os.makedirs(d, exist_ok=True)
    photo = Image.fromarray(synthetic(283, 397, 1))
    photo.save(f"{d}/photo.jpg", quality=90)
    photo.save(f"{d}/progressive.jpg", quality=90, progressive=True)
    photo.save(f"{d}/s444.jpg", quality=95, subsampling=0)
    photo.convert("L").save(f"{d}/gray.jpg", quality=90)
    photo.convert("CMYK").save(f"{d}/cmyk.jpg", quality=90)
    Image.fromarray(synthetic(911, 1203, 2)).save(f"{d}/big.jpg", quality=90)
    data = open(f"{d}/photo.jpg", "rb").read()
    open(f"{d}/truncated.jpg", "wb").write(data[: len(data) // 2])
    rgb = Image.fromarray(synthetic(257, 301, 3))
    rgb.save(f"{d}/rgb.png")
    rgb.quantize(colors=50).save(f"{d}/palette.png")
    g16 = (synthetic(120, 150, 4)[..., 0].astype(np.uint16) * 257 + 17).astype(np.uint16)
    Image.fromarray(g16, mode="I;16").save(f"{d}/gray16.png")
    rgba = np.dstack([synthetic(140, 90, 5), np.tile(np.linspace(0, 255, 90), (140, 1))])
    Image.fromarray(rgba.astype(np.uint8), mode="RGBA").save(f"{d}/rgba.png")
    Image.fromarray(synthetic(700, 1000, 6)).save(f"{d}/big.png")
    photo.save(f"{d}/lossless.webp", lossless=True)
    photo.save(f"{d}/lossy.webp", quality=80)
    rgba_im = Image.fromarray(rgba.astype(np.uint8), mode="RGBA")
    rgba_im.save(f"{d}/alpha_lossless.webp", lossless=True, exact=True)
    rgba_im.save(f"{d}/alpha_lossy.webp", quality=85)
    Image.fromarray(synthetic(700, 1000, 7)).save(f"{d}/big.webp", quality=85)
    data = open(f"{d}/lossy.webp", "rb").read()
    open(f"{d}/truncated.webp", "wb").write(data[: len(data) // 2])
    frames = [Image.fromarray(synthetic(40, 50, s)) for s in (8, 9)]
    frames[0].save(f"{d}/animated.webp", save_all=True, append_images=frames[1:], lossless=True)
    # VP8L header (after RIFF, WEBP, 'VP8L', chunk size, signature 0x2f): 14 bits width - 1,
    # 14 bits height - 1, alpha, version. Claim 16383 x 16383, keep alpha and version.
    data = bytearray(open(f"{d}/lossless.webp", "rb").read())
    assert data[12:16] == b"VP8L" and data[20] == 0x2F
    bits = struct.unpack("<I", data[21:25])[0]
    bits = (bits & ~((1 << 28) - 1)) | 16382 | (16382 << 14)
    data[21:25] = struct.pack("<I", bits)
    open(f"{d}/huge.webp", "wb").write(bytes(data))


def load_rgb(path):
    im = Image.open(path)
    if im.mode in ("I;16", "I;16B", "I"):
        a = (np.array(im).astype(np.uint32) >> 8).astype(np.uint8)
        return np.dstack([a, a, a])
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        a = np.array(im.convert("RGBA")).astype(np.int64)
        c, al = a[..., :3], a[..., 3:4]
        return ((c * al + 255 * (255 - al) + 127) // 255).astype(np.uint8)
    return np.array(im.convert("RGB"))


def reduce(img, k):
    if k == 1:
        return img.astype(np.float64)
    h, w = img.shape[:2]
    # Block sums (the last row and column of blocks may be partial) and their pixel counts.
    rows, cols = np.arange(0, h, k), np.arange(0, w, k)
    sums = np.add.reduceat(np.add.reduceat(img.astype(np.int64), rows, axis=0), cols, axis=1)
    n = np.outer(np.minimum(rows + k, h) - rows, np.minimum(cols + k, w) - cols)[..., None]
    return ((sums + n // 2) // n).astype(np.float64)


def taps(first, length, k, reduced_len, s):
    lo = max(0.0, (first + 0.5) / k - 0.5)
    hi = min(reduced_len - 1.0, (first + length - 0.5) / k - 0.5)
    f = np.clip((first + (np.arange(s) + 0.5) * length / s) / k - 0.5, lo, max(lo, hi))
    i0 = np.floor(f).astype(np.int64)
    i1 = np.minimum(i0 + 1, reduced_len - 1)
    return i0, i1, f - i0


def reference(img, top, left, bh, bw, flip, s, k):
    r = reduce(img, k)
    y0, y1, wy = taps(top, bh, k, r.shape[0], s)
    x0, x1, wx = taps(left, bw, k, r.shape[1], s)
    if flip:
        x0, x1, wx = x0[::-1], x1[::-1], wx[::-1]
    wx = wx[None, :, None]
    a = r[y0][:, x0] + wx * (r[y0][:, x1] - r[y0][:, x0])
    b = r[y1][:, x0] + wx * (r[y1][:, x1] - r[y1][:, x0])
    v = a + wy[:, None, None] * (b - a)
    return np.floor(v + 0.5).clip(0, 255)


def check(d):
    failed = 0
    cache = {}
    for line in open(f"{d}/cases.txt"):
        name, h, w, top, left, bh, bw, flip, s, k, out = line.split()
        h, w, top, left, bh, bw, flip, s, k = map(int, (h, w, top, left, bh, bw, flip, s, k))
        if name not in cache:
            cache[name] = load_rgb(f"{d}/{name}")
        img = cache[name]
        assert img.shape[:2] == (h, w), (name, img.shape)
        ref = reference(img, top, left, bh, bw, flip, s, k)
        got = np.fromfile(f"{d}/{out}", dtype=np.uint8).reshape(s, s, 3).astype(np.float64)
        err = np.abs(got - ref)
        mean, p99, mx = err.mean(), np.percentile(err, 99), err.max()
        if name.endswith(".png") or name.endswith(".webp"):
            ok = mx <= 1
        elif k == 1:
            ok = mean <= 0.05 and mx <= 3
        else:
            ok = mean <= 1.5 and p99 <= 10 and mx <= 40
        print(f"{'ok  ' if ok else 'FAIL'} {name} box ({top},{left},{bh}x{bw}) flip {flip} "
              f"S {s} k {k}: mean {mean:.3f} p99 {p99:.1f} max {mx:.0f}")
        failed += not ok
    if os.path.exists(f"{d}/decoded.txt"):
        for line in open(f"{d}/decoded.txt"):
            name, h, w, out = line.split()
            h, w = int(h), int(w)
            ref = load_rgb(f"{d}/{name}").astype(np.float64)
            got = np.fromfile(f"{d}/{out}", dtype=np.uint8).reshape(h, w, 3).astype(np.float64)
            assert ref.shape == got.shape, (name, ref.shape, got.shape)
            err = np.abs(got - ref)
            mean, mx = err.mean(), err.max()
            ok = mx == 0 if "lossless" in name else (mean <= 0.05 and mx <= 2)
            print(f"{'ok  ' if ok else 'FAIL'} {name} whole decode {h}x{w}: mean {mean:.3f} "
                  f"max {mx:.0f}")
            failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
