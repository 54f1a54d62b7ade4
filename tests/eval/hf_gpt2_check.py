"""The transformers side of tests/eval/hf_gpt2_test.cc (runs under REPO/.venv/bin/python, which
scripts/setup makes with transformers from PyPI on top of Debian's torch).

  make DIR TIED      a randomly initialised GPT2LMHeadModel saved with save_pretrained
                     (safetensors) to DIR, plus DIR/check.safetensors: tokens (2, 12) i32 and
                     the model's logits (2, 12, V) f32
  logits DIR         loads DIR with from_pretrained and writes DIR/hf_logits.safetensors: the
                     logits of DIR/tokens.safetensors' tokens
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))

import safetensors_io  # noqa: E402
import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402


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


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3] == "1")
    else:
        logits(sys.argv[2])
