"""The transformers side of tests/eval/hf_format_test.cc (runs under REPO/.venv/bin/python, which
scripts/setup makes with transformers from PyPI on top of Debian's torch).

  make KIND DIR ACT EPS [TIED]
      a randomly initialised model saved with save_pretrained (safetensors) to DIR, with HF
      activation name ACT ("default": the architecture's own default, left out of the config)
      and LayerNorm eps EPS ("default" likewise); KIND gpt2 (GPT2LMHeadModel; TIED 1/0), vit
      (ViTForImageClassification) or clip (CLIPModel, ACT and EPS in both towers). Also writes
      DIR/check.safetensors: the inputs, the model's outputs, and as alt_<output> the outputs
      of the same weights with tessera's original choices (tanh GELU, eps 1e-5), which shows
      the test could tell the settings apart.
  outputs DIR
      loads DIR with from_pretrained (the model type from its config.json) and writes
      DIR/hf_outputs.safetensors: the outputs for DIR/inputs.safetensors.

Inputs and outputs (tessera's layouts: images channels last):
  gpt2: tokens (B, T) i32 -> logits (B, T, V)
  vit:  images (B, S, S, C) -> logits (B, classes)
  clip: images, text (B, L) i32, text_eot (B) -> image_embeds, text_embeds (L2-normalised)
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))

import safetensors_io  # noqa: E402
import torch  # noqa: E402
from transformers import (CLIPConfig, CLIPModel, GPT2Config, GPT2LMHeadModel,  # noqa: E402
                          ViTConfig, ViTForImageClassification)

CLASSES = {"gpt2": GPT2LMHeadModel, "vit": ViTForImageClassification, "clip": CLIPModel}


def perturb(model):
    # A random init has zero biases and unit LayerNorms: move them so that every tensor's
    # mapping is exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "norm" in name or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))


def outputs(kind, model, t):
    with torch.no_grad():
        if kind == "gpt2":
            return {"logits": model(t["tokens"].long()).logits.float()}
        if kind == "vit":
            return {"logits": model(t["images"].permute(0, 3, 1, 2)).logits.float()}
        img = model.get_image_features(pixel_values=t["images"].permute(0, 3, 1, 2))
        txt = model.get_text_features(input_ids=t["text"].long())
        return {"image_embeds": torch.nn.functional.normalize(img, dim=-1).float(),
                "text_embeds": torch.nn.functional.normalize(txt, dim=-1).float()}


def config(kind, act, eps, tied):
    # Only the fields given: "default" leaves the architecture's default in force.
    a = {} if act == "default" else {"gpt2": {"activation_function": act}}.get(
        kind, {"hidden_act": act})
    e = {} if eps == "default" else {"gpt2": {"layer_norm_epsilon": float(eps)}}.get(
        kind, {"layer_norm_eps": float(eps)})
    if kind == "gpt2":
        return GPT2Config(vocab_size=61, n_positions=16, n_embd=32, n_layer=2, n_head=4,
                          tie_word_embeddings=tied, resid_pdrop=0.0, embd_pdrop=0.0,
                          attn_pdrop=0.0, **a, **e)
    if kind == "vit":
        return ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64,
                         num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                         num_labels=10, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, **a, **e)
    tower = dict(num_hidden_layers=2, num_attention_heads=4, attention_dropout=0.0, dropout=0.0,
                 **a, **e)
    return CLIPConfig(
        text_config=dict(vocab_size=50, hidden_size=32, intermediate_size=128,
                         max_position_embeddings=10, eos_token_id=49, **tower),
        vision_config=dict(hidden_size=48, intermediate_size=192, image_size=16, patch_size=8,
                           **tower),
        projection_dim=24)


def inputs(kind):
    if kind == "gpt2":
        return {"tokens": torch.randint(0, 61, (2, 12), dtype=torch.int32)}
    if kind == "vit":
        return {"images": torch.randn(2, 32, 32, 3)}
    text = torch.randint(0, 49, (3, 10), dtype=torch.int32)
    eot = torch.tensor([4, 9, 6], dtype=torch.int32)
    for b in range(3):
        text[b, eot[b]] = 49
        text[b, eot[b] + 1:] = 0
    return {"images": torch.randn(3, 16, 16, 3), "text": text, "text_eot": eot}


def make(kind, out, act, eps, tied):
    torch.manual_seed({"gpt2": 3, "vit": 4, "clip": 5}[kind])
    model = CLASSES[kind](config(kind, act, eps, tied)).eval()
    perturb(model)
    t = inputs(kind)
    if kind == "gpt2":
        with torch.no_grad():  # MLP inputs of order 1, where the GELU forms differ most
            for block in model.transformer.h:
                block.mlp.c_fc.weight.mul_(20)
                block.mlp.c_proj.weight.mul_(50)
            # Logits of order 1 rather than 0.1 (the head is the 0.02-scale token table).
            model.transformer.wte.weight.mul_(10)
            if not tied:
                model.lm_head.weight.mul_(10)
    if kind == "vit":
        with torch.no_grad():  # HF inits the class token and positions with zeros / small values
            model.vit.embeddings.cls_token.normal_(0, 0.5)
            model.vit.embeddings.position_embeddings.normal_(0, 0.5)
            if eps == "default" or float(eps) < 1e-6:  # HF ViT's default is 1e-12
                # Tiny eps: make the first LayerNorm's rows of small variance (about 1e-8), so
                # that eps 1e-5 instead would change the outputs far beyond the tolerance.
                model.vit.embeddings.cls_token.mul_(1e-4)
                model.vit.embeddings.position_embeddings.mul_(1e-4)
                model.vit.embeddings.patch_embeddings.projection.bias.mul_(1e-4)
                t["images"] = t["images"] * 1e-4
    model.save_pretrained(out, safe_serialization=True)
    got = outputs(kind, model, t)
    # The same weights with tanh GELU and eps 1e-5 (tessera's original and only choices).
    alt = CLASSES[kind](config(kind, "gelu_new" if kind == "gpt2" else "gelu_pytorch_tanh",
                               "1e-5", tied)).eval()
    alt.load_state_dict(model.state_dict())
    alt_out = outputs(kind, alt, t)
    t.update(got)
    t.update({"alt_" + k: v for k, v in alt_out.items()})
    safetensors_io.write(os.path.join(out, "check.safetensors"), t)


def hf_outputs(d):
    with open(os.path.join(d, "config.json")) as f:
        kind = json.load(f)["model_type"]
    model = CLASSES[kind].from_pretrained(d).eval()
    t, _ = safetensors_io.read(os.path.join(d, "inputs.safetensors"))
    safetensors_io.write(os.path.join(d, "hf_outputs.safetensors"), outputs(kind, model, t))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5],
             len(sys.argv) > 6 and sys.argv[6] == "1")
    elif sys.argv[1] == "outputs":
        hf_outputs(sys.argv[2])
    else:
        sys.exit("unknown command " + sys.argv[1])
