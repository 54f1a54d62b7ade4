#include "train/run_report.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/caching_allocator.h"

namespace tessera::train {

std::string human_bytes(double bytes) {
  if (bytes < 0) return "unknown";
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (bytes >= 1024 && u < 3) {
    bytes /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", bytes, units[u]);
}

int64_t current_rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * 4096;
}

int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}

void print_start_report(const StartReport& r) {
  std::printf(
      "tessera train: %s model, %.2fM parameters, %s, on %s, %d threads per rank, run dir %s\n",
      r.model_kind.c_str(), double(r.parameters) * 1e-6, r.layout.c_str(), r.device.str().c_str(),
      r.threads, r.run_dir.c_str());
  // ZeRO-3: the parameter shard plus the units gathered at once.
  const int64_t param_bytes = r.param_bytes + std::max<int64_t>(0, r.param_gathered_bytes);
  std::printf(
      "memory estimate per rank: parameters %s, gradients %s, optimizer %s, activations %s, "
      "total %s\n",
      human_bytes(param_bytes).c_str(), human_bytes(r.grad_bytes).c_str(),
      human_bytes(r.optimizer_bytes).c_str(), human_bytes(r.activation_bytes).c_str(),
      human_bytes(param_bytes + r.grad_bytes + r.optimizer_bytes + r.zero_buffer_bytes +
                  std::max<int64_t>(0, r.activation_bytes))
          .c_str());
  if (!r.frozen.empty()) std::printf("%s\n", r.frozen.c_str());
  if (r.allreduce_bytes >= 0) {
    std::printf("gradient all-reduce per step: %s (%lld bytes%s)\n",
                human_bytes(r.allreduce_bytes).c_str(), (long long)r.allreduce_bytes,
                r.zero_shards ? ", reduce-scattered" : "");
  }
  if (r.zero_shards) {
    // The exact byte counts, for scripts and tests: state = m + v (f32) + decay mask (u8).
    std::printf(
        "ZeRO-%d: optimizer state %lld bytes per rank (m, v, decay mask of %lld shard elements; "
        "%lld bytes unsharded), plus %s of gradient shard buffers; %s\n",
        r.zero_stage, (long long)r.optimizer_bytes, (long long)r.zero_shards->shard_numel,
        (long long)(9 * r.zero_shards->numel), human_bytes(r.zero_buffer_bytes).c_str(),
        r.zero_shards->describe().c_str());
    // Per rank, what each part really holds (docs/DISTRIBUTED.md, "ZeRO-2"): the parameters are
    // not sharded at stage 1 or 2; the full gradient buffer stays allocated at stage 1, while
    // stage 2 stages gradients per parameter and frees them once reduce-scattered.
    const std::string param_kind =
        r.param_gathered_bytes < 0
            ? std::string("(full)")
            : absl::StrCat("(shard 1/", r.zero_shards->dp_size, ") + ", r.param_gathered_bytes,
                           " bytes gathered (estimate: the two largest units; "
                           "param_gathered_peak_bytes in metrics.jsonl measures it)");
    std::printf(
        "ZeRO-%d per rank: parameters %lld bytes %s, gradients %lld bytes %s + %lld "
        "bytes averaged shard, optimizer %lld bytes (1/%d)\n",
        r.zero_stage, (long long)r.param_bytes, param_kind.c_str(), (long long)r.grad_bytes,
        r.grads_staged
            ? "staged per parameter (estimate: two buckets + the two largest parameters; "
              "grad_peak_bytes in metrics.jsonl measures it)"
            : "full buffer",
        (long long)(r.zero_shards->shard_numel * int64_t(sizeof(float))),
        (long long)r.optimizer_bytes, r.zero_shards->dp_size);
  } else {
    std::printf("optimizer state %lld bytes per rank (m, v, decay mask; not sharded%s)\n",
                (long long)r.optimizer_bytes,
                r.zero_stage_requested > 0 ? absl::StrCat(": ZeRO-", r.zero_stage_requested,
                                                          " with one data-parallel rank")
                                                 .c_str()
                                           : "");
  }
  std::printf("peak for MFU: %.1f GFLOP/s (%s%s)\n", r.peak_flops * 1e-9, r.peak_source.c_str(),
              r.several_ranks ? ", times the ranks" : "");
  if (!r.cpu_paths.empty()) std::printf("%s\n", r.cpu_paths.c_str());
  std::fflush(stdout);
}

void print_end_report(int64_t steps, int64_t rss_before_steps, Device device, int64_t staging_bytes,
                      const std::string& run_dir) {
  // Peak RSS above the resident size before the first step: the activations' real footprint.
  const int64_t peak = peak_rss_bytes();
  std::printf(
      "done: %lld steps, peak RSS %s (estimate above); %s above the RSS before the first step; "
      "run dir %s\n",
      (long long)steps, human_bytes(double(peak)).c_str(),
      human_bytes(double(peak - rss_before_steps)).c_str(), run_dir.c_str());
  if (device.is_cuda()) {
    const auto held = static_cast<CachingAllocator&>(allocator_for(device)).stats();
    std::printf("%s memory: %s in use, %s cached, %lld cudaMalloc calls; %s pinned staging\n",
                device.str().c_str(), human_bytes(double(held.bytes_in_use)).c_str(),
                human_bytes(double(held.bytes_cached)).c_str(), (long long)held.source_allocs,
                human_bytes(double(staging_bytes)).c_str());
  }
}

}  // namespace tessera::train
