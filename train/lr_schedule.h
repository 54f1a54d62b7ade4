#pragma once
// Learning rate as a function of the step: linear warmup, then cosine decay to
// lr * min_lr_ratio at the last step, or constant.

#include <cstdint>

#include "proto/config.pb.h"

namespace tessera::train {

// step is 1-based (the step about to be taken); total_steps from train.steps.
double learning_rate(const config::OptimConfig& optim, const config::ScheduleConfig& schedule,
                     int64_t step, int64_t total_steps);

}  // namespace tessera::train
