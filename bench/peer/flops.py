"""Model FLOPs per training step for a tessera config, shared by bench_step and the peer.

    flops = 6 * sum(params * tokens they are applied to) + 12 * L * B * T^2 * d   (per tower)

The first term is the usual 6·N·tokens (2 forward + 4 backward per multiply-add), counted where
each parameter actually acts: block, patch-embedding and LM-head weights act on every token;
a classification head, a CLIP projection and DiT's timestep MLP and adaLN modulation act once
per sample. Lookup tables (token/position embeddings, class embeddings, cls token) are excluded:
they do no multiplies. The second term is attention's QK^T and AV (forward 4·B·T²·d per layer,
backward twice that), counted in full even when causal (the PaLM convention). For CLIP both
towers are summed, plus the B x B logits matmul. `params_total` is every trainable parameter,
which the peer checks against its own model so the two counts cannot drift apart.

Usage: flops.py --config FILE [--seq-len T] [--batch B]   prints one JSON line.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tessera_config  # noqa: E402

DIT_FREQ_DIM = 256  # DiT's sinusoidal timestep features before the timestep MLP


def block_params(d, r, ln_affine=True):
    """One pre-LN transformer block: fused qkv, proj, MLP fc and proj (all with bias), 2 LNs."""
    return (3 * d * d + 3 * d) + (d * d + d) + (r * d * d + r * d) + (r * d * d + d) + (
        4 * d if ln_affine else 0)


def _tower(t, tokens, B):
    """Per-token block stack + final LN: (params, flops) of L blocks at `tokens` per sample."""
    d, L, r = t.d_model, t.n_layers, t.mlp_ratio
    p = L * block_params(d, r) + 2 * d
    return p, 6 * p * B * tokens + 12 * L * B * tokens * tokens * d


def _image_tower(v, B):
    """ViT without head: Linear patch embedding, cls token, learned positions, blocks, ln_f."""
    d = v.transformer.d_model
    n = (v.image_size // v.patch) ** 2
    patch = v.patch * v.patch * v.channels * d + d
    p_blocks, f_blocks = _tower(v.transformer, n + 1, B)
    params = patch + d + (n + 1) * d + p_blocks
    return params, 6 * patch * B * n + f_blocks


def model_flops(cfg, seq_len=0, batch=0):
    """Returns dict(flops_per_step, params_total, tokens_per_step, batch, seq_len)."""
    m = cfg.model
    B = batch or cfg.data.global_batch_size
    kind = m.WhichOneof("kind")
    T = 0
    if kind == "gpt":
        g = m.gpt
        d, V = g.transformer.d_model, g.vocab_size
        T = seq_len or g.context
        p_blocks, f = _tower(g.transformer, T, B)
        params = V * d + g.context * d + p_blocks + (0 if g.tie_embedding else V * d)
        f += 6 * V * d * B * T  # the LM head acts on every token, tied or not
        tokens = B * T
    elif kind == "vit":
        v = m.vit
        params, f = _image_tower(v, B)
        head = v.transformer.d_model * v.n_classes + v.n_classes if v.n_classes > 0 else 0
        params += head
        f += 6 * head * B
        T = (v.image_size // v.patch) ** 2 + 1
        tokens = B * T
    elif kind == "clip":
        c = m.clip
        E, di, dt = c.embed_dim, c.image.transformer.d_model, c.text.transformer.d_model
        p_img, f_img = _image_tower(c.image, B)
        T = seq_len or c.text.context
        p_txt, f_txt = _tower(c.text.transformer, T, B)
        p_txt += c.text.vocab_size * dt + c.text.context * dt
        proj = di * E + dt * E  # no bias, as in CLIP
        params = p_img + p_txt + proj + 1 + (1 if c.loss == c.SIGLIP else 0)
        f = f_img + f_txt + 6 * proj * B + 6 * B * B * E
        tokens = B * ((c.image.image_size // c.image.patch) ** 2 + 1 + T)
    elif kind == "dit":
        x = m.dit
        d, L, r = x.transformer.d_model, x.transformer.n_layers, x.transformer.mlp_ratio
        n = (x.image_size // x.patch) ** 2
        pdim = x.patch * x.patch * x.channels
        per_token = (pdim * d + d) + L * block_params(d, r, ln_affine=False) + (d * pdim + pdim)
        per_sample = (DIT_FREQ_DIM * d + d + d * d + d) + L * (6 * d * d + 6 * d) + (2 * d * d + 2 * d)
        labels = (x.n_classes + 1) * d if x.n_classes > 0 else 0  # + the null class
        params = per_token + per_sample + labels
        f = 6 * per_token * B * n + 6 * per_sample * B + 12 * L * B * n * n * d
        T = n
        tokens = B * n
    else:
        raise ValueError(f"unknown model kind {kind}")
    return {"kind": kind, "flops_per_step": int(f), "params_total": int(params),
            "tokens_per_step": int(tokens), "batch": B, "seq_len": T}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--seq-len", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0)
    a = ap.parse_args()
    print(json.dumps(model_flops(tessera_config.load(a.config), a.seq_len, a.batch)))


if __name__ == "__main__":
    main()
