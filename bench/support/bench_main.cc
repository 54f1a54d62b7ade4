// Main for the op benchmarks: runs Google Benchmark, then prints each figure next to the
// machine's limit measured in this run and, last, one JSON line.
//
// A benchmark reports its figure as a rate counter named "GFLOP/s" (compared with the sgemm
// peak) or "GB/s" (bytes read + written, compared with memcpy bandwidth). Pairs registered with
// bench::compare_with_peer (bench/support/peer.h) are printed as ratios too. The first line names
// the CPU and the kernels' instruction-set path.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "bench/support/cpu_model.h"
#include "bench/support/peer.h"
#include "core/threads.h"
#include "nlohmann/json.hpp"
#include "ops/cpu/isa.h"
#include "ops/machine_peaks.h"

namespace {

struct Row {
  std::string name;
  std::string unit;
  double value;
  double ratio;
  double real_per_cpu;  // real time / CPU time of the run (the counters are per real second)
};

class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    const auto& peaks = tessera::ops::peaks();
    for (const Run& r : runs) {
      // Single runs, and with --benchmark_repetitions the median of each benchmark's repetitions
      // (a row named NAME_median; the peer ratios prefer it, less disturbed by other load).
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      if ((r.run_type != Run::RT_Iteration && !median) || r.error_occurred) continue;
      for (const char* unit : {"GFLOP/s", "GB/s"}) {
        auto it = r.counters.find(unit);
        if (it == r.counters.end()) continue;
        double peak = std::string(unit) == "GB/s" ? peaks.memcpy_gbs : peaks.sgemm_gflops;
        const double cpu = r.GetAdjustedCPUTime();
        rows.push_back({r.benchmark_name(), unit, it->second.value, it->second.value / peak,
                        cpu > 0 ? r.GetAdjustedRealTime() / cpu : 0.0});
      }
    }
  }
  std::vector<Row> rows;
};

}  // namespace

int main(int argc, char** argv) {
  tessera::init_threads_from_env();
  benchmark::Initialize(&argc, argv);
  const auto& peaks = tessera::ops::peaks();
  std::printf("CPU: %s | kernels %s\n", tessera::bench::cpu_model().c_str(),
              tessera::ops::cpu::cpu_isa_summary().c_str());
  std::printf(
      "threads %d | peaks measured now: sgemm %.1f GFLOP/s, memcpy %.1f GB/s (read+write)\n",
      tessera::num_threads(), peaks.sgemm_gflops, peaks.memcpy_gbs);
  CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf("\n%-56s %12s %-8s %s\n", "benchmark", "figure", "unit", "of machine limit");
  nlohmann::json results = nlohmann::json::array();
  for (const Row& r : reporter.rows) {
    std::printf("%-56s %12.2f %-8s %5.1f%% of %s\n", r.name.c_str(), r.value, r.unit.c_str(),
                100 * r.ratio, r.unit == "GB/s" ? "memcpy" : "sgemm");
    results.push_back({{"name", r.name}, {"value", r.value}, {"unit", r.unit}, {"ratio", r.ratio}});
  }
  // Peer ratios: the median row whose name starts with each prefix, else the first run's.
  auto find = [&](const std::string& prefix) -> const Row* {
    const Row* first = nullptr;
    for (const Row& r : reporter.rows) {
      if (r.name.rfind(prefix, 0) != 0) continue;
      const std::string suffix = "_median";
      if (r.name.size() > suffix.size() &&
          r.name.compare(r.name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return &r;
      if (first == nullptr) first = &r;
    }
    return first;
  };
  nlohmann::json peer_ratios = nlohmann::json::array();
  for (const tessera::bench::PeerPair& p : tessera::bench::peer_pairs()) {
    const Row *ours = find(p.ours), *peer = find(p.peer);
    if (ours == nullptr || peer == nullptr || ours->unit != peer->unit) continue;
    if (peer_ratios.empty())
      std::printf(
          "\nours vs peer, same run (ours / peer; > 1: ours faster). By CPU time too: on one\n"
          "thread it leaves out the time other processes took the core (real time / CPU time\n"
          "> 1.1 means the machine was busy); with more threads it counts the main one only.\n");
    const double ratio = ours->value / peer->value;
    const double cpu_ratio = ours->value * ours->real_per_cpu / (peer->value * peer->real_per_cpu);
    std::printf("%-48s vs %-52s %5.2fx  by CPU time %5.2fx\n", ours->name.c_str(),
                peer->name.c_str(), ratio, cpu_ratio);
    peer_ratios.push_back({{"ours", ours->name},
                           {"peer", peer->name},
                           {"ratio", ratio},
                           {"cpu_time_ratio", cpu_ratio}});
  }
  nlohmann::json line = {{"cpu", tessera::bench::cpu_model()},
                         {"threads", tessera::num_threads()},
                         {"sgemm_peak_gflops", peaks.sgemm_gflops},
                         {"memcpy_peak_gbs", peaks.memcpy_gbs},
                         {"results", results},
                         {"peer_ratios", peer_ratios}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}
