#include "train/fault_injection.h"

#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/error.h"
#include "core/tensor.h"

namespace tessera::train {
namespace {

struct Target {
  int rank = -1;
  int64_t step = -1;
};

// Read once: the gradient hook calls this for every finished parameter.
std::optional<Target> target_from_environment() {
  const char* value = std::getenv("TESSERA_FAIL_IN_BACKWARD");
  if (value == nullptr || value[0] == 0) return std::nullopt;
  const std::vector<std::string> parts = absl::StrSplit(value, ':');
  Target t;
  TESSERA_CHECK(parts.size() == 2 && absl::SimpleAtoi(parts[0], &t.rank) &&
                    absl::SimpleAtoi(parts[1], &t.step) && t.rank >= 0 && t.step >= 1,
                "TESSERA_FAIL_IN_BACKWARD=", value, ": expected RANK:STEP (e.g. 1:2)");
  return t;
}

}  // namespace

void fail_in_backward_if_asked(distributed::Communicator& world, int64_t step, int64_t launched,
                               int64_t buckets) {
  static const std::optional<Target> target = target_from_environment();
  static bool fired = false;
  if (!target || fired || target->rank != world.rank() || target->step != step) return;
  fired = true;
  // The collective no peer joins. Its tensor and handle are left alive on purpose: the
  // communication thread owns the operation until the job ends.
  auto* stray = new Tensor(Tensor::zeros({1}, DType::f32));
  auto* work = new distributed::WorkHandle(world.all_reduce(*stray, distributed::ReduceOp::kSum));
  (void)work;
  throw Error(absl::StrCat("injected failure in backward of step ", step,
                           " (TESSERA_FAIL_IN_BACKWARD), with ", launched, " of ", buckets,
                           " gradient buckets launched and an all-reduce no peer joins"));
}

}  // namespace tessera::train
