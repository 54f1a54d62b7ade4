"""Reads a tessera config (protobuf text format) into a tessera.config.Config message.

The schema is proto/config.proto itself, compiled on the fly with `protoc --python_out` into a
temporary directory, so the peer can never disagree with tessera about a field's name or
meaning. Model defaults (mlp_ratio, channels, CLIP's logit scale, ...) mirror
train/config_defaults.cc, which tessera applies after parsing; only the ones the peer's shapes
and losses depend on are repeated here.
"""
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_pb2 = None

# train/config_defaults.cc: the fields outside `model` that the peer reads.
_DEFAULTS = """
  train { steps: 1000 seed: 1234 micro_batches: 1 }
  optim { lr: 3e-4 beta1: 0.9 beta2: 0.95 eps: 1e-8 weight_decay: 0.1 grad_clip: 1.0 }
  data { source: "synthetic" global_batch_size: 8 }
"""


def config_pb2():
    """Compiles proto/config.proto once per process and returns the generated module."""
    global _pb2
    if _pb2 is not None:
        return _pb2
    if shutil.which("protoc") is None:
        sys.exit("peer: protoc not found (Debian: protobuf-compiler; run ./scripts/setup)")
    out = tempfile.mkdtemp(prefix="tessera_peer_proto_")
    subprocess.run(["protoc", f"--proto_path={_ROOT}", f"--python_out={out}", "proto/config.proto"],
                   check=True)
    sys.path.insert(0, out)
    try:
        _pb2 = importlib.import_module("proto.config_pb2")
    finally:
        sys.path.remove(out)
        shutil.rmtree(out, ignore_errors=True)  # the module is loaded; the files are not needed
    return _pb2


def _fill_transformer(t):
    if t.mlp_ratio == 0:
        t.mlp_ratio = 4


def _fill_model_defaults(m):
    kind = m.WhichOneof("kind")
    if kind == "gpt":
        _fill_transformer(m.gpt.transformer)
    elif kind == "vit":
        if m.vit.channels == 0:
            m.vit.channels = 3
        _fill_transformer(m.vit.transformer)
    elif kind == "clip":
        c = m.clip
        if c.image.channels == 0:
            c.image.channels = 3
        _fill_transformer(c.image.transformer)
        _fill_transformer(c.text.transformer)
        if c.init_logit_scale == 0:
            c.init_logit_scale = 2.6592600  # log(1 / 0.07)
        if c.max_logit_scale == 0:
            c.max_logit_scale = 4.6051702  # log(100)
        if c.loss == c.SIGLIP and c.init_logit_bias == 0:
            c.init_logit_bias = -10.0
    elif kind == "dit":
        d = m.dit
        if d.channels == 0:
            d.channels = 3
        if d.diffusion_steps == 0:
            d.diffusion_steps = 1000
        _fill_transformer(d.transformer)


def load(path):
    """Parses `path` on top of tessera's defaults; exits with a message naming the file on error."""
    from google.protobuf import text_format

    pb2 = config_pb2()
    cfg = pb2.Config()
    text_format.Parse(_DEFAULTS, cfg)
    try:
        with open(path) as f:
            text_format.Merge(f.read(), cfg)
    except (OSError, text_format.ParseError) as e:
        sys.exit(f"peer: {path}: {e}")
    if cfg.model.WhichOneof("kind") is None:
        sys.exit(f"peer: {path}: model has no kind (gpt, vit, clip or dit)")
    _fill_model_defaults(cfg.model)
    return cfg
