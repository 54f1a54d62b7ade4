"""scripts/bench_scaling: data-parallel scaling of `tessera train` on this machine's cores.

    scripts/bench_scaling [CONFIG ...] [--steps N] [--bind core|none|best]
                          [--build-dir DIR] [--no-build] [--keep-run-dirs]

For each config (default configs/bench/gpt.pbtxt and configs/bench/clip.pbtxt) trains three
layouts at the same global batch (data.global_batch_size of the config):
    1r x 1t   one process, TESSERA_NUM_THREADS=1
    1r x 2t   one process, TESSERA_NUM_THREADS=2
    2r x 1t   `mpirun -np 2 -x TESSERA_NUM_THREADS=1`, each rank half the global batch
each for `steps + 2` steps, and takes the median `step_ms` of metrics.jsonl after the first 2
steps (rank 0 writes it; under DP a step ends after the gradient all-reduce, so rank 0's step
time is the job's). For the 2-rank layout it also takes the medians of `allreduce_hidden`
(1 - wait / comm over the step, comm = time some bucket was in flight, wait = time the trainer
blocked on the all-reduce after backward) and `allreduce_wait_ms`.

Binding: with 2 ranks on 2 cores, Open MPI's default (--bind-to core) and --bind-to none can
differ a lot, the more so when other processes share the cores. --bind best (default) runs the
2-rank layout both ways and keeps the faster, printing both; the one-process layouts are plain
processes (no binding), as a user would start them.

Figures:
    throughput  = global batch / median step time (samples/s)
    MFU         = model FLOPs per step (bench/peer/flops.py, the same count as bench_step) /
                  step time / (ranks x f32 sgemm peak at the layout's threads per rank, measured
                  by bench_ops before and after, the higher kept). train.peak_flops is set to the
                  same per-rank peak, so tessera's own log agrees.
    DP efficiency = thr(2r x 1t) / (2 x thr(1r x 1t))              goal >= 0.95
    allreduce hidden share (2r x 1t)                               goal >= 0.80
Prints a table per config and, last, one JSON line with every figure and the load average at
start and end (other processes on the 2 cores inflate every time: the figures need a quiet
machine). Exit status 0 when every layout ran, 1 otherwise (the JSON line has nulls).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import bench_step  # noqa: E402  (build, sgemm_peak, SKIP_STEPS, log)
import flops  # noqa: E402
import tessera_config  # noqa: E402

log = bench_step.log
SKIP_STEPS = bench_step.SKIP_STEPS
DEFAULT_CONFIGS = ["configs/bench/gpt.pbtxt", "configs/bench/clip.pbtxt"]
LAYOUTS = [(1, 1), (1, 2), (2, 1)]  # (ranks, threads per rank)
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def layout_name(ranks, threads):
    return f"{ranks}r x {threads}t"


def rnd(x, n):
    return None if x is None else round(x, n)


def train(build_dir, config, ranks, threads, steps, peak_gflops_per_rank, bind="core",
          sets=(), keep_run_dir=False):
    """Trains `steps + SKIP_STEPS` steps; returns a dict of medians over the steps after the
    first SKIP_STEPS (step_ms, samples_per_s, allreduce_hidden, allreduce_wait_ms) or
    {"error": message}. ranks > 1 runs under mpirun with --bind-to `bind`."""
    exe = os.path.join(build_dir, "tessera")
    run_dir = tempfile.mkdtemp(prefix="bench_scaling_")
    args = [exe, "train", "--config", config, "--run-dir", run_dir,
            "--set", f"train.steps={steps + SKIP_STEPS}", "--set", "log.every_steps=1",
            "--set", f"train.peak_flops={peak_gflops_per_rank * 1e9:.6g}",
            "--set", "checkpoint.every_steps=0"]
    for s in sets:
        args += ["--set", s]
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads))
    if ranks > 1:
        env.update(MPI_ENV)
        cmd = ["mpirun", "--oversubscribe", "-np", str(ranks), "--bind-to", bind,
               "-x", f"TESSERA_NUM_THREADS={threads}"] + args
        log("$ " + " ".join(cmd))
    else:
        cmd = args
        log("$ TESSERA_NUM_THREADS=%d %s" % (threads, " ".join(cmd)))
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if r.returncode != 0:
            tail = "\n".join(r.stdout.strip().splitlines()[-5:])
            return {"error": f"tessera train exited with status {r.returncode}: {tail}"}
        path = os.path.join(run_dir, "metrics.jsonl")
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        rows = [x for x in rows if x.get("kind", "train") == "train" and "step_ms" in x
                and int(x["step"]) > SKIP_STEPS]
        if not rows:
            return {"error": f"{path}: no rows with step_ms after step {SKIP_STEPS}"}
        out = {"steps": len(rows)}
        for key in ("step_ms", "samples_per_s", "allreduce_hidden", "allreduce_wait_ms"):
            vals = [float(x[key]) for x in rows if key in x]
            if vals:
                out[key] = statistics.median(vals)
        out["min_step_ms"] = min(float(x["step_ms"]) for x in rows)
        return out
    except (OSError, ValueError, KeyError) as e:
        return {"error": f"tessera: {e}"}
    finally:
        if keep_run_dir:
            log(f"run dir kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def train_dp(build_dir, config, ranks, threads, steps, peak, bind, sets=(), keep=False):
    """The multi-rank layout under --bind-to `bind`, or, for bind == "best", under core and
    none, keeping the lower median step time. Returns (result, {bind: step_ms or None})."""
    binds = ["core", "none"] if bind == "best" else [bind]
    tried, best = {}, None
    for b in binds:
        res = train(build_dir, config, ranks, threads, steps, peak, b, sets, keep)
        res["bind"] = b
        tried[b] = rnd(res.get("step_ms"), 2)
        if "error" in res:
            log(f"  --bind-to {b}: {res['error']}")
        else:
            log(f"  --bind-to {b}: median step {res['step_ms']:.1f} ms")
            if best is None or res["step_ms"] < best["step_ms"]:
                best = res
    return (best or res), tried


def peaks(build_dir, threads_set):
    """f32 sgemm peak (GFLOP/s) per thread count, as bench_step measures it."""
    return {t: bench_step.sgemm_peak(build_dir, t) for t in sorted(threads_set)}


def bench_config(build_dir, config, steps, bind, peak, keep):
    cfg = tessera_config.load(config)
    fl = flops.model_flops(cfg)
    B = fl["batch"]
    log("")
    log(f"== {os.path.relpath(config, ROOT)}: {fl['kind']} global batch {B} T={fl['seq_len']} "
        f"params={fl['params_total']} model GFLOP/step={fl['flops_per_step'] / 1e9:.2f} | "
        f"load {os.getloadavg()[0]:.2f}")
    results = {}
    for ranks, threads in LAYOUTS:
        name = layout_name(ranks, threads)
        if B % ranks:
            results[name] = {"error": f"global batch {B} not divisible by {ranks} ranks"}
            continue
        if ranks > 1:
            res, tried = train_dp(build_dir, config, ranks, threads, steps, peak[threads], bind,
                                  keep=keep)
            res["bind_step_ms"] = tried
        else:
            res = train(build_dir, config, ranks, threads, steps, peak[threads],
                        keep_run_dir=keep)
        res["ranks"], res["threads"] = ranks, threads
        if "step_ms" in res:
            res["samples_per_s"] = B / (res["step_ms"] / 1e3)  # from the median step
        else:
            log(f"  {name}: not measured: {res.get('error')}")
        results[name] = res
    return config, fl, results


def report(config, fl, results, peak):
    """Prints the table of one config and returns its JSON object. peak: GFLOP/s per thread
    count (per rank)."""
    B = fl["batch"]
    for r in results.values():
        if "step_ms" in r:
            r["mfu"] = fl["flops_per_step"] / (r["step_ms"] / 1e3) / (
                r["ranks"] * peak[r["threads"]] * 1e9)

    def thr(name):
        return results.get(name, {}).get("samples_per_s")

    t11, t12, t21 = thr("1r x 1t"), thr("1r x 2t"), thr("2r x 1t")
    eff = t21 / (2 * t11) if (t11 and t21) else None
    vs_threads = t21 / t12 if (t12 and t21) else None
    log("")
    log(f"== {os.path.relpath(config, ROOT)} ({fl['kind']}, global batch {B})")
    log(f"{'layout':<10}{'step ms':>10}{'samples/s':>11}{'MFU':>8}{'ar hidden':>11}"
        f"{'ar wait ms':>12}  bind")
    for ranks, threads in LAYOUTS:
        name = layout_name(ranks, threads)
        r = results[name]
        if "step_ms" not in r:
            log(f"{name:<10}{'-':>10}{'-':>11}{'-':>8}{'-':>11}{'-':>12}")
            continue
        hid = f"{r['allreduce_hidden']:.3f}" if "allreduce_hidden" in r else "-"
        wait = f"{r['allreduce_wait_ms']:.1f}" if "allreduce_wait_ms" in r else "-"
        extra = ""
        if "bind_step_ms" in r:
            extra = f"{r['bind']} (" + ", ".join(
                f"{b}: {'-' if ms is None else '%.1f ms' % ms}"
                for b, ms in r["bind_step_ms"].items()) + ")"
        log(f"{name:<10}{r['step_ms']:>10.1f}{r['samples_per_s']:>11.2f}{r['mfu']:>8.3f}"
            f"{hid:>11}{wait:>12}  {extra}")
    if eff is not None:
        log(f"DP efficiency thr(2r x 1t) / (2 x thr(1r x 1t)) = {eff:.3f} (goal >= 0.95)")
    if vs_threads is not None:
        log(f"2 ranks vs 2 threads: thr(2r x 1t) / thr(1r x 2t) = {vs_threads:.3f}")
    hidden = results.get("2r x 1t", {}).get("allreduce_hidden")
    if hidden is not None:
        log(f"all-reduce hidden behind backward at 2 ranks: {100 * hidden:.1f} % (goal >= 80 %)")

    layouts = {}
    for name, r in results.items():
        layouts[name] = {k: (rnd(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
    return {"config": os.path.relpath(config, ROOT), "kind": fl["kind"], "global_batch": B,
            "seq_len": fl["seq_len"], "model_gflops_per_step": round(fl["flops_per_step"] / 1e9, 3),
            "layouts": layouts, "dp_efficiency": rnd(eff, 4),
            "dp_vs_threads": rnd(vs_threads, 4), "allreduce_hidden": rnd(hidden, 4),
            "ok": all("step_ms" in r for r in results.values())}


def main():
    ap = argparse.ArgumentParser(description="tessera data-parallel scaling, 1 vs 2 ranks")
    ap.add_argument("configs", nargs="*", default=DEFAULT_CONFIGS)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up steps)")
    ap.add_argument("--bind", choices=["core", "none", "best"], default="best",
                    help="mpirun --bind-to for the 2-rank layout; best = try both, keep faster")
    ap.add_argument("--build-dir", default=os.environ.get("TESSERA_BUILD_DIR", "build"))
    ap.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    ap.add_argument("--keep-run-dirs", action="store_true")
    a = ap.parse_args()
    configs = [os.path.abspath(os.path.join(ROOT, c) if not os.path.exists(c) else c)
               for c in a.configs]
    build_dir = os.path.join(ROOT, a.build_dir)
    if shutil.which("mpirun") is None:
        sys.exit("bench_scaling: mpirun not found (Debian: openmpi-bin; run ./scripts/setup)")
    if not a.no_build:
        bench_step.build(build_dir)

    load_start = os.getloadavg()
    threads_set = {t for _, t in LAYOUTS}
    before = peaks(build_dir, threads_set)
    log("sgemm peak before: " + ", ".join(f"{t}t {g:.1f}" for t, g in before.items())
        + f" GFLOP/s | load {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} "
        f"on {os.cpu_count()} CPUs")
    # train.peak_flops during the runs is the peak measured before; the table's MFU uses the
    # higher of before and after (a peak depressed by other processes would inflate MFU).
    runs = [bench_config(build_dir, c, a.steps, a.bind, before, a.keep_run_dirs) for c in configs]
    after = peaks(build_dir, threads_set)
    peak = {t: max(before[t], after[t]) for t in threads_set}
    load_end = os.getloadavg()
    log("")
    log("sgemm peak after: " + ", ".join(f"{t}t {g:.1f}" for t, g in after.items())
        + f" GFLOP/s (MFU uses the higher) | load {load_end[0]:.2f} {load_end[1]:.2f} "
        f"{load_end[2]:.2f}")
    out = [report(*run, peak) for run in runs]
    if max(load_start[0], load_end[0]) > os.cpu_count() + 0.5:
        log(f"WARNING: load average above {os.cpu_count()} CPUs: other processes share the cores; "
            "every time here is inflated and the scaling figures are not trustworthy")
    print(json.dumps({
        "bench": "scaling", "configs": out, "steps": a.steps, "bind": a.bind,
        "sgemm_peak_gflops": {f"{t}t": round(g, 1) for t, g in peak.items()},
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in load_end], "cpus": os.cpu_count()}), flush=True)
    return 0 if all(r["ok"] for r in out) else 1


if __name__ == "__main__":
    sys.exit(main())
