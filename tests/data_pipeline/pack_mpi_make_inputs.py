"""Writes the inputs of pack_mpi_test.sh into DIR: 40 PNGs (noise, assorted sizes), an index
with three labels, and bad inputs (a missing file, a damaged PNG, an empty caption)."""
import json
import os
import struct
import sys
import tarfile
import zlib

import numpy as np


def write_png(path, rgb):  # rgb: (H, W, 3) uint8; written by hand so the test needs no PIL
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
names = ["cats", "dogs", "birds"]
lines = []
for i in range(40):
    size = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
    write_png(os.path.join(out, f"img{i:02d}.png"),
              rng.integers(0, 256, size=size + (3,), dtype=np.uint8))
    label = names[i % 3]
    lines.append({"path": f"img{i:02d}.png", "caption": f"a picture of {label} number {i}",
                  "label_name": label})
with open(os.path.join(out, "broken.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\nthis is not a png")
lines.insert(5, {"path": "missing.png", "caption": "a missing picture", "label_name": "cats"})
lines.insert(17, {"path": "broken.png", "caption": "a broken picture", "label_name": "dogs"})
lines.insert(30, {"path": "img03.png", "caption": "", "label_name": "birds"})
with open(os.path.join(out, "index.jsonl"), "w") as f:
    f.writelines(json.dumps(l) + "\n" for l in lines)
with open(os.path.join(out, "captions.txt"), "w") as f:
    f.writelines(l["caption"] + "\n" for l in lines if l["caption"])

# The same samples as a webdataset tar (KEY.png + KEY.txt), in two tars, for `pack --tar`.
for t, part in enumerate((lines[:20], lines[20:])):
    with tarfile.open(os.path.join(out, f"part{t}.tar"), "w") as tar:
        for i, l in enumerate(part):
            # Random key prefixes (split_of mixes its hash, so plain counters would do too).
            key = f"{int(rng.integers(10**8)):08d}_{t}_{i:03d}"
            if os.path.exists(os.path.join(out, l["path"])):
                tar.add(os.path.join(out, l["path"]), arcname=key + ".png")
            if l["caption"]:
                txt = os.path.join(out, "caption.tmp")
                with open(txt, "w") as f:
                    f.write(l["caption"])
                tar.add(txt, arcname=key + ".txt")
