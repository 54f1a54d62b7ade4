#pragma once
// What `tessera train` prints about a run's resources (rank 0): at start the model, layout,
// device, a memory estimate per rank, the optimizer state's exact bytes (scripts and tests read
// them) and the MFU peak; at the end the measured memory (peak RSS; on a GPU the caching
// allocator's and the pinned staging's bytes).

#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "distributed/zero_shards.h"

namespace tessera::train {

std::string human_bytes(double bytes);  // "12.3 MiB"; "unknown" when negative
int64_t current_rss_bytes();            // resident memory now (/proc/self/statm)
int64_t peak_rss_bytes();               // the most resident so far (VmHWM), start-up included

struct StartReport {
  std::string model_kind, layout, run_dir;
  Device device;
  int threads = 0;
  int64_t parameters = 0;                   // elements of this rank's flat buffer
  int64_t param_bytes = 0, grad_bytes = 0;  // flat buffers (grads staged: an estimate)
  bool grads_staged = false;                // ZeRO-2: no flat gradient buffer
  // ZeRO-3: param_bytes is this rank's parameter shard; this the estimate of the parameters
  // gathered at once (two units). -1: parameters not sharded.
  int64_t param_gathered_bytes = -1;
  int64_t optimizer_bytes = 0;    // m, v and decay mask (this rank's shard)
  int64_t activation_bytes = -1;  // the model's estimate, -1: none
  // The optimizer's shards under ZeRO-1/2 (borrowed), nullptr when its state is not sharded.
  const distributed::ZeroShards* zero_shards = nullptr;
  int zero_stage_requested = 0;   // parallel.zero_stage
  int zero_stage = 0;             // what the optimizer does (0 with one data-parallel rank)
  int64_t zero_buffer_bytes = 0;  // the optimizer's and GradSync's communication buffers
  double peak_flops = 0;          // all ranks together
  std::string peak_source;        // "train.peak_flops", "f32 sgemm measured now"
  bool several_ranks = false;
  std::string cpu_paths;         // ops::cpu_paths_summary(), for runs on the CPU
  std::string frozen;            // train/freeze.h describe_frozen(); "" when nothing is frozen
  int64_t allreduce_bytes = -1;  // gradient bytes averaged over DP per step; -1: one DP rank
};
void print_start_report(const StartReport& r);

// rss_before_steps: current_rss_bytes() before the first step; staging_bytes: the uploader's.
void print_end_report(int64_t steps, int64_t rss_before_steps, Device device, int64_t staging_bytes,
                      const std::string& run_dir);

}  // namespace tessera::train
