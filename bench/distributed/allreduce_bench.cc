// All-reduce bandwidth, latency and waiting cost of MpiCommunicator, next to a plain blocking
// MPI_Allreduce and the machine's memcpy bandwidth measured in the same run.
//
// Run (2 ranks; any count works):
//   ninja -C build bench_allreduce
//   OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 build/bench/distributed/bench_allreduce
//   [--max-mb 256] [--poll-us 1000]
// (as root in a container add OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
//
// Figures (nccl-tests conventions): algorithm bandwidth = bytes / time; bus bandwidth =
// algbw * 2(n-1)/n, what each rank's links carry in a ring all-reduce, comparable across rank
// counts. memcpy bandwidth counts bytes read + written (ops/machine_peaks.h). "wait CPU" is the
// CPU time rank 0 burns per second while it waits 1 s in an all-reduce for a late rank 1: the
// cost of waiting that compute threads lose. "overlap" runs a single-thread compute loop while a
// 64 MB all-reduce is in flight: share of the shorter of the two hidden behind the other.
// Prints text, then one JSON line.
#include <mpi.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/timer.h"
#include "distributed/mpi_communicator.h"
#include "nlohmann/json.hpp"
#include "ops/machine_peaks.h"

using namespace tessera;
using namespace tessera::distributed;

namespace {

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Same iteration count on every rank: rank 0 decides from a probe and broadcasts.
int agree_iters(MPI_Comm comm, double probe_seconds, double budget_seconds, int lo, int hi) {
  int iters = std::clamp(int(budget_seconds / std::max(probe_seconds, 1e-6)), lo, hi);
  MPI_Bcast(&iters, 1, MPI_INT, 0, comm);
  return iters;
}

// Seconds per call of fn, averaged over iters after a barrier (rank 0's clock).
template <typename F>
double time_per_call(MPI_Comm comm, int iters, F fn) {
  MPI_Barrier(comm);
  Timer t;
  for (int i = 0; i < iters; ++i) fn();
  double s = t.seconds() / iters;
  MPI_Bcast(&s, 1, MPI_DOUBLE, 0, comm);
  return s;
}

// A single-thread compute loop; the caller calibrates reps to a duration.
double spin_compute(std::vector<float>& buf, int reps) {
  float acc = 0;
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < buf.size(); ++i) acc += buf[i] * 1.0001f + float(r);
  return acc;
}

}  // namespace

