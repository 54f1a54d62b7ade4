"""Checks `tessera export --format timm|open_clip` against the checkpoint read independently with
h5py (checkpoint_tensors.py): every tensor of the exported state dict equals, bitwise, the
checkpoint tensor it comes from under this file's own name mapping (renames, reshapes, the
transposed open_clip projections, the conv layout of the patch embedding, and the patch bias
folded into the positions where the format has none), and nothing is missing or extra.

usage: state_dict_export_check.py STEP_DIR FILE.safetensors FORMAT PB_DIR ROLE
FORMAT: timm (a ViT classifier) or open_clip (a CLIP with image pre_norm). ROLE: the checkpoint
tensors the export must equal, "param" (--weights raw) or "ema" (--weights ema)."""
import os
import re
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "reference"))
import safetensors_io  # noqa: E402
from checkpoint_tensors import read_checkpoint  # noqa: E402

step_dir, st_path, fmt, pb_dir, role = sys.argv[1:6]
assert fmt in ("timm", "open_clip"), fmt
assert role in ("param", "ema"), role
_, ck = read_checkpoint(step_dir, pb_dir, role)


def conv(w, channels):
    """tessera's (d, p*p*C) patch rows in (py, px, c) order as a conv weight (d, C, p, p)."""
    d = w.shape[0]
    p = int(round((w.shape[1] // channels) ** 0.5))
    return w.reshape(d, p, p, channels).transpose(0, 3, 1, 2)


def positions(pos, bias):
    """The patch bias added to the patch tokens' rows 1..N (not the class token's row 0)."""
    out = pos.copy()
    out[1:] += bias
    return out


def block_map(src, dst):
    """Per-block names: dst-format prefix -> (tessera prefix, transform)."""
    return {
        f"{dst}ln_1.": f"{src}ln1.", f"{dst}ln_2.": f"{src}ln2.",
        f"{dst}attn.out_proj.": f"{src}attn.proj.", f"{dst}mlp.c_fc.": f"{src}mlp.fc.",
        f"{dst}mlp.c_proj.": f"{src}mlp.proj.",
    }


expected = {}
if fmt == "timm":
    pre_norm = "ln_pre.weight" in ck
    expected["cls_token"] = ck["cls_token.weight"].reshape(1, 1, -1)
    pos = ck["pos_emb.weight"]
    if pre_norm:  # timm's pre_norm ViT has a bias-free patch convolution
        pos = positions(pos, ck["patch_embed.proj.bias"])
    else:
        expected["patch_embed.proj.bias"] = ck["patch_embed.proj.bias"]
    expected["pos_embed"] = pos.reshape(1, *pos.shape)
    expected["patch_embed.proj.weight"] = conv(ck["patch_embed.proj.weight"], 3)
    renames = {"ln_pre.": "norm_pre.", "ln_f.": "norm.", "head.": "head."}
    block = {"ln1.": "norm1.", "ln2.": "norm2.", "attn.proj.": "attn.proj.", "mlp.fc.": "mlp.fc1.",
             "mlp.proj.": "mlp.fc2."}
    for name, t in ck.items():
        m = re.match(r"blocks\.(\d+)\.(.*)$", name)
        if m and m.group(2).startswith("attn.qkv."):  # (3, d, d) / (3, d) -> (3d, d) / (3d)
            expected[name] = t.reshape(-1, *t.shape[2:])
        elif m:
            leaf = m.group(2)
            for a, b in block.items():
                if leaf.startswith(a):
                    expected[f"blocks.{m.group(1)}.{b}{leaf[len(a):]}"] = t
        else:
            for a, b in renames.items():
                if name.startswith(a):
                    expected[b + name[len(a):]] = t
else:
    expected["visual.class_embedding"] = ck["image.cls_token.weight"].reshape(-1)
    expected["visual.positional_embedding"] = positions(ck["image.pos_emb.weight"],
                                                        ck["image.patch_embed.proj.bias"])
    expected["visual.conv1.weight"] = conv(ck["image.patch_embed.proj.weight"], 3)
    expected["visual.proj"] = ck["image.proj.weight"].T  # open_clip applies x @ proj
    expected["text_projection"] = ck["text.proj.weight"].T
    expected["token_embedding.weight"] = ck["text.tok_emb.weight"]
    expected["positional_embedding"] = ck["text.pos_emb.weight"]
    expected["logit_scale"] = ck["logit_scale"].reshape(())
    renames = {"image.ln_pre.": "visual.ln_pre.", "image.ln_f.": "visual.ln_post.",
               "text.ln_f.": "ln_final."}
    block = {"ln1.": "ln_1.", "ln2.": "ln_2.", "attn.proj.": "attn.out_proj.", "mlp.fc.": "mlp.c_fc.",
             "mlp.proj.": "mlp.c_proj."}
    towers = {"image": "visual.transformer.resblocks.", "text": "transformer.resblocks."}
    for name, t in ck.items():
        m = re.match(r"(image|text)\.blocks\.(\d+)\.(.*)$", name)
        if m:
            prefix, leaf = towers[m.group(1)] + m.group(2) + ".", m.group(3)
            if leaf.startswith("attn.qkv."):  # fused [q; k; v] rows, as nn.MultiheadAttention's
                suffix = "weight" if leaf.endswith("weight") else "bias"
                expected[f"{prefix}attn.in_proj_{suffix}"] = t.reshape(-1, *t.shape[2:])
            for a, b in block.items():
                if leaf.startswith(a):
                    expected[prefix + b + leaf[len(a):]] = t
        else:
            for a, b in renames.items():
                if name.startswith(a):
                    expected[b + name[len(a):]] = t

got, _ = safetensors_io.read(st_path)
assert set(got) == set(expected), ("names differ", sorted(set(got) ^ set(expected))[:8])
for name, want in expected.items():
    g = got[name].numpy()
    assert g.shape == want.shape, (name, g.shape, want.shape)
    assert np.array_equal(g, want), f"{name}: values differ from the checkpoint's {role} tensors"
print(f"{fmt} export equals the checkpoint's {role} tensors: {len(expected)} tensors")
