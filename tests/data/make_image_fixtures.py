#!/usr/bin/python3
"""Writes the tiny PNG fixtures of tests/data_pipeline/image_test.cc, with numpy + zlib only
(PIL is not installed), so the decoder is checked against an independent PNG writer.

For each NAME.png it also writes NAME.rgb: the expected decoded pixels (H*W*3 bytes, RGB,
alpha composited onto white with (c*a + 255*(255-a) + 127) // 255), computed here in numpy.
The fixtures are committed; rerun this only to change them:
    /usr/bin/python3 tests/data/make_image_fixtures.py
"""
import os
import struct
import zlib

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images")


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png(width, height, bit_depth, color_type, raw_rows, extra=b""):
    """raw_rows: list of bytes, one per row, already packed at bit_depth."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    # Filter type varies by row (0 none, 1 sub is not used: only 'none' and 'up' are easy to
    # write correctly); 'up' exercises the decoder's unfiltering.
    data = b""
    prev = bytes(len(raw_rows[0]))
    for y, row in enumerate(raw_rows):
        if y % 2:
            data += b"\x02" + bytes((a - b) & 0xFF for a, b in zip(row, prev))
        else:
            data += b"\x00" + row
        prev = row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra +
            chunk(b"IDAT", zlib.compress(data, 9)) + chunk(b"IEND", b""))


def composite(rgb, alpha):
    rgb = rgb.astype(np.uint32)
    a = alpha.astype(np.uint32)[..., None]
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def write(name, png_bytes, expected):
    with open(os.path.join(OUT, name + ".png"), "wb") as f:
        f.write(png_bytes)
    with open(os.path.join(OUT, name + ".rgb"), "wb") as f:
        f.write(np.ascontiguousarray(expected, dtype=np.uint8).tobytes())


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(6)
    h, w = 5, 7

    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    write("rgb8", png(w, h, 8, 2, [rgb[y].tobytes() for y in range(h)]), rgb)

    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255  # fully transparent and fully opaque corners
    write("rgba8", png(w, h, 8, 6, [rgba[y].tobytes() for y in range(h)]),
          composite(rgba[..., :3], rgba[..., 3]))

    gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
    write("gray8", png(w, h, 8, 0, [gray[y].tobytes() for y in range(h)]),
          np.repeat(gray[..., None], 3, axis=2))

    ga = rng.integers(0, 256, (h, w, 2), dtype=np.uint8)
    write("gray_alpha8", png(w, h, 8, 4, [ga[y].tobytes() for y in range(h)]),
          composite(np.repeat(ga[..., :1], 3, axis=2), ga[..., 1]))

    # 4-colour palette at 2 bits per pixel, with a tRNS chunk making entry 1 half transparent
    # and entry 3 fully transparent.
    palette = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30], [200, 200, 0]], np.uint8)
    trns = np.array([255, 128, 255, 0], np.uint8)
    idx = rng.integers(0, 4, (h, w), dtype=np.uint8)
    rows = []
    for y in range(h):
        padded = np.concatenate([idx[y], np.zeros((-w) % 4, np.uint8)])
        packed = (padded[0::4] << 6) | (padded[1::4] << 4) | (padded[2::4] << 2) | padded[3::4]
        rows.append(packed.astype(np.uint8).tobytes())
    extra = chunk(b"PLTE", palette.tobytes()) + chunk(b"tRNS", trns.tobytes())
    write("palette2_trns", png(w, h, 2, 3, rows, extra), composite(palette[idx], trns[idx]))

    # 16-bit RGB whose low bytes are zero, so 16 -> 8 bits is exact whatever the rounding.
    hi = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb16 = (hi.astype(np.uint16) << 8).astype(">u2")
    write("rgb16", png(w, h, 16, 2, [rgb16[y].tobytes() for y in range(h)]), hi)


if __name__ == "__main__":
    main()
