#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace tessera::train {

double learning_rate(const config::OptimConfig& optim, const config::ScheduleConfig& schedule,
                     int64_t step, int64_t total_steps) {
  const double peak = optim.lr();
  const int64_t warmup = schedule.warmup_steps();
  if (warmup > 0 && step <= warmup) return peak * double(step) / double(warmup);
  if (schedule.kind() == config::ScheduleConfig::CONSTANT) return peak;
  const double floor = peak * schedule.min_lr_ratio();
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup);
  const double progress = std::clamp(double(step - warmup) / double(decay_steps), 0.0, 1.0);
  return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace tessera::train
