"""The timm side of tests/eval/state_dict_format_test.cc (runs under REPO/.venv/bin/python, which
scripts/setup makes with timm from PyPI on top of Debian's torch).

  make_timm DIR [PRE]  a randomly initialised timm VisionTransformer (32x32 images, patch 8,
                       width 64, depth 2, 4 heads, 10 classes; timm's defaults otherwise: exact
                       GELU, LayerNorm eps 1e-6, class-token pooling; with PRE 1 a LayerNorm
                       before the blocks, norm_pre) whose state dict goes to
                       DIR/model.safetensors, plus DIR/check.safetensors: images (2, 32, 32, 3)
                       channels last and the model's logits (2, 10)
  timm_logits FILE DIR S P D L H K PRE
                       builds a timm VisionTransformer (image S, patch P, width D, depth L, heads
                       H, K classes, norm_pre when PRE is 1), loads FILE strictly (every tensor, no extra) and writes
                       DIR/hf_outputs.safetensors: the logits of DIR/inputs.safetensors' images
  make_open_clip DIR ACT
                       a randomly initialised open_clip CLIP (16x16 images, patch 8, widths 48
                       and 32, 2 layers each, 4 heads each, vocabulary 50, context 10, embedding
                       24; QuickGELU when ACT is quick_gelu, else open_clip's default nn.GELU)
                       whose state dict goes to DIR/model.safetensors, plus
                       DIR/check.safetensors: images, text (end of text = the highest id, 49, as
                       open_clip pools at the argmax), text_eot and the L2-normalised embeddings
  open_clip_embeds FILE DIR
                       builds the open_clip CLIP that DIR/dims.json describes, loads FILE
                       strictly and writes DIR/hf_outputs.safetensors: the embeddings of
                       DIR/inputs.safetensors
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))

import safetensors_io  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg  # noqa: E402


def vit(size, patch, width, depth, heads, classes, pre_norm=False):
    return timm.models.vision_transformer.VisionTransformer(
        img_size=size, patch_size=patch, embed_dim=width, depth=depth, num_heads=heads,
        num_classes=classes, global_pool="token", pre_norm=pre_norm).eval()


def make_timm(out, pre_norm):
    torch.manual_seed(6)
    model = vit(32, 8, 64, 2, 4, 10, pre_norm)
    # A random init has zero biases, unit LayerNorms and a zero head: move them so that every
    # tensor's mapping is exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
        model.head.weight.normal_(0, 0.2)
        model.cls_token.normal_(0, 0.5)
        model.pos_embed.normal_(0, 0.5)
    os.makedirs(out, exist_ok=True)
    safetensors_io.write(os.path.join(out, "model.safetensors"),
                         {k: v.contiguous() for k, v in model.state_dict().items()})
    images = torch.randn(2, 32, 32, 3)
    with torch.no_grad():
        logits = model(images.permute(0, 3, 1, 2))
    safetensors_io.write(os.path.join(out, "check.safetensors"),
                         {"images": images, "logits": logits.float()})


def timm_logits(path, d, *dims):
    model = vit(*[int(x) for x in dims[:6]], pre_norm=dims[6] == "1")
    tensors, _ = safetensors_io.read(path)
    model.load_state_dict(tensors, strict=True)
    t, _ = safetensors_io.read(os.path.join(d, "inputs.safetensors"))
    with torch.no_grad():
        out = model(t["images"].permute(0, 3, 1, 2))
    safetensors_io.write(os.path.join(d, "hf_outputs.safetensors"), {"logits": out.float()})


def open_clip_model(dims):
    vision = CLIPVisionCfg(layers=dims["image_layers"], width=dims["image_width"],
                           head_width=dims["image_width"] // dims["image_heads"],
                           mlp_ratio=dims["image_mlp_ratio"], patch_size=dims["patch"],
                           image_size=dims["image_size"])
    text = CLIPTextCfg(context_length=dims["context"], vocab_size=dims["vocab"],
                       width=dims["text_width"], heads=dims["text_heads"],
                       layers=dims["text_layers"], mlp_ratio=dims["text_mlp_ratio"])
    return CLIP(embed_dim=dims["embed"], vision_cfg=vision, text_cfg=text,
                quick_gelu=dims["quick_gelu"]).eval()


def open_clip_embeds(model, t):
    with torch.no_grad():
        img = model.encode_image(t["images"].permute(0, 3, 1, 2), normalize=True)
        txt = model.encode_text(t["text"].long(), normalize=True)
    return {"image_embeds": img.float(), "text_embeds": txt.float()}


def make_open_clip(out, act):
    torch.manual_seed(7)
    dims = dict(image_layers=2, image_width=48, image_heads=4, image_mlp_ratio=4, patch=8,
                image_size=16, context=10, vocab=50, text_width=32, text_heads=4, text_layers=2,
                text_mlp_ratio=4, embed=24, quick_gelu=act == "quick_gelu")
    model = open_clip_model(dims)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
        model.visual.positional_embedding.normal_(0, 0.5)
    os.makedirs(out, exist_ok=True)
    safetensors_io.write(os.path.join(out, "model.safetensors"),
                         {k: v.contiguous() for k, v in model.state_dict().items()})
    text = torch.randint(1, 49, (3, 10), dtype=torch.int32)
    eot = torch.tensor([4, 9, 6], dtype=torch.int32)
    for b in range(3):
        text[b, eot[b]] = 49
        text[b, eot[b] + 1:] = 0
    t = {"images": torch.randn(3, 16, 16, 3), "text": text, "text_eot": eot}
    t.update(open_clip_embeds(model, t))
    safetensors_io.write(os.path.join(out, "check.safetensors"), t)


def open_clip_outputs(path, d):
    with open(os.path.join(d, "dims.json")) as f:
        model = open_clip_model(json.load(f))
    tensors, _ = safetensors_io.read(path)
    model.load_state_dict(tensors, strict=True)
    t, _ = safetensors_io.read(os.path.join(d, "inputs.safetensors"))
    safetensors_io.write(os.path.join(d, "hf_outputs.safetensors"), open_clip_embeds(model, t))


if __name__ == "__main__":
    if sys.argv[1] == "make_timm":
        make_timm(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "1")
    elif sys.argv[1] == "timm_logits":
        timm_logits(*sys.argv[2:])
    elif sys.argv[1] == "make_open_clip":
        make_open_clip(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "open_clip_embeds":
        open_clip_outputs(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + sys.argv[1])
