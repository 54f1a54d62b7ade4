"""scripts/bench_zero: what the ZeRO stages cost and save, on this machine.

    scripts/bench_zero [--memory-config C] [--speed-config C] [--steps N] [--repeats K]
                       [--ranks 1,2,4] [--build-dir DIR] [--no-build] [--skip-memory]
                       [--skip-speed] [--tokens T] [--stages 0,1,2] [--micro 1,2]
                       [--memory-stages 0,1,2,3] [--set PATH=VALUE ...]

Memory (default configs/gpt2_124m.pbtxt): build/bench/distributed/bench_zero_memory under
`mpirun -np R` for R in --ranks and each stage; it runs one GPT step of --tokens tokens per rank.
Per rank: bytes of the parameters, the gradients (the peak resident during that step: the full
buffer at stages 0/1, the staged per-parameter gradients at stage 2; plus the averaged shard and
GradSync's staging slots), the optimizer state, and the process RSS. At stage 3 the parameters
are this rank's shard plus the peak of the units gathered at once during the step (measured). Stage 0 holds the same bytes on every rank count (nothing is sharded), so it
runs at 1 and 2 ranks only: 4 copies of gpt2_124m's unsharded AdamW state (8.5 GB) are more
than a shared 2-core machine should be asked for. Prints the per-rank total of each stage as a
ratio of stage 0's.

Speed (default configs/bench/gpt.pbtxt): `tessera train` on 2 ranks (1 thread each,
--bind-to core), stages 0, 1 and 2 in turn, --repeats times each, with one and with two
micro-batches; the median step_ms (after the first 2 steps) of each and its ratio to stage 0's,
plus metrics.jsonl's dp_comm_bytes, allreduce_hidden and allreduce_wait_ms, and at stage 3 the
share of the parameter gathers hidden by prefetch (param_gather_hidden, 1 - wait / comm, as
allreduce_hidden), the time blocked on them and the gathers on demand (param_gather_wait_ms,
param_gather_misses). Names the CPU (lscpu). Ends with one JSON line.
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
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
SKIP_STEPS = 2  # allocation, page faults, caches


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_name():
    r = subprocess.run(["lscpu"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def mpirun(ranks, threads=1, bind="core"):
    return ["mpirun", "--oversubscribe", "-np", str(ranks), "--bind-to", bind,
            "-x", f"TESSERA_NUM_THREADS={threads}"]


EXTRA_SETS = []  # --set path=value, passed to every run


def extra_sets():
    return [x for kv in EXTRA_SETS for x in ("--set", kv)]


def memory(build_dir, config, ranks, stage, tokens):
    exe = os.path.join(build_dir, "bench", "distributed", "bench_zero_memory")
    # Unbound: 4 ranks on a 2-core machine cannot each have a core (nothing is timed here).
    cmd = mpirun(ranks, bind="none") + [exe, config, "--tokens", str(tokens),
                                         "--set", f"parallel.zero_stage={stage}",
                                         "--set", "data.global_batch_size=8"] + extra_sets()
    log("$ " + " ".join(cmd))
    r = subprocess.run(cmd, env=dict(os.environ, **MPI_ENV), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_zero: {exe} failed (status {r.returncode}): {r.stderr[-1500:]}")
    rows = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    if len(rows) != ranks:
        sys.exit(f"bench_zero: {exe}: {len(rows)} JSON lines from {ranks} ranks")
    rows.sort(key=lambda x: x["rank"])
    return rows


def train(build_dir, config, stage, micro, steps):
    """Medians of one 2-rank run after SKIP_STEPS: step_ms, dp_comm_bytes, allreduce_hidden and
    allreduce_wait_ms, and at stage 3 the parameter gathers' param_gather_hidden,
    param_gather_wait_ms and param_gather_misses (None where absent)."""
    run_dir = tempfile.mkdtemp(prefix="bench_zero_")
    try:
        cmd = mpirun(2) + [os.path.join(build_dir, "tessera"), "train", "--config", config,
                           "--run-dir", run_dir, "--set", f"train.steps={steps + SKIP_STEPS}",
                           "--set", "log.every_steps=1", "--set", "checkpoint.every_steps=0",
                           "--set", "train.peak_flops=1e9",
                           "--set", f"parallel.zero_stage={stage}",
                           "--set", f"train.micro_batches={micro}"] + extra_sets()
        log("$ " + " ".join(cmd))
        r = subprocess.run(cmd, env=dict(os.environ, **MPI_ENV), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.exit(f"bench_zero: tessera train failed (status {r.returncode}): "
                     f"{r.stdout[-1500:]}")
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            rows = [json.loads(x) for x in f if x.strip()]
        rows = [x for x in rows if "step_ms" in x and int(x["step"]) > SKIP_STEPS]
        out = {}
        for key in ("step_ms", "dp_comm_bytes", "allreduce_hidden", "allreduce_wait_ms",
                    "param_gather_hidden", "param_gather_wait_ms", "param_gather_misses"):
            vals = [float(x[key]) for x in rows if key in x]
            out[key] = statistics.median(vals) if vals else None
        return out
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def mib(b):
    return f"{b / 2**20:8.1f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--memory-config", default="configs/gpt2_124m.pbtxt")
    p.add_argument("--speed-config", default="configs/bench/gpt.pbtxt")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--stages", default="0,1,2", help="speed: stages to interleave (first = base)")
    p.add_argument("--micro", default="1,2", help="speed: micro-batch counts")
    p.add_argument("--memory-stages", default="0,1,2,3", help="memory: stages to measure")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="a config override for every run (repeatable)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--ranks", default="1,2,4")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    a = p.parse_args()
    EXTRA_SETS.extend(a.set)
    os.chdir(ROOT)
    if not a.no_build:
        r = subprocess.run(["cmake", "--build", a.build_dir, "--target", "tessera",
                            "bench_zero_memory"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.exit(f"bench_zero: build failed: {r.stdout[-3000:]}")
    cpu = cpu_name()
    print(f"CPU: {cpu}, {os.cpu_count()} logical CPUs; load average at start "
          f"{os.getloadavg()[0]:.2f}")
    result = {"cpu": cpu, "memory": {}, "speed": {}}

    if not a.skip_memory:
        ranks = [int(x) for x in a.ranks.split(",")]
        print(f"\nper-rank memory, {a.memory_config} (MiB; rank 0; RSS = max over ranks)")
        print(" stage ranks   params  grads (peak + shard/staging)  optimizer    total      RSS"
              "   total/stage0")
        base = None
        for stage in [int(x) for x in a.memory_stages.split(",")]:
            for n in ranks:
                if stage == 0 and n > 2:
                    continue
                rows = memory(a.build_dir, a.memory_config, n, stage, a.tokens)
                r0 = rows[0]
                rss = max(x["rss_bytes"] for x in rows)
                grads = r0["grad_full_bytes"] + r0["grad_shard_bytes"]
                if stage == 0 and base is None:
                    base = r0["total_bytes"]
                ratio = r0["total_bytes"] / base if base else float("nan")
                print(f" {stage:5d} {n:5d} {mib(r0['param_bytes'])} {mib(grads)} "
                      f"({mib(r0['grad_full_bytes']).strip()} + "
                      f"{mib(r0['grad_shard_bytes']).strip()}) "
                      f"{mib(r0['optimizer_bytes'])} {mib(r0['total_bytes'])} {mib(rss)}"
                      f"   {ratio:.3f}")
                result["memory"][f"stage{stage}_ranks{n}"] = {
                    "rank0": r0, "max_rss_bytes": rss, "total_vs_stage0": round(ratio, 4)}

    if not a.skip_speed:
        print(f"\nstep time at 2 ranks x 1 thread, {a.speed_config}, {a.steps} timed steps, "
              f"{a.repeats} runs per stage in turn (median of the run medians)")
        for micro in [int(x) for x in a.micro.split(",")]:
            stages = tuple(int(x) for x in a.stages.split(","))
            times = {st: [] for st in stages}
            info = {}
            for _ in range(a.repeats):
                for stage in stages:
                    res = train(a.build_dir, a.speed_config, stage, micro, a.steps)
                    times[stage].append(res["step_ms"])
                    info[stage] = res
            med = {st: statistics.median(v) for st, v in times.items()}
            print(f" micro_batches {micro}: " + ", ".join(
                f"stage {st} {med[st]:.1f} ms (x{med[st] / med[stages[0]]:.3f}, comm "
                f"{info[st]['dp_comm_bytes'] / 2**20:.1f} MiB/step, hidden "
                f"{info[st]['allreduce_hidden']:.2f})" for st in stages))
            for st in stages:  # the last run's medians
                i = info[st]
                line = (f"   stage {st}: gradient sync {i['allreduce_hidden']:.2f} hidden, "
                        f"{i['allreduce_wait_ms']:.1f} ms/step waited")
                if i.get("param_gather_hidden") is not None:
                    line += (f"; parameter gathers {i['param_gather_hidden']:.2f} hidden, "
                             f"{i['param_gather_wait_ms']:.1f} ms/step waited, "
                             f"{i['param_gather_misses']:.1f} misses/step")
                print(line)
            print(f"   runs (ms): " + "; ".join(
                f"stage {st}: " + ", ".join(f"{t:.0f}" for t in times[st]) for st in stages))
            result["speed"][f"micro{micro}"] = {
                f"stage{st}": dict(info[st], median_step_ms=med[st],
                                   vs_base=round(med[st] / med[stages[0]], 4)) for st in stages}
    result["load_end"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
