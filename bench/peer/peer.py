"""The PyTorch peer of `scripts/bench_step`: trains a faithful PyTorch model of a tessera config
on random synthetic batches and times whole steps (forward + backward + grad clip + AdamW).

    /usr/bin/python3 bench/peer/peer.py --config FILE [--threads N] [--steps N] [--warmup N]
        [--seq-len T] [--batch B] [--foreach 0|1]

Prints a few lines of text and, last, one JSON line:
    {"peer_step_ms": median, "steps": N, "threads": N, "params": count, ...}

The script sets nothing that the caller is meant to tune: the BLAS (LD_LIBRARY_PATH), the ATen
kernel level (ATEN_CPU_CAPABILITY) and OMP settings come from the environment, which
scripts/bench_step fills as a tuned user would. It only calls torch.set_num_threads(--threads),
because torch defaults to one thread here. Batches are made before timing (tessera's synthetic
loader makes them in background threads), a few distinct ones cycled.
"""
import argparse
import json
import os
import re
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flops  # noqa: E402
import models  # noqa: E402
import tessera_config  # noqa: E402


def make_batch(cfg, B, T, gen):
    """Random inputs for one step, as keyword-free positional args of the model's forward."""
    m = cfg.model
    kind = m.WhichOneof("kind")
    if kind == "gpt":
        V = m.gpt.vocab_size
        return (torch.randint(V, (B, T), generator=gen), torch.randint(V, (B, T), generator=gen))
    if kind == "vit":
        v = m.vit
        return (torch.randn(B, v.image_size, v.image_size, v.channels, generator=gen),
                torch.randint(v.n_classes, (B,), generator=gen))
    if kind == "clip":
        c = m.clip
        V = c.text.vocab_size
        tokens = torch.randint(V - 1, (B, T), generator=gen)
        eot = torch.randint(T // 2, T, (B,), generator=gen)  # end-of-text somewhere in the back half
        tokens[torch.arange(B), eot] = V - 1
        return (torch.randn(B, c.image.image_size, c.image.image_size, c.image.channels,
                            generator=gen), tokens, eot)
    if kind == "dit":
        x = m.dit
        shape = (B, x.image_size, x.image_size, x.channels)
        return (torch.randn(*shape, generator=gen),
                torch.randint(max(x.n_classes, 1), (B,), generator=gen),
                torch.randint(x.diffusion_steps, (B,), generator=gen),
                torch.randn(*shape, generator=gen))
    raise ValueError(kind)


def cpu_capability():
    """ATen's kernel level in use (torch 1.13 only shows it in its config summary)."""
    m = re.search(r"CPU capability usage: (\S+)", torch.__config__.show())
    return m.group(1) if m else "?"


def blas_library():
    """The BLAS shared object actually mapped into this process (BLAS_INFO=generic in Debian's
    torch: whatever libblas.so.3 resolves to)."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line}
    return ",".join(sorted(os.path.basename(os.path.dirname(l)) + "/" + os.path.basename(l)
                           for l in libs if "libopenblas" in l or "libblas" in l)) or "?"


def param_groups(model, o):
    """tessera's groups: matrices decay; norms, biases and embeddings don't (config defaults)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_embedding = "emb" in name or name.endswith((".cls", ".pos"))
        matrix = p.dim() >= 2 and not is_embedding
        if matrix or (o.decay_norms_and_biases and p.dim() < 2) or (
                o.decay_embeddings and is_embedding):
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": decay, "weight_decay": o.weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer for tessera's step benchmark")
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 = leave")
    ap.add_argument("--seq-len", type=int, default=0, help="GPT / text tokens (default: context)")
    ap.add_argument("--batch", type=int, default=0, help="default: data.global_batch_size")
    # torch 1.13 on CPU: the per-tensor AdamW measured ~2x faster than foreach=True (44 vs 90-146
    # ms for a 14M-parameter model, 1 thread); 1.13 has no fused CPU AdamW.
    ap.add_argument("--foreach", type=int, default=0,
                    help="AdamW multi-tensor (foreach) implementation; 0 (default) measured faster")
    a = ap.parse_args()

    cfg = tessera_config.load(a.config)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(int(cfg.train.seed))
    fl = flops.model_flops(cfg, a.seq_len, a.batch)
    B, T = fl["batch"], fl["seq_len"]

    model = models.build(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != fl["params_total"]:
        sys.exit(f"peer: model has {n_params} parameters but flops.py counts "
                 f"{fl['params_total']}: the two disagree about the architecture")
    o = cfg.optim
    opt = torch.optim.AdamW(param_groups(model, o), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                            foreach=bool(a.foreach))
    gen = torch.Generator().manual_seed(int(cfg.train.seed))
    batches = [make_batch(cfg, B, T, gen) for _ in range(3)]

    times, losses = [], []
    for i in range(a.warmup + a.steps):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(*batch)
        loss.backward()
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if i >= a.warmup:
            times.append(dt * 1e3)

    med = statistics.median(times)
    print(f"peer {fl['kind']} B={B} T={T} params={n_params} threads={torch.get_num_threads()} "
          f"isa={cpu_capability()} blas={blas_library()}")
    print(f"peer step ms: median {med:.1f} min {min(times):.1f} max {max(times):.1f} "
          f"(over {len(times)} steps after {a.warmup} warm-up); loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(json.dumps({"peer_step_ms": round(med, 2), "steps": len(times),
                      "threads": torch.get_num_threads(), "params": n_params,
                      "min_step_ms": round(min(times), 2), "batch": B, "seq_len": T,
                      "loss_first": losses[0], "loss_last": losses[-1],
                      "flops_per_step": fl["flops_per_step"], "isa": cpu_capability()}))


if __name__ == "__main__":
    main()
