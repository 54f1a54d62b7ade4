"""scripts/bench_ddp: tessera data-parallel (2 ranks x 1 thread) against PyTorch DDP (gloo).

    scripts/bench_ddp [CONFIG] [--ranks N] [--steps N] [--bind core|none|best]
                      [--grad-as-bucket-view 0|1] [--build-dir DIR] [--no-build]

CONFIG defaults to configs/bench/gpt.pbtxt. Both sides train the config's global batch split over
`--ranks` processes (default 2) of one thread each, steps + 2 steps, median step time after the
first 2:
    tessera: `mpirun -np N -x TESSERA_NUM_THREADS=1 tessera train` (bench/peer/bench_scaling.py)
    DDP:     bench/peer/ddp_peer.py (torch.multiprocessing.spawn, gloo, DDP defaults), tuned as
             bench_step tunes its peer (OpenMP OpenBLAS, ATEN_CPU_CAPABILITY=avx512,
             torch.set_num_threads(1) per rank)
--bind best (default) runs each side with its ranks pinned to one core each (mpirun --bind-to
core / sched_setaffinity) and unpinned, and keeps each side's faster. Prints both side by side
and, last, one JSON line {"config", "tessera_step_ms", "ddp_step_ms", "speedup", ...}
(speedup = ddp / tessera; goal >= 1.15 on the gpt bench config) with the load average at start
and end: other processes on the cores inflate both sides, so the figures need a quiet machine.
Exit status 0 when both sides ran, 1 otherwise (the JSON line is still printed, with nulls).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import bench_scaling  # noqa: E402
import bench_step  # noqa: E402
import flops  # noqa: E402
import tessera_config  # noqa: E402

log = bench_step.log
rnd = bench_scaling.rnd


def run_ddp(a, bind):
    cmd = [bench_step.PY, os.path.join(HERE, "ddp_peer.py"), "--config", a.config,
           "--ranks", str(a.ranks), "--threads", "1", "--steps", str(a.steps),
           "--warmup", str(bench_step.SKIP_STEPS), "--bind", bind,
           "--grad-as-bucket-view", str(a.grad_as_bucket_view)]
    env = dict(os.environ, **bench_step.PEER_ENV)
    log("$ %s %s" % (" ".join(f"{k}={v}" for k, v in bench_step.PEER_ENV.items()), " ".join(cmd)))
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = r.stdout.strip().splitlines()
    for line in lines[:-1][-4:]:
        log("  " + line)
    if r.returncode != 0:
        log("  " + (lines[-1] if lines else ""))
        return None
    try:
        return bench_step.last_json_line(r.stdout)
    except ValueError:
        return None


def main():
    ap = argparse.ArgumentParser(description="tessera DP vs PyTorch DDP, same ranks and batch")
    ap.add_argument("config", nargs="?", default="configs/bench/gpt.pbtxt")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up steps)")
    ap.add_argument("--bind", choices=["core", "none", "best"], default="best")
    ap.add_argument("--grad-as-bucket-view", type=int, default=0,
                    help="DDP(gradient_as_bucket_view=...) for the peer")
    ap.add_argument("--build-dir", default=os.environ.get("TESSERA_BUILD_DIR", "build"))
    ap.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    a = ap.parse_args()
    a.config = os.path.abspath(a.config if os.path.exists(a.config)
                               else os.path.join(ROOT, a.config))
    build_dir = os.path.join(ROOT, a.build_dir)
    if not a.no_build:
        bench_step.build(build_dir)

    cfg = tessera_config.load(a.config)
    fl = flops.model_flops(cfg)
    load_start = os.getloadavg()
    peak_before = bench_step.sgemm_peak(build_dir, 1)
    log(f"{os.path.relpath(a.config, ROOT)}: {fl['kind']} global batch {fl['batch']} "
        f"({fl['batch'] // a.ranks} per rank) T={fl['seq_len']} params={fl['params_total']} "
        f"({fl['params_total'] * 4 / 2**20:.1f} MiB of f32 gradients) | {a.ranks} ranks x 1 "
        f"thread | sgemm peak 1t {peak_before:.1f} GFLOP/s | load {load_start[0]:.2f} "
        f"{load_start[1]:.2f} {load_start[2]:.2f}")

    t, t_binds = bench_scaling.train_dp(build_dir, a.config, a.ranks, 1, a.steps, peak_before,
                                        a.bind)
    t_ms = t.get("step_ms")
    binds = ["core", "none"] if a.bind == "best" else [a.bind]
    d, d_binds = None, {}
    for b in binds:
        res = run_ddp(a, b)
        d_binds[b] = res["ddp_step_ms"] if res else None
        if res and (d is None or res["ddp_step_ms"] < d["ddp_step_ms"]):
            d = res
    d_ms = d["ddp_step_ms"] if d else None

    peak = max(peak_before, bench_step.sgemm_peak(build_dir, 1))
    load_end = os.getloadavg()

    def mfu(ms):
        return None if ms is None else fl["flops_per_step"] / (ms / 1e3) / (a.ranks * peak * 1e9)

    def binds_text(bs):
        return ", ".join(f"{b}: {'-' if ms is None else '%.1f' % ms}" for b, ms in bs.items())

    log("")
    log(f"{'side (' + str(a.ranks) + ' ranks x 1 thread)':<28}{'step ms':>10}{'samples/s':>11}"
        f"{'MFU':>8}  bind (step ms each way)")
    for name, ms, chosen, bs in (("tessera (MPI)", t_ms, t.get("bind"), t_binds),
                                 ("pytorch DDP (gloo)", d_ms, d and d["bind"], d_binds)):
        if ms is None:
            log(f"{name:<28}{'-':>10}{'-':>11}{'-':>8}  {binds_text(bs)}")
        else:
            log(f"{name:<28}{ms:>10.1f}{fl['batch'] / (ms / 1e3):>11.2f}{mfu(ms):>8.3f}  "
                f"{chosen} ({binds_text(bs)})")
    if t_ms is not None and "allreduce_hidden" in t:
        log(f"tessera all-reduce: {100 * t['allreduce_hidden']:.1f} % hidden behind backward, "
            f"median wait {t['allreduce_wait_ms']:.1f} ms per step")
    if d:
        log(f"gloo all-reduce of all {d['allreduce_mib']:.1f} MiB of gradients (DDP's process "
            f"group, outside training): median {d['allreduce_ms']:.1f} ms")
    speedup = d_ms / t_ms if (t_ms and d_ms) else None
    if speedup:
        log(f"speedup (DDP / tessera): {speedup:.3f} (goal >= 1.15)")
    log(f"sgemm peak 1t (higher of before/after): {peak:.1f} GFLOP/s | load {load_end[0]:.2f} "
        f"{load_end[1]:.2f} {load_end[2]:.2f}")
    if max(load_start[0], load_end[0]) > os.cpu_count() + 0.5:
        log(f"WARNING: load average above {os.cpu_count()} CPUs: other processes share the cores; "
            "both sides' times are inflated and the comparison is not trustworthy")
    print(json.dumps({
        "bench": "ddp", "config": os.path.relpath(a.config, ROOT), "kind": fl["kind"],
        "ranks": a.ranks, "threads_per_rank": 1, "global_batch": fl["batch"],
        "steps": a.steps, "tessera_step_ms": rnd(t_ms, 2), "ddp_step_ms": rnd(d_ms, 2),
        "speedup": rnd(speedup, 4), "tessera_mfu": rnd(mfu(t_ms), 4), "ddp_mfu": rnd(mfu(d_ms), 4),
        "tessera_bind": t.get("bind"), "ddp_bind": d and d["bind"],
        "tessera_step_ms_by_bind": t_binds, "ddp_step_ms_by_bind": d_binds,
        "tessera_allreduce_hidden": rnd(t.get("allreduce_hidden"), 4),
        "tessera_allreduce_wait_ms": rnd(t.get("allreduce_wait_ms"), 2),
        "gloo_allreduce_ms": d and d["allreduce_ms"], "grad_mib": d and d["allreduce_mib"],
        "ddp_grad_as_bucket_view": bool(a.grad_as_bucket_view),
        "sgemm_peak_gflops_1t": round(peak, 1), "model_gflops_per_step":
            round(fl["flops_per_step"] / 1e9, 3),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in load_end], "cpus": os.cpu_count()}), flush=True)
    return 0 if (t_ms is not None and d_ms is not None) else 1


if __name__ == "__main__":
    sys.exit(main())
