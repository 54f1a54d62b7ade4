// Adapters for ops/cross_entropy.h: check dtypes, shapes and devices, then dispatch. Target values
// are checked by the CPU launcher, which reads them anyway; for CUDA the adapter copies the
// targets to the host (N ints, a synchronisation), checks them with the same message and counts
// the valid ones, which the kernels need for the mean.
#include "ops/cross_entropy.h"

#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/cross_entropy.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/cross_entropy.cuh"
#endif

namespace tessera::ops {
namespace {

#if TESSERA_WITH_CUDA
// As ops/cpu/cross_entropy.cc's count_valid, on a host copy of the device targets.
int64_t count_valid_on_host(const char* op, const Tensor& targets, int64_t v, int ignore_index) {
  const Tensor host = to_device(targets, Device::cpu());
  const int32_t* t = host.data<int32_t>();
  int64_t valid = 0;
  for (int64_t i = 0; i < host.numel(); ++i) {
    if (t[i] == ignore_index) continue;
    TESSERA_CHECK(t[i] >= 0 && t[i] < v, op, ": target ", t[i], " at row ", i, " is outside [0, ",
                  v, ") and is not ignore_index ", ignore_index);
    ++valid;
  }
  return valid;
}
#endif

// Checks SoftTargets against the logits' rows and device; returns them as raw pointers. On CUDA
// the kept rows' mix targets are range-checked on a host copy, as the targets are.
cpu::SoftTargetPtrs soft_pointers(const OpCheck& c, const SoftTargets& soft, int64_t n) {
  c.expect(soft.smoothing >= 0 && soft.smoothing < 1, "label smoothing in [0, 1)");
  c.expect(soft.mix_targets.defined() == soft.weights.defined(),
           "mix_targets and weights both given or both undefined");
  cpu::SoftTargetPtrs p;
  p.smoothing = soft.smoothing;
  if (soft.mix_targets.defined()) {
    c.tensor("mix_targets", soft.mix_targets, DType::i32, {n})
        .tensor("weights", soft.weights, DType::f32, {n});
    p.mix_targets = soft.mix_targets.data<int32_t>();
    p.weights = soft.weights.data<float>();
  }
  return p;
}

#if TESSERA_WITH_CUDA
void check_mix_on_host(const char* op, const Tensor& targets, const SoftTargets& soft, int64_t v,
                       int ignore_index) {
  if (!soft.mix_targets.defined()) return;
  const Tensor t = to_device(targets, Device::cpu()),
               b = to_device(soft.mix_targets, Device::cpu());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.data<int32_t>()[i] == ignore_index) continue;
    const int32_t m = b.data<int32_t>()[i];
    TESSERA_CHECK(m >= 0 && m < v, op, ": mix target ", m, " at row ", i, " is outside [0, ", v,
                  ")");
  }
}
#endif

// valid_cols as the caller gave it (-1: all v), checked against the row length.
int64_t valid_columns(const OpCheck& c, int64_t valid_cols, int64_t v) {
  if (valid_cols < 0) return v;
  c.expect(valid_cols <= v, "valid_cols <= the logits' row length");
  return valid_cols;
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, const Tensor& loss,
                           const Tensor& lse, int ignore_index, int64_t valid_cols,
                           const SoftTargets& soft) {
  TESSERA_PROFILE("cross_entropy");
  OpCheck c("cross_entropy_forward");
  c.tensor_ndim("logits", logits, DType::f32, 2);
  const int64_t n = logits.dim(0), v = logits.dim(1);
  c.tensor("targets", targets, DType::i32, {n})
      .tensor("loss", loss, DType::f32, {1})
      .tensor("lse", lse, DType::f32, {n});
  const int64_t cols = valid_columns(c, valid_cols, v);
  const cpu::SoftTargetPtrs p = soft_pointers(c, soft, n);
  if (c.device().is_cpu()) {
    cpu::cross_entropy_forward(logits.data<float>(), targets.data<int32_t>(), loss.data<float>(),
                               lse.data<float>(), n, v, cols, ignore_index, p);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, (check_mix_on_host("cross_entropy_forward", targets, soft, cols, ignore_index),
            cuda::cross_entropy_forward(
                logits.data<float>(), targets.data<int32_t>(), loss.data<float>(),
                lse.data<float>(), n, v, cols, ignore_index,
                count_valid_on_host("cross_entropy_forward", targets, cols, ignore_index),
                p.mix_targets, p.weights, p.smoothing, stream_for(c))));
  }
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            float dloss, const Tensor& dlogits, int ignore_index,
                            int64_t valid_cols, const SoftTargets& soft) {
  TESSERA_PROFILE("cross_entropy");
  OpCheck c("cross_entropy_backward");
  c.tensor_ndim("logits", logits, DType::f32, 2);
  const int64_t n = logits.dim(0), v = logits.dim(1);
  c.tensor("targets", targets, DType::i32, {n})
      .tensor("lse", lse, DType::f32, {n})
      .tensor("dlogits", dlogits, DType::f32, logits.shape());
  const int64_t cols = valid_columns(c, valid_cols, v);
  const cpu::SoftTargetPtrs p = soft_pointers(c, soft, n);
  if (c.device().is_cpu()) {
    cpu::cross_entropy_backward(logits.data<float>(), targets.data<int32_t>(), lse.data<float>(),
                                dloss, dlogits.data<float>(), n, v, cols, ignore_index, p);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, (check_mix_on_host("cross_entropy_backward", targets, soft, cols, ignore_index),
            cuda::cross_entropy_backward(
                logits.data<float>(), targets.data<int32_t>(), lse.data<float>(), dloss,
                dlogits.data<float>(), n, v, cols, ignore_index,
                count_valid_on_host("cross_entropy_backward", targets, cols, ignore_index),
                p.mix_targets, p.weights, p.smoothing, stream_for(c))));
  }
}

}  // namespace tessera::ops
