"""Checks `tessera export` against the checkpoint read independently with h5py.

usage: export_check.py STEP_DIR FILE.safetensors PB_DIR [ROLE]
PB_DIR holds checkpoint_pb2.py (protoc --python_out). ROLE: the checkpoint tensors the export must
equal bitwise, "param" (default: the trained parameters, metadata tessera_weights "raw") or "ema"
(the moving average of the weights, tessera_weights "ema"). The reference assembles every parameter
from its stored pieces (global start/count in metadata.pb, one HDF5 dataset per piece); the
safetensors file is parsed by hand (8-byte header length, JSON header, raw bytes) with numpy and
also loaded into torch tensors."""
import json
import os
import struct
import sys

import h5py
import numpy as np
import torch

step_dir, st_path, pb_dir = sys.argv[1:4]
role = sys.argv[4] if len(sys.argv) > 4 else "param"
assert role in ("param", "ema"), role
sys.path.insert(0, pb_dir)
import checkpoint_pb2  # noqa: E402

meta = checkpoint_pb2.Metadata()
with open(os.path.join(step_dir, "metadata.pb"), "rb") as f:
    meta.ParseFromString(f.read())

reference = {}
for t in meta.tensors:
    if t.role != role:
        continue
    full = np.full(list(t.shape), np.nan, dtype=np.float32)
    for p in t.pieces:
        with h5py.File(os.path.join(step_dir, p.file), "r") as h5:
            box = tuple(slice(s, s + c) for s, c in zip(p.start, p.count))
            full[box] = h5[p.dataset][()]
    assert not np.isnan(full).any(), f"pieces of {t.name} do not cover it"
    reference[t.name] = full

with open(st_path, "rb") as f:
    raw = f.read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8 : 8 + n])
data = raw[8 + n :]
info = header.pop("__metadata__", {})
assert info.get("tessera_step") == str(meta.step), info
assert info.get("tessera_model") == meta.model_kind, info
assert info.get("tessera_weights") == ("raw" if role == "param" else "ema"), info
assert reference, f"the checkpoint holds no {role} tensors"
assert set(header) == set(reference), sorted(set(header) ^ set(reference))[:5]
for name, h in header.items():
    assert h["dtype"] == "F32", (name, h["dtype"])
    begin, end = h["data_offsets"]
    got = np.frombuffer(data[begin:end], dtype="<f4").reshape(h["shape"])
    want = reference[name]
    assert got.size == want.size, (name, got.shape, want.shape)
    assert np.array_equal(got.reshape(want.shape), want), f"{name}: values differ"
    as_torch = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).reshape(h["shape"])
    assert torch.equal(as_torch, torch.from_numpy(got.copy())), name
print(f"export equals the checkpoint's {role} tensors: {len(header)} tensors, step {meta.step}, "
      f"written by dp {meta.layout.data_parallel} x tp {meta.layout.tensor_parallel}")
