"""Checks `tessera export` against the checkpoint read independently with h5py.

usage: export_check.py STEP_DIR FILE.safetensors PB_DIR [ROLE]
PB_DIR holds checkpoint_pb2.py (protoc --python_out). ROLE: the checkpoint tensors the export must
equal bitwise, "param" (default: the trained parameters, metadata tessera_weights "raw") or "ema"
(the moving average of the weights, tessera_weights "ema"). The reference assembles every parameter
from its stored pieces with h5py (checkpoint_tensors.py); the safetensors file is parsed by hand
(8-byte header length, JSON header, raw bytes) with numpy and also loaded into torch tensors."""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint_tensors import read_checkpoint  # noqa: E402

step_dir, st_path, pb_dir = sys.argv[1:4]
role = sys.argv[4] if len(sys.argv) > 4 else "param"
assert role in ("param", "ema"), role
meta, reference = read_checkpoint(step_dir, pb_dir, role)

with open(st_path, "rb") as f:
    raw = f.read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8 : 8 + n])
data = raw[8 + n :]
info = header.pop("__metadata__", {})
assert info.get("tessera_step") == str(meta.step), info
assert info.get("tessera_model") == meta.model_kind, info
assert info.get("tessera_weights") == ("raw" if role == "param" else "ema"), info
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
