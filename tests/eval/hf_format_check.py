"""The transformers side of tests/eval/hf_format_test.cc (runs under REPO/.venv/bin/python, which
scripts/setup makes with transformers from PyPI on top of Debian's torch).

GPT-2:
  make DIR TIED      a randomly initialised GPT2LMHeadModel saved with save_pretrained
                     (safetensors) to DIR, plus DIR/check.safetensors: tokens (2, 12) i32 and
                     the model's logits (2, 12, V) f32
  logits DIR         loads DIR with from_pretrained and writes DIR/hf_logits.safetensors: the
                     logits of DIR/tokens.safetensors' tokens
ViT (ViTForImageClassification, tanh GELU and LayerNorm eps 1e-5 as tessera's):
  make_vit DIR       a random model saved to DIR, plus DIR/check.safetensors: images (2, 32, 32,
                     3) channels last and the model's logits (2, 10)
  vit_logits DIR     loads DIR with from_pretrained; DIR/images.safetensors -> hf_logits
CLIP (CLIPModel, tanh GELU in both towers):
  make_clip DIR      a random model saved to DIR, plus DIR/check.safetensors: images, text,
                     text_eot and the L2-normalised image and text embeddings
  clip_embeds DIR    loads DIR with from_pretrained; DIR/inputs.safetensors -> hf_embeds
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))

import safetensors_io  # noqa: E402
import torch  # noqa: E402
from transformers import (CLIPConfig, CLIPModel, GPT2Config, GPT2LMHeadModel,  # noqa: E402
                          ViTConfig, ViTForImageClassification)


def make(out, tied):
    torch.manual_seed(3)
    cfg = GPT2Config(vocab_size=61, n_positions=16, n_embd=32, n_layer=2, n_head=4,
                     tie_word_embeddings=tied, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).eval()
    # A random init has zero biases and unit LayerNorms: move them so that every tensor's
    # mapping is exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)
    tokens = torch.randint(0, 61, (2, 12), dtype=torch.int64)
    with torch.no_grad():
        logits = model(tokens).logits
    safetensors_io.write(os.path.join(out, "check.safetensors"),
                         {"tokens": tokens.int(), "logits": logits.float()})


def logits(d):
    model = GPT2LMHeadModel.from_pretrained(d).eval()
    tensors, _ = safetensors_io.read(os.path.join(d, "tokens.safetensors"))
    with torch.no_grad():
        out = model(tensors["tokens"].long()).logits
    safetensors_io.write(os.path.join(d, "hf_logits.safetensors"), {"logits": out.float()})


def perturb(model):
    # A random init has zero biases and unit LayerNorms: move them so that every tensor's
    # mapping is exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "norm" in name or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))


def make_vit(out):
    torch.manual_seed(4)
    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64,
                    num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                    hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-5, num_labels=10,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = ViTForImageClassification(cfg).eval()
    perturb(model)
    with torch.no_grad():  # HF inits the class token and positions with zeros / small values
        model.vit.embeddings.cls_token.normal_(0, 0.5)
        model.vit.embeddings.position_embeddings.normal_(0, 0.5)
    model.save_pretrained(out, safe_serialization=True)
    images = torch.randn(2, 32, 32, 3)
    with torch.no_grad():
        logits = model(images.permute(0, 3, 1, 2)).logits
    safetensors_io.write(os.path.join(out, "check.safetensors"),
                         {"images": images.float(), "logits": logits.float()})


def vit_logits(d):
    model = ViTForImageClassification.from_pretrained(d).eval()
    tensors, _ = safetensors_io.read(os.path.join(d, "images.safetensors"))
    with torch.no_grad():
        out = model(tensors["images"].permute(0, 3, 1, 2)).logits
    safetensors_io.write(os.path.join(d, "hf_logits.safetensors"), {"logits": out.float()})


def embeds(model, images, text):
    with torch.no_grad():
        img = model.get_image_features(pixel_values=images.permute(0, 3, 1, 2))
        txt = model.get_text_features(input_ids=text.long())
    return (torch.nn.functional.normalize(img, dim=-1).float(),
            torch.nn.functional.normalize(txt, dim=-1).float())


def make_clip(out):
    torch.manual_seed(5)
    tower = dict(num_hidden_layers=2, num_attention_heads=4, hidden_act="gelu_pytorch_tanh",
                 layer_norm_eps=1e-5, attention_dropout=0.0, dropout=0.0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=50, hidden_size=32, intermediate_size=128,
                         max_position_embeddings=10, eos_token_id=49, **tower),
        vision_config=dict(hidden_size=48, intermediate_size=192, image_size=16, patch_size=8,
                           **tower),
        projection_dim=24)
    model = CLIPModel(cfg).eval()
    perturb(model)
    model.save_pretrained(out, safe_serialization=True)
    images = torch.randn(3, 16, 16, 3)
    text = torch.randint(0, 49, (3, 10), dtype=torch.int32)
    eot = torch.tensor([4, 9, 6], dtype=torch.int32)
    for b in range(3):
        text[b, eot[b]] = 49
        text[b, eot[b] + 1:] = 0
    img, txt = embeds(model, images, text)
    safetensors_io.write(os.path.join(out, "check.safetensors"),
                         {"images": images, "text": text, "text_eot": eot, "image_embeds": img,
                          "text_embeds": txt})


def clip_embeds(d):
    model = CLIPModel.from_pretrained(d).eval()
    t, _ = safetensors_io.read(os.path.join(d, "inputs.safetensors"))
    img, txt = embeds(model, t["images"], t["text"])
    safetensors_io.write(os.path.join(d, "hf_embeds.safetensors"),
                         {"image_embeds": img, "text_embeds": txt})


if __name__ == "__main__":
    {"make": lambda: make(sys.argv[2], sys.argv[3] == "1"),
     "logits": lambda: logits(sys.argv[2]),
     "make_vit": lambda: make_vit(sys.argv[2]),
     "vit_logits": lambda: vit_logits(sys.argv[2]),
     "make_clip": lambda: make_clip(sys.argv[2]),
     "clip_embeds": lambda: clip_embeds(sys.argv[2])}[sys.argv[1]]()
