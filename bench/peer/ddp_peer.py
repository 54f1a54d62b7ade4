"""The PyTorch DDP peer of `scripts/bench_ddp`: the bench_step peer (bench/peer/peer.py) trained
data-parallel with torch.distributed (gloo) and DistributedDataParallel, one process per rank.

    /usr/bin/python3 bench/peer/ddp_peer.py --config FILE [--ranks N] [--threads N] [--steps N]
        [--warmup N] [--bind core|none] [--batch B] [--seq-len T] [--grad-as-bucket-view 0|1]

Starts `--ranks` processes with torch.multiprocessing.spawn (gloo over loopback TCP). Each rank
builds the model of bench/peer/models.py with the same seed, wraps it in DDP with its defaults
(bucket_cap_mb=25, broadcast_buffers, parameters in registration order), and trains on its own
slice of the global batch (data.global_batch_size / ranks, random batches made before timing)
with the same step as the single-process peer: zero_grad, forward, backward (DDP all-reduces
buckets as their gradients are ready, overlapped with the rest of backward), grad-norm clip,
AdamW (per-tensor, as peer.py measured fastest). Rank 0 times whole steps; the all-reduce ends
every step, so its step time is the job's. After training it also times a bare gloo all-reduce
of a flat f32 buffer of all the gradients (median of 5), the communication DDP has to hide.

Tuning comes from the environment like peer.py (LD_LIBRARY_PATH for OpenMP OpenBLAS,
ATEN_CPU_CAPABILITY); each rank calls torch.set_num_threads(--threads). --bind core pins rank i
to the i-th CPU of the allowed set (os.sched_setaffinity), as mpirun --bind-to core would.

Prints a few lines and, last, one JSON line:
    {"ddp_step_ms": median, "ranks", "threads", "bind", "allreduce_ms", "params", ...}
"""
import argparse
import json
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flops  # noqa: E402
import models  # noqa: E402
import peer  # noqa: E402  (make_batch, param_groups, cpu_capability, blas_library)
import tessera_config  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, a, port):
    world = a.ranks
    if a.bind == "core":
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[rank % len(cpus)]})
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", rank=rank, world_size=world)

    cfg = tessera_config.load(a.config)
    fl = flops.model_flops(cfg, a.seq_len, a.batch)
    B, T = fl["batch"], fl["seq_len"]
    if B % world:
        sys.exit(f"ddp_peer: global batch {B} not divisible by {world} ranks")
    torch.manual_seed(int(cfg.train.seed))
    model = models.build(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != fl["params_total"]:
        sys.exit(f"ddp_peer: model has {n_params} parameters but flops.py counts "
                 f"{fl['params_total']}")
    ddp = DDP(model, gradient_as_bucket_view=bool(a.grad_as_bucket_view))
    o = cfg.optim
    opt = torch.optim.AdamW(peer.param_groups(model, o), lr=o.lr, betas=(o.beta1, o.beta2),
                            eps=o.eps, foreach=False)
    gen = torch.Generator().manual_seed(int(cfg.train.seed) + 1000 * rank)
    batches = [peer.make_batch(cfg, B // world, T, gen) for _ in range(3)]

    times, losses = [], []
    dist.barrier()
    for i in range(a.warmup + a.steps):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=not a.grad_as_bucket_view)
        loss = ddp(*batch)
        loss.backward()
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if i >= a.warmup:
            times.append(dt * 1e3)

    # The communication DDP overlaps: one all-reduce of every gradient as one flat buffer.
    flat = torch.zeros(n_params)
    ar = []
    for _ in range(6):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        ar.append((time.perf_counter() - t0) * 1e3)
    ar = ar[1:]
    dist.barrier()

    if rank == 0:
        med = statistics.median(times)
        print(f"ddp peer {fl['kind']} global B={B} ({B // world} per rank) T={T} params={n_params} "
              f"ranks={world} threads/rank={torch.get_num_threads()} bind={a.bind} "
              f"isa={peer.cpu_capability()} blas={peer.blas_library()}")
        print(f"ddp step ms: median {med:.1f} min {min(times):.1f} max {max(times):.1f} (over "
              f"{len(times)} steps after {a.warmup} warm-up); loss {losses[0]:.4f} -> "
              f"{losses[-1]:.4f}; gloo all-reduce of {n_params * 4 / 2**20:.1f} MiB: median "
              f"{statistics.median(ar):.1f} ms (min {min(ar):.1f}, max {max(ar):.1f})")
        print(json.dumps({"ddp_step_ms": round(med, 2), "min_step_ms": round(min(times), 2),
                          "steps": len(times), "ranks": world, "threads": torch.get_num_threads(),
                          "bind": a.bind, "params": n_params, "batch": B, "seq_len": T,
                          "allreduce_ms": round(statistics.median(ar), 2),
                          "allreduce_mib": round(n_params * 4 / 2**20, 2),
                          "loss_first": losses[0], "loss_last": losses[-1],
                          "flops_per_step": fl["flops_per_step"], "isa": peer.cpu_capability(),
                          "grad_as_bucket_view": bool(a.grad_as_bucket_view)}), flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description="PyTorch DDP peer for tessera's DP benchmark")
    ap.add_argument("--config", required=True)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads per rank")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--bind", choices=["core", "none"], default="none")
    ap.add_argument("--seq-len", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0, help="global batch; default the config's")
    ap.add_argument("--grad-as-bucket-view", type=int, default=0,
                    help="DDP(gradient_as_bucket_view=...): grads alias the buckets (no copy)")
    a = ap.parse_args()
    a.config = os.path.abspath(a.config)
    mp.spawn(worker, args=(a, free_port()), nprocs=a.ranks, join=True)


if __name__ == "__main__":
    main()
