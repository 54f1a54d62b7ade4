#pragma once
// The training steps' metrics: a window of steps between two logged ones, summarised every
// log.every_steps and at the last step into one metrics.jsonl record (train/metrics.h) and one
// console line. Rank 0 writes and prints; every rank keeps the window so they all reset it
// together. Other components add their own fields to each record through sources (the
// checkpointer's stall, the gradient all-reduce's overlap), so a new feature adds metrics
// without touching the logger.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "nlohmann/json.hpp"
#include "proto/config.pb.h"
#include "train/metrics.h"

namespace tessera::train {

// What one training step did (Trainer::train_step()).
struct StepResult {
  double loss = 0;       // mean over the global batch
  double lr = 0;         // the learning rate it used
  double grad_norm = 0;  // before clipping
  bool applied = false;  // false: non-finite loss or gradients, the parameters are unchanged
  double data_s = 0;     // seconds this rank waited for batches
  double step_s = 0;     // seconds of the whole step
};

// The work of one step, to turn its time into throughput and MFU.
struct StepCost {
  int64_t samples = 0;    // the global batch
  int64_t tokens = 0;     // tokens per sample; 0 where tokens mean nothing (not a language model)
  double flops = 0;       // model FLOPs of a global batch
  double peak_flops = 0;  // of every rank's cores (or GPUs) together
};

class StepLogger {
 public:
  // Adds fields to a record about to be written; window_steps: the steps it summarises.
  using Source = std::function<void(nlohmann::json& record, int window_steps)>;

  // metrics: rank 0's writer (owned), nullptr on the other ranks. print: console lines.
  StepLogger(const config::Config& config, const StepCost& cost, Device device,
             std::unique_ptr<MetricsWriter> metrics, bool print);
  ~StepLogger();

  void add_source(Source source) { sources_.push_back(std::move(source)); }

  // An applied step (skipped steps are not windowed). On a logged step rank 0 writes the record
  // of the window (mean loss, throughput and data wait; this step's lr, grad norm and time),
  // prints its line, and the window restarts on every rank. skipped_steps: so far in the run.
  void log_step(int64_t step, const StepResult& result, int64_t skipped_steps);

  // Any other record (evaluation) to metrics.jsonl, on rank 0.
  void write(const nlohmann::json& record);

 private:
  bool due(int64_t step) const;
  nlohmann::json record(int64_t step, const StepResult& result, int64_t skipped_steps) const;
  void print_line(int64_t step, const StepResult& result) const;

  int64_t every_steps_, total_steps_;
  StepCost cost_;
  Device device_;
  std::unique_ptr<MetricsWriter> metrics_;
  bool print_;
  std::vector<Source> sources_;
  // The window: sums over the applied steps since the last logged one.
  double loss_ = 0, data_s_ = 0, step_s_ = 0;
  int steps_ = 0;
};

}  // namespace tessera::train
