"""Minimal safetensors reader/writer on numpy (Debian has no safetensors package)."""
import json
import struct

import numpy as np
import torch

_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        raw = data[base + begin:base + end]
        if entry["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_DTYPES[entry["dtype"]])
        out[name] = torch.from_numpy(arr.copy().reshape(entry["shape"]))
    return out, metadata


def write(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        arr = t.cpu().numpy()
        code = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[arr.dtype]
        raw = arr.tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)
