// Main for the op benchmarks: runs Google Benchmark, then prints each figure next to the
// machine's limit measured in this run and, last, one JSON line.
//
// A benchmark reports its figure as a rate counter named "GFLOP/s" (compared with the sgemm
// peak) or "GB/s" (bytes read + written, compared with memcpy bandwidth).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/threads.h"
#include "nlohmann/json.hpp"
#include "ops/machine_peaks.h"

namespace {

struct Row {
  std::string name;
  std::string unit;
  double value;
  double ratio;
};

class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    const auto& peaks = tessera::ops::peaks();
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      for (const char* unit : {"GFLOP/s", "GB/s"}) {
        auto it = r.counters.find(unit);
        if (it == r.counters.end()) continue;
        double peak = std::string(unit) == "GB/s" ? peaks.memcpy_gbs : peaks.sgemm_gflops;
        rows.push_back({r.benchmark_name(), unit, it->second.value, it->second.value / peak});
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
  nlohmann::json line = {{"threads", tessera::num_threads()},
                         {"sgemm_peak_gflops", peaks.sgemm_gflops},
                         {"memcpy_peak_gbs", peaks.memcpy_gbs},
                         {"results", results}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}
