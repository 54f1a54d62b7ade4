"""scripts/bench_step: one training step of tessera against its PyTorch peer, in one run.

    scripts/bench_step CONFIG [--threads N] [--steps N] [--bf16] [--seq-len T] [--batch B]
                       [--isa avx512|avx2|baseline] [--build-dir DIR] [--no-build]
                       [--keep-run-dir]

In order: builds `tessera` and `bench_ops` if needed (./scripts/build, ninja skips what is up to
date); measures the f32 sgemm peak with bench_ops' own probe (oneDNN sgemm 2048^3, best of 5)
before and after the two sides and keeps the higher (a peak depressed by other processes would
inflate MFU; the load average at start and end goes into the JSON line so a reader can judge);
trains `steps + 2` steps with `tessera train` (TESSERA_NUM_THREADS=N) and takes the median
`step_ms` of metrics.jsonl after the first 2 steps; runs bench/peer/peer.py the same number of
steps, tuned as a user would tune it (OpenMP OpenBLAS, torch.set_num_threads(N), ATen's and
OpenBLAS's kernels at the same instruction-set level as tessera's). Prints a table and, last, one
JSON line:
    {"config", "threads", "precision", "tessera_step_ms", "peer_step_ms", "speedup",
     "mfu", "peer_mfu", "sgemm_peak_gflops", "model_gflops_per_step", ...}
speedup = peer / tessera; mfu = model FLOPs per step (bench/peer/flops.py) / step time / peak.
The peer always runs in f32: --bf16 compares tessera's bf16 compute with the f32 peer.
--isa runs both sides on one instruction-set path (default: the best this CPU has): tessera with
TESSERA_CPU_ISA (which also caps oneDNN, so the sgemm peak is that path's too), the peer with
ATEN_CPU_CAPABILITY and, below the CPU's best, OPENBLAS_CORETYPE. So an AVX-512 machine can
measure the AVX2 comparison, and an AVX2 machine never asks ATen for AVX-512 (SIGILL).
Exit status 0 when both sides ran, 1 otherwise (the JSON line is still printed, with nulls).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import flops  # noqa: E402
import tessera_config  # noqa: E402

PY = "/usr/bin/python3"  # Debian's python with python3-torch
SKIP_STEPS = 2  # first steps excluded from the median (allocation, page faults, caches)
ISAS = ["baseline", "avx2", "avx512"]  # tessera's paths, lowest first (ops/cpu/isa.h)
ATEN_CAPABILITY = {"baseline": "default", "avx2": "avx2", "avx512": "avx512"}
OPENBLAS_CORETYPE = {"baseline": "Prescott", "avx2": "Haswell", "avx512": "SkylakeX"}


def machine_isa():
    """The best of ISAS this CPU runs, from /proc/cpuinfo (x86-64-v4 and v3 feature sets)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f
                          if line.startswith("flags")), set())
    except OSError:
        return "baseline"
    if {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags:
        return "avx512"
    if {"avx2", "fma", "bmi2"} <= flags:
        return "avx2"
    return "baseline"


def peer_env(isa):
    """The tuned peer: OpenMP OpenBLAS, ATen and OpenBLAS kernels at tessera's level."""
    env = {"LD_LIBRARY_PATH": "/usr/lib/x86_64-linux-gnu/openblas-openmp",
           "ATEN_CPU_CAPABILITY": ATEN_CAPABILITY[isa]}
    if isa != machine_isa():
        env["OPENBLAS_CORETYPE"] = OPENBLAS_CORETYPE[isa]
    return env


def log(msg):
    print(msg, flush=True)


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in output")


def build(build_dir):
    r = subprocess.run([os.path.join(ROOT, "scripts", "build"), "--build-dir", build_dir,
                        "tessera", "bench_ops"], cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:])
        sys.exit(f"bench_step: ./scripts/build failed (status {r.returncode})")


