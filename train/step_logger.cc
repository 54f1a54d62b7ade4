#include "train/step_logger.h"

#include <cstdio>

#include "absl/strings/str_format.h"
#include "core/caching_allocator.h"

namespace tessera::train {

StepLogger::StepLogger(const config::Config& config, const StepCost& cost, Device device,
                       std::unique_ptr<MetricsWriter> metrics, bool print)
    : every_steps_(config.log().every_steps()),
      total_steps_(config.train().steps()),
      cost_(cost),
      device_(device),
      metrics_(std::move(metrics)),
      print_(print) {}

StepLogger::~StepLogger() = default;

bool StepLogger::due(int64_t step) const {
  return step % every_steps_ == 0 || step == total_steps_;
}

void StepLogger::log_step(int64_t step, const StepResult& result, int64_t skipped_steps) {
  loss_ += result.loss;
  data_s_ += result.data_s;
  step_s_ += result.step_s;
  ++steps_;
  if (!due(step)) return;
  if (metrics_) {
    nlohmann::json rec = record(step, result, skipped_steps);
    for (const Source& source : sources_) source(rec, steps_);
    metrics_->write(rec);
    if (print_) print_line(step, result);
  }
  loss_ = data_s_ = step_s_ = 0;
  steps_ = 0;
}

void StepLogger::write(const nlohmann::json& record) {
  if (metrics_) metrics_->write(record);
}

nlohmann::json StepLogger::record(int64_t step, const StepResult& result,
                                  int64_t skipped_steps) const {
  const double mean_step_s = step_s_ / steps_;
  nlohmann::json rec = {{"step", step},
                        {"loss", loss_ / steps_},
                        {"lr", result.lr},
                        {"grad_norm", result.grad_norm},
                        {"samples_per_s", double(cost_.samples) / mean_step_s},
                        {"mfu", cost_.flops / mean_step_s / cost_.peak_flops},
                        {"step_ms", result.step_s * 1e3},
                        {"data_wait", data_s_ / step_s_},
                        {"skipped_steps", skipped_steps}};
  if (cost_.tokens > 0) rec["tokens_per_s"] = double(cost_.samples * cost_.tokens) / mean_step_s;
  if (device_.is_cuda()) {
    // cudaMalloc calls so far: flat after the first step when the caching allocator works.
    rec["cuda_mallocs"] =
        static_cast<CachingAllocator&>(allocator_for(device_)).stats().source_allocs;
  }
  return rec;
}

void StepLogger::print_line(int64_t step, const StepResult& result) const {
  const double mean_step_s = step_s_ / steps_;
  const std::string tokens =
      cost_.tokens > 0
          ? absl::StrFormat(" %.0f tok/s", double(cost_.samples * cost_.tokens) / mean_step_s)
          : "";
  std::printf(
      "step %6lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.1f samples/s%s | mfu %.2f | "
      "data %.1f%% | %.0f ms\n",
      (long long)step, (long long)total_steps_, loss_ / steps_, result.lr, result.grad_norm,
      double(cost_.samples) / mean_step_s, tokens.c_str(),
      cost_.flops / mean_step_s / cost_.peak_flops, 100 * data_s_ / step_s_, result.step_s * 1e3);
  std::fflush(stdout);
}

}  // namespace tessera::train