int main(int argc, char** argv) {
  MpiEnvironment env(&argc, &argv);
  int max_mb = 256, poll_us = MpiOptions().poll_max_sleep_us;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--max-mb")) max_mb = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--poll-us")) poll_us = std::atoi(argv[i + 1]);
  }
  return run_or_abort([&] {
    MpiOptions options;
    options.poll_max_sleep_us = poll_us;
    auto world = MpiCommunicator::world(options);
    const int n = world->size(), rank = world->rank();
    MPI_Comm raw;  // for the plain MPI baseline and the benchmark's own bookkeeping
    MPI_Comm_dup(MPI_COMM_WORLD, &raw);
    const double bus_factor = n > 1 ? 2.0 * (n - 1) / n : 1.0;

    // Machine limit, measured by rank 0 while the others sleep in our (non-spinning) barrier.
    double memcpy_gbs = 0;
    if (rank == 0) memcpy_gbs = ops::peaks().memcpy_gbs;
    world->barrier()->wait();
    MPI_Bcast(&memcpy_gbs, 1, MPI_DOUBLE, 0, raw);
    if (rank == 0)
      std::printf("ranks %d | memcpy %.1f GB/s (read+write, rank 0 alone) | poll cap %d us\n", n,
                  memcpy_gbs, poll_us);

    nlohmann::json rows = nlohmann::json::array();
    if (rank == 0)
      std::printf("%10s %6s | %12s %12s | %12s %12s | %10s | %s\n", "bytes", "iters", "tessera us",
                  "busbw GB/s", "MPI us", "busbw GB/s", "Iallreduce", "tessera/MPI");
    for (int64_t mb = 1; mb <= max_mb; mb *= 2) {
      const int64_t bytes = mb << 20, elems = bytes / 4;
      Tensor t = Tensor::zeros({elems}, DType::f32);
      float* p = t.data<float>();
      world->all_reduce(t, ReduceOp::kSum)->wait();  // warm-up (pages, MPI buffers)
      MPI_Allreduce(MPI_IN_PLACE, p, int(elems), MPI_FLOAT, MPI_SUM, raw);
      Timer probe;
      world->all_reduce(t, ReduceOp::kSum)->wait();
      int iters = agree_iters(raw, probe.seconds(), 0.4, 2, 200);
      double ours =
          time_per_call(raw, iters, [&] { world->all_reduce(t, ReduceOp::kSum)->wait(); });
      double mpi = time_per_call(
          raw, iters, [&] { MPI_Allreduce(MPI_IN_PLACE, p, int(elems), MPI_FLOAT, MPI_SUM, raw); });
      // MPI's non-blocking all-reduce (what the communication thread runs) waited on at once:
      // separates the algorithm's cost from the thread's.
      double nb = time_per_call(raw, iters, [&] {
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, p, int(elems), MPI_FLOAT, MPI_SUM, raw, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
      });
      double bus_ours = bytes * bus_factor / ours * 1e-9, bus_mpi = bytes * bus_factor / mpi * 1e-9;
      double bus_nb = bytes * bus_factor / nb * 1e-9;
      if (rank == 0)
        std::printf("%10lld %6d | %12.1f %12.2f | %12.1f %12.2f | %10.2f | %.2f\n",
                    (long long)bytes, iters, ours * 1e6, bus_ours, mpi * 1e6, bus_mpi, bus_nb,
                    bus_ours / bus_mpi);
      rows.push_back({{"bytes", bytes},
                      {"iters", iters},
                      {"tessera_s", ours},
                      {"tessera_busbw_gbs", bus_ours},
                      {"mpi_s", mpi},
                      {"mpi_busbw_gbs", bus_mpi},
                      {"mpi_iallreduce_busbw_gbs", bus_nb}});
    }

    // Latency: one f32.
    Tensor one = Tensor::zeros({1}, DType::f32);
    float* q = one.data<float>();
    const int lat_iters = 2000;
    double lat_ours =
        time_per_call(raw, lat_iters, [&] { world->all_reduce(one, ReduceOp::kSum)->wait(); });
    double lat_mpi = time_per_call(
        raw, lat_iters, [&] { MPI_Allreduce(MPI_IN_PLACE, q, 1, MPI_FLOAT, MPI_SUM, raw); });
    if (rank == 0)
      std::printf("latency (1 f32): tessera %.1f us, MPI %.1f us\n", lat_ours * 1e6, lat_mpi * 1e6);

    // CPU burned while waiting for a late rank (1 s).
    auto wait_cpu = [&](auto allreduce) {
      MPI_Barrier(raw);
      double share = 0;
      if (rank == 0) {
        double c0 = process_cpu_seconds();
        Timer wall;
        allreduce();
        share = (process_cpu_seconds() - c0) / wall.seconds();
      } else {
        if (rank == 1) std::this_thread::sleep_for(std::chrono::seconds(1));
        allreduce();
      }
      MPI_Bcast(&share, 1, MPI_DOUBLE, 0, raw);
      return share;
    };
    double cpu_ours = wait_cpu([&] { world->all_reduce(one, ReduceOp::kSum)->wait(); });
    double cpu_mpi = wait_cpu([&] { MPI_Allreduce(MPI_IN_PLACE, q, 1, MPI_FLOAT, MPI_SUM, raw); });
    if (rank == 0)
      std::printf("waiting 1 s for a late rank burns: tessera %.1f%% of a core, MPI %.1f%%\n",
                  100 * cpu_ours, 100 * cpu_mpi);

    // Overlap: a 64 MB all-reduce in flight while the main thread computes.
    const int64_t ov_elems = std::min<int64_t>(int64_t(max_mb) << 20, int64_t(64) << 20) / 4;
    Tensor big = Tensor::zeros({ov_elems}, DType::f32);
    std::vector<float> work_buf(1 << 16, 1.0f);
    MPI_Barrier(raw);
    Timer tc;
    world->all_reduce(big, ReduceOp::kSum)->wait();
    double t_comm = tc.seconds();
    MPI_Bcast(&t_comm, 1, MPI_DOUBLE, 0, raw);
    Timer probe;
    volatile double sink = spin_compute(work_buf, 10);
    int reps = std::max(1, int(10 * t_comm / std::max(probe.seconds(), 1e-6)));  // ~ t_comm
    MPI_Bcast(&reps, 1, MPI_INT, 0, raw);
    MPI_Barrier(raw);
    Timer tp;
    sink = spin_compute(work_buf, reps);
    double t_comp = tp.seconds();
    MPI_Barrier(raw);
    Timer tb;
    auto w = world->all_reduce(big, ReduceOp::kSum);
    sink = spin_compute(work_buf, reps);
    w->wait();
    double t_both = tb.seconds();
    (void)sink;
    double hidden = std::clamp((t_comm + t_comp - t_both) / std::min(t_comm, t_comp), 0.0, 1.0);
    MPI_Bcast(&hidden, 1, MPI_DOUBLE, 0, raw);
    if (rank == 0)
      std::printf(
          "overlap (%lld MB): comm %.1f ms, compute %.1f ms, both %.1f ms -> %.0f%% hidden\n",
          (long long)(ov_elems * 4 >> 20), t_comm * 1e3, t_comp * 1e3, t_both * 1e3, 100 * hidden);

    MPI_Comm_free(&raw);
    if (rank == 0) {
      nlohmann::json line = {{"bench", "allreduce"},
                             {"ranks", n},
                             {"poll_max_sleep_us", poll_us},
                             {"memcpy_peak_gbs", memcpy_gbs},
                             {"sizes", rows},
                             {"latency_us", {{"tessera", lat_ours * 1e6}, {"mpi", lat_mpi * 1e6}}},
                             {"wait_cpu_share", {{"tessera", cpu_ours}, {"mpi", cpu_mpi}}},
                             {"overlap_hidden_fraction", hidden}};
      std::printf("%s\n", line.dump().c_str());
    }
    return 0;
  });
}