def sgemm_peak(build_dir, threads, isa):
    exe = os.path.join(build_dir, "bench", "ops", "bench_ops")
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads), TESSERA_CPU_ISA=isa)
    r = subprocess.run([exe, "--benchmark_filter=^$"], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_step: {exe} failed (status {r.returncode}): {r.stderr.strip()[-500:]}")
    try:
        return float(last_json_line(r.stdout)["sgemm_peak_gflops"])
    except (ValueError, KeyError):  # older bench_main: only the first line names the peak
        m = re.search(r"sgemm ([0-9.]+) GFLOP/s", r.stdout)
        if not m:
            sys.exit(f"bench_step: no sgemm peak in the output of {exe}")
        return float(m.group(1))


def run_tessera(build_dir, a, cfg, peak_gflops):
    """Returns (median step_ms, note). step_ms is None when tessera could not train."""
    exe = os.path.join(build_dir, "tessera")
    run_dir = tempfile.mkdtemp(prefix="bench_step_")
    cmd = [exe, "train", "--config", a.config, "--run-dir", run_dir,
           "--set", f"train.steps={a.steps + SKIP_STEPS}", "--set", "log.every_steps=1",
           "--set", f"train.peak_flops={peak_gflops * 1e9:.6g}",
           "--set", "checkpoint.every_steps=0"]
    if a.bf16:
        cmd += ["--set", "train.precision=BF16"]
    if a.batch:
        cmd += ["--set", f"data.global_batch_size={a.batch}"]
    if a.seq_len:
        kind = cfg.model.WhichOneof("kind")
        field = {"gpt": "model.gpt.context", "clip": "model.clip.text.context"}.get(kind)
        if field is None:
            sys.exit(f"bench_step: --seq-len applies to gpt and clip configs, not {kind}")
        cmd += ["--set", f"{field}={a.seq_len}"]
    env = dict(os.environ, TESSERA_NUM_THREADS=str(a.threads), TESSERA_CPU_ISA=a.isa)
    log("$ TESSERA_NUM_THREADS=%d TESSERA_CPU_ISA=%s %s" % (a.threads, a.isa, " ".join(cmd)))
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if r.returncode != 0:
            tail = "\n".join(r.stdout.strip().splitlines()[-5:])
            return None, f"tessera train exited with status {r.returncode}: {tail}"
        path = os.path.join(run_dir, "metrics.jsonl")
        rows = []
        with open(path) as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
        rows = [x for x in rows if x.get("kind", "train") == "train" and "step_ms" in x]
        timed = [float(x["step_ms"]) for x in rows if int(x["step"]) > SKIP_STEPS]
        if not timed:
            return None, f"{path}: no rows with step_ms after step {SKIP_STEPS}"
        note = ""
        if rows and "mfu" in rows[-1]:
            note = f"tessera's own mfu (last row): {rows[-1]['mfu']}"
        return statistics.median(timed), note
    except (OSError, ValueError, KeyError) as e:
        return None, f"tessera: {e}"
    finally:
        if a.keep_run_dir:
            log(f"run dir kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def run_peer(a):
    cmd = [PY, os.path.join(HERE, "peer.py"), "--config", a.config, "--threads", str(a.threads),
           "--steps", str(a.steps), "--warmup", str(SKIP_STEPS)]
    if a.seq_len:
        cmd += ["--seq-len", str(a.seq_len)]
    if a.batch:
        cmd += ["--batch", str(a.batch)]
    penv = peer_env(a.isa)
    env = dict(os.environ, **penv)
    log("$ %s %s" % (" ".join(f"{k}={v}" for k, v in penv.items()), " ".join(cmd)))
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in r.stdout.strip().splitlines()[:-1]:
        log("  " + line)
    if r.returncode != 0:
        return None, f"peer exited with status {r.returncode}"
    return last_json_line(r.stdout), ""


def main():
    ap = argparse.ArgumentParser(description="tessera vs PyTorch peer, one training step")
    ap.add_argument("config")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up steps)")
    ap.add_argument("--bf16", action="store_true", help="tessera computes in bf16 (peer: f32)")
    ap.add_argument("--seq-len", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--isa", choices=ISAS, default=machine_isa(),
                    help="instruction-set path of both sides (default: this CPU's best)")
    ap.add_argument("--build-dir", default=os.environ.get("TESSERA_BUILD_DIR", "build"))
    ap.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    ap.add_argument("--keep-run-dir", action="store_true")
    a = ap.parse_args()
    if ISAS.index(a.isa) > ISAS.index(machine_isa()):
        sys.exit(f"bench_step: --isa {a.isa}: this CPU's best path is {machine_isa()}")
    a.config = os.path.abspath(a.config)
    build_dir = os.path.join(ROOT, a.build_dir)

    cfg = tessera_config.load(a.config)
    fl = flops.model_flops(cfg, a.seq_len, a.batch)
    if not a.no_build:
        build(build_dir)
    load_start = os.getloadavg()[0]
    peak = peak_before = sgemm_peak(build_dir, a.threads, a.isa)
    log(f"{os.path.basename(a.config)}: {fl['kind']} B={fl['batch']} T={fl['seq_len']} "
        f"params={fl['params_total']} model GFLOP/step={fl['flops_per_step'] / 1e9:.2f} | "
        f"threads {a.threads} | sgemm peak measured now {peak:.1f} GFLOP/s | load {load_start:.2f}")

    t_ms, t_note = run_tessera(build_dir, a, cfg, peak)
    if t_ms is None:
        log(f"tessera side not measured: {t_note}")
    elif t_note:
        log(t_note)
    peer, p_note = run_peer(a)
    p_ms = peer["peer_step_ms"] if peer else None
    if peer is None:
        log(f"peer side not measured: {p_note}")

    peak_after = sgemm_peak(build_dir, a.threads, a.isa)
    peak = max(peak_before, peak_after)
    load_end = os.getloadavg()[0]
    log(f"sgemm peak after: {peak_after:.1f} GFLOP/s (using {peak:.1f}) | load {load_end:.2f}")
    if max(load_start, load_end) > a.threads + 0.5:
        log(f"WARNING: load average above {a.threads} threads: other processes share the cores "
            "and both sides' times (the OpenMP peer's most) are inflated")

    def mfu(ms):
        return None if ms is None else fl["flops_per_step"] / (ms / 1e3) / (peak * 1e9)

    precision = "bf16" if a.bf16 else "f32"
    log("")
    log(f"{'side':<24}{'step ms':>10}{'GFLOP/s':>10}{'MFU':>8}")
    for name, ms in ((f"tessera ({precision})", t_ms), ("pytorch peer (f32)", p_ms)):
        if ms is None:
            log(f"{name:<24}{'-':>10}{'-':>10}{'-':>8}")
        else:
            log(f"{name:<24}{ms:>10.1f}{fl['flops_per_step'] / ms / 1e6:>10.1f}{mfu(ms):>8.3f}")
    speedup = p_ms / t_ms if (t_ms and p_ms) else None
    if speedup:
        log(f"speedup (peer / tessera): {speedup:.3f}")
    rnd = lambda x, n: None if x is None else round(x, n)  # noqa: E731
    print(json.dumps({
        "config": os.path.relpath(a.config, ROOT), "kind": fl["kind"], "threads": a.threads,
        "isa": a.isa,
        "precision": precision, "batch": fl["batch"], "seq_len": fl["seq_len"],
        "steps": a.steps, "tessera_step_ms": rnd(t_ms, 2), "peer_step_ms": rnd(p_ms, 2),
        "speedup": rnd(speedup, 4), "mfu": rnd(mfu(t_ms), 4), "peer_mfu": rnd(mfu(p_ms), 4),
        "sgemm_peak_gflops": round(peak, 1), "sgemm_peak_gflops_before": round(peak_before, 1),
        "sgemm_peak_gflops_after": round(peak_after, 1),
        "loadavg_start": round(load_start, 2), "loadavg_end": round(load_end, 2),
        "model_gflops_per_step": round(fl["flops_per_step"] / 1e9, 3)}), flush=True)
    return 0 if (t_ms is not None and p_ms is not None) else 1


if __name__ == "__main__":
    sys.exit(main())
