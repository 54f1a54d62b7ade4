"""A tessera checkpoint's tensors read independently of tessera: metadata.pb parsed with the
protobuf module (checkpoint_pb2 from protoc --python_out in PB_DIR) and every tensor of one role
assembled from its stored pieces (global start/count in metadata.pb, one HDF5 dataset per piece)
with h5py. Shared by export_check.py and state_dict_export_check.py."""
import os
import sys

import h5py
import numpy as np


def read_checkpoint(step_dir, pb_dir, role):
    """(metadata, {global name: float32 array}) of the tensors with `role` ("param" or "ema")."""
    sys.path.insert(0, pb_dir)
    import checkpoint_pb2  # noqa: E402

    meta = checkpoint_pb2.Metadata()
    with open(os.path.join(step_dir, "metadata.pb"), "rb") as f:
        meta.ParseFromString(f.read())
    tensors = {}
    for t in meta.tensors:
        if t.role != role:
            continue
        full = np.full(list(t.shape), np.nan, dtype=np.float32)
        for p in t.pieces:
            with h5py.File(os.path.join(step_dir, p.file), "r") as h5:
                box = tuple(slice(s, s + c) for s, c in zip(p.start, p.count))
                full[box] = h5[p.dataset][()]
        assert not np.isnan(full).any(), f"pieces of {t.name} do not cover it"
        tensors[t.name] = full
    assert tensors, f"the checkpoint holds no {role} tensors"
    return meta, tensors
