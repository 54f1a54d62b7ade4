"""h5py side of the shard tests (tests/data_pipeline/shard_test.cc): proves that a shard is
plain HDF5 in the layout of data_pipeline/FORMAT.md, in both directions.

  copy SRC DST          read tessera's shard SRC with h5py, assert its schema, attributes and
                        filters, and write the same samples to DST with h5py (its own defaults:
                        str attributes, a different chunk size, fletcher32); the C++ test then
                        compares DST with what it wrote.
  break SRC DST KIND    write DST = SRC with one schema defect (KIND, see DEFECTS below).

Run with Debian's /usr/bin/python3 (python3-h5py, python3-numpy).
"""
import sys

import h5py
import numpy as np

PER_SAMPLE = ["images", "tokens", "token_lengths", "labels", "image_sizes", "original_sizes"]


def check_schema(f):
    version = f.attrs["format_version"]
    assert version in (1, 2), version
    n, r = int(f.attrs["num_samples"]), int(f.attrs["resolution"])
    tok = f.attrs["tokenizer"]
    assert isinstance(tok, str), type(tok)  # variable-length UTF-8, as h5py writes str
    if version == 1:
        assert f["images"].dtype == np.uint8 and f["images"].shape == (n, r, r, 3)
        assert "image_bytes" not in f
    else:  # encoded files: bytes + offsets, per-sample stored and original (H, W)
        assert r >= 0 and "images" not in f
        assert f["image_bytes"].dtype == np.uint8 and f["image_bytes"].ndim == 1
        off = f["image_offsets"][:]
        assert off.dtype == np.int64 and off.shape == (n + 1,)
        assert off[0] == 0 and (np.diff(off) > 0).all() and off[-1] == f["image_bytes"].shape[0]
        for name in ("image_sizes", "original_sizes"):
            sizes = f[name][:]
            assert sizes.dtype == np.int32 and sizes.shape == (n, 2), name
            assert (sizes > 0).all(), name
        if r > 0:
            assert (f["image_sizes"][:].max(axis=1) <= r).all()
    assert f["captions"].dtype == np.uint8 and f["captions"].ndim == 1
    assert f["caption_offsets"].dtype == np.int64 and f["caption_offsets"].shape == (n + 1,)
    for name in f:
        d = f[name]
        assert d.fletcher32, name
        assert d.chunks is not None and d.compression is None, name
        if name in PER_SAMPLE:
            assert d.shape[0] == n, name
    if "tokens" in f:
        assert f["tokens"].dtype == np.int32 and f["tokens"].shape[0] == n
        lengths = f["token_lengths"][:]
        assert lengths.dtype == np.int32 and lengths.shape == (n,)
        assert ((lengths >= 0) & (lengths <= f["tokens"].shape[1])).all()
        tokens = f["tokens"][:]
        for i in range(n):  # padding is zero
            assert not tokens[i, lengths[i]:].any(), i
    if "labels" in f:
        assert f["labels"].dtype == np.int32 and f["labels"].shape == (n,)
    off = f["caption_offsets"][:]
    assert off[0] == 0 and (np.diff(off) >= 0).all() and off[-1] == f["captions"].shape[0]
    caps = f["captions"][:].tobytes()
    for i in range(n):
        caps[off[i]:off[i + 1]].decode("utf-8")  # every caption is valid UTF-8


def copy(src, dst):
    with h5py.File(src, "r") as f:
        check_schema(f)
        data = {name: f[name][:] for name in f}
        attrs = dict(f.attrs)
    with h5py.File(dst, "w") as g:
        for name, value in data.items():
            chunks = (17,) + value.shape[1:] if name in PER_SAMPLE else (1000,)
            chunks = tuple(min(c, max(s, 1)) for c, s in zip(chunks, value.shape))
            g.create_dataset(name, data=value, chunks=chunks, fletcher32=True,
                             maxshape=(None,) + value.shape[1:])
        for key, value in attrs.items():
            g.attrs[key] = value
    with h5py.File(dst, "r") as g:  # the copy holds exactly what h5py read
        for name, value in data.items():
            assert np.array_equal(g[name][:], value), name
            assert g[name].dtype == value.dtype, name


# Each defect is one way a hand-made shard can disagree with FORMAT.md.
DEFECTS = {
    "images_dtype": lambda d, a: d.update(images=d["images"].astype(np.int16)),
    "images_shape": lambda d, a: d.update(images=d["images"][:, :, :-1, :]),
    "tokens_dtype": lambda d, a: d.update(tokens=d["tokens"].astype(np.int64)),
    "labels_count": lambda d, a: d.update(labels=d["labels"][:-1]),
    "num_samples": lambda d, a: a.update(num_samples=np.int64(a["num_samples"] + 1)),
    "offsets_end": lambda d, a: d.update(caption_offsets=d["caption_offsets"] + 1 * (
        np.arange(len(d["caption_offsets"])) == len(d["caption_offsets"]) - 1)),
    "version": lambda d, a: a.update(format_version=np.int64(3)),
    # version 2
    "image_offsets_end": lambda d, a: d.update(image_offsets=d["image_offsets"] + 1 * (
        np.arange(len(d["image_offsets"])) == len(d["image_offsets"]) - 1)),
    "image_sizes_shape": lambda d, a: d.update(image_sizes=d["image_sizes"][:, :1]),
    "image_sizes_zero": lambda d, a: d["image_sizes"].__setitem__((3, 1), 0),
    "no_image_bytes": lambda d, a: d.pop("image_bytes"),
    "no_fletcher": None,  # handled below
}


def break_(src, dst, kind):
    with h5py.File(src, "r") as f:
        data = {name: f[name][:] for name in f}
        attrs = dict(f.attrs)
    if kind != "no_fletcher":
        DEFECTS[kind](data, attrs)
    with h5py.File(dst, "w") as g:
        for name, value in data.items():
            g.create_dataset(name, data=value, chunks=True,
                             fletcher32=not (kind == "no_fletcher" and name == "labels"))
        for key, value in attrs.items():
            g.attrs[key] = value


if __name__ == "__main__":
    if sys.argv[1] == "copy":
        copy(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "break":
        break_(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("unknown command " + sys.argv[1])
    print("ok")
