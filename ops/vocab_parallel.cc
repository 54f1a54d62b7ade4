// Adapters for ops/vocab_parallel.h: check dtypes, shapes and devices, then dispatch.
#include "ops/vocab_parallel.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/vocab_parallel.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/vocab_parallel.cuh"
#endif

namespace tessera::ops {
namespace {

// The real (unpadded) columns of a slice of v columns starting at global column `begin` when the
// vocabulary has `vocab` real entries: 0 for a slice that is all padding.
int64_t real_columns(const OpCheck& c, int64_t begin, int64_t vocab, int64_t v) {
  c.expect(begin >= 0 && vocab >= 0, "begin >= 0 and vocab >= 0");
  return std::clamp<int64_t>(vocab - begin, 0, v);
}

#if TESSERA_WITH_CUDA
// Device ids/targets are checked on a host copy (N ints, a synchronisation), with the CPU
// launchers' messages; the CUDA launchers that need host information take the copy.
Tensor checked_host_ids(const Tensor& ids, int64_t vocab) {
  Tensor host = to_device(ids, Device::cpu());
  const int32_t* p = host.data<int32_t>();
  for (int64_t i = 0; i < host.numel(); ++i) {
    TESSERA_CHECK(p[i] >= 0 && p[i] < vocab, "vocab_embedding_forward: id ", p[i], " at position ",
                  i, " is outside [0, ", vocab, ")");
  }
  return host;
}

// The number of rows whose target is not ignore_index; checks the others against vocab when
// vocab > 0.
int64_t count_valid_targets(const char* op, const Tensor& targets, int64_t vocab,
                            int ignore_index) {
  const Tensor host = to_device(targets, Device::cpu());
  const int32_t* t = host.data<int32_t>();
  int64_t valid = 0;
  for (int64_t i = 0; i < host.numel(); ++i) {
    if (t[i] == ignore_index) continue;
    TESSERA_CHECK(vocab <= 0 || (t[i] >= 0 && t[i] < vocab), op, ": target ", t[i], " at row ", i,
                  " is outside [0, ", vocab, ") and is not ignore_index ", ignore_index);
    ++valid;
  }
  return valid;
}

// The scale is dloss over the valid rows, as the CPU launcher computes it (in double).
void cuda_vocab_ce_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            int64_t begin, int64_t cols, float dloss, int ignore_index,
                            const Tensor& dlogits, float smoothing, int64_t vocab,
                            cudaStream_t stream) {
  const int64_t valid = count_valid_targets("vocab_ce_backward", targets, 0, ignore_index);
  const float scale = valid > 0 ? float(double(dloss) / double(valid)) : 0.0f;
  cuda::vocab_ce_backward(logits.data<float>(), targets.data<int32_t>(), lse.data<float>(),
                          dlogits.data<float>(), logits.dim(0), logits.dim(1), cols, begin, scale,
                          ignore_index, smoothing, vocab, stream);
}
#endif

}  // namespace

void vocab_embedding_forward(const Tensor& ids, const Tensor& table, int64_t begin, int64_t vocab,
                             const Tensor& out) {
  TESSERA_PROFILE("embedding");
  OpCheck c("vocab_embedding_forward");
  c.tensor_ndim("ids", ids, DType::i32, 1).tensor_ndim("table", table, DType::f32, 2);
  const int64_t n = ids.dim(0), v = table.dim(0), cols = table.dim(1);
  c.tensor("out", out, DType::f32, {n, cols});
  // A shard may reach past vocab: vocabulary padding (models/gpt.h), rows no valid id selects.
  c.expect(begin >= 0 && begin < std::max<int64_t>(vocab, 1), "the table starts inside [0, vocab)");
  if (c.device().is_cpu()) {
    cpu::vocab_embedding_forward(ids.data<int32_t>(), table.data<float>(), out.data<float>(), n, v,
                                 cols, begin, vocab);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, (checked_host_ids(ids, vocab),
            cuda::vocab_embedding_forward(ids.data<int32_t>(), table.data<float>(),
                                          out.data<float>(), n, v, cols, begin, stream_for(c))));
  }
}

void vocab_embedding_backward(const Tensor& dout, const Tensor& ids, int64_t begin,
                              const Tensor& dtable) {
  TESSERA_PROFILE("embedding");
  OpCheck c("vocab_embedding_backward");
  c.tensor_ndim("ids", ids, DType::i32, 1).tensor_ndim("dtable", dtable, DType::f32, 2);
  const int64_t n = ids.dim(0), v = dtable.dim(0), cols = dtable.dim(1);
  c.tensor("dout", dout, DType::f32, {n, cols});
  if (c.device().is_cpu()) {
    cpu::vocab_embedding_backward(dout.data<float>(), ids.data<int32_t>(), dtable.data<float>(), n,
                                  v, cols, begin);
  } else {
    // Out-of-shard ids are skipped, as on the CPU; any int is a valid position here.
    TESSERA_CUDA_LAUNCH(c, cuda::vocab_embedding_backward(
                               dout.data<float>(), to_device(ids, Device::cpu()).data<int32_t>(),
                               dtable.data<float>(), n, v, cols, begin, stream_for(c)));
  }
}

void vocab_ce_row_max(const Tensor& logits, int64_t begin, int64_t vocab, const Tensor& row_max) {
  TESSERA_PROFILE("cross_entropy");
  OpCheck c("vocab_ce_row_max");
  c.tensor_ndim("logits", logits, DType::f32, 2);
  c.tensor("row_max", row_max, DType::f32, {logits.dim(0)});
  const int64_t cols = real_columns(c, begin, vocab, logits.dim(1));
  if (c.device().is_cpu()) {
    cpu::vocab_ce_row_max(logits.data<float>(), row_max.data<float>(), logits.dim(0), logits.dim(1),
                          cols);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::vocab_ce_row_max(logits.data<float>(), row_max.data<float>(), logits.dim(0),
                                  logits.dim(1), cols, stream_for(c)));
  }
}

void vocab_ce_sum_exp_target(const Tensor& logits, const Tensor& targets, const Tensor& row_max,
                             int64_t begin, int64_t vocab, const Tensor& sum_exp,
                             const Tensor& target_logit, const Tensor& row_sum) {
  TESSERA_PROFILE("cross_entropy");
  OpCheck c("vocab_ce_sum_exp_target");
  c.tensor_ndim("logits", logits, DType::f32, 2);
  const int64_t n = logits.dim(0);
  c.tensor("targets", targets, DType::i32, {n})
      .tensor("row_max", row_max, DType::f32, {n})
      .tensor("sum_exp", sum_exp, DType::f32, {n})
      .tensor("target_logit", target_logit, DType::f32, {n});
  if (row_sum.defined()) c.tensor("row_sum", row_sum, DType::f32, {n});
  float* sums = row_sum.defined() ? row_sum.data<float>() : nullptr;
  const int64_t cols = real_columns(c, begin, vocab, logits.dim(1));
  if (c.device().is_cpu()) {
    cpu::vocab_ce_sum_exp_target(logits.data<float>(), targets.data<int32_t>(),
                                 row_max.data<float>(), sum_exp.data<float>(),
                                 target_logit.data<float>(), n, logits.dim(1), cols, begin, sums);
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::vocab_ce_sum_exp_target(
                               logits.data<float>(), targets.data<int32_t>(), row_max.data<float>(),
                               sum_exp.data<float>(), target_logit.data<float>(), sums, n,
                               logits.dim(1), cols, begin, stream_for(c)));
  }
}

void vocab_ce_loss(const Tensor& row_max, const Tensor& sum_exp, const Tensor& target_logit,
                   const Tensor& targets, int64_t vocab, int ignore_index, const Tensor& lse,
                   const Tensor& loss, float smoothing, const Tensor& row_sum) {
  TESSERA_PROFILE("cross_entropy");
  OpCheck c("vocab_ce_loss");
  c.tensor_ndim("targets", targets, DType::i32, 1);
  const int64_t n = targets.dim(0);
  c.tensor("row_max", row_max, DType::f32, {n})
      .tensor("sum_exp", sum_exp, DType::f32, {n})
      .tensor("target_logit", target_logit, DType::f32, {n})
      .tensor("lse", lse, DType::f32, {n})
      .tensor("loss", loss, DType::f32, {1});
  c.expect(smoothing >= 0 && smoothing < 1, "label smoothing in [0, 1)");
  if (smoothing != 0) c.tensor("row_sum", row_sum, DType::f32, {n});
  const float* sums = smoothing != 0 ? row_sum.data<float>() : nullptr;
  if (c.device().is_cpu()) {
    cpu::vocab_ce_loss(row_max.data<float>(), sum_exp.data<float>(), target_logit.data<float>(),
                       targets.data<int32_t>(), lse.data<float>(), loss.data<float>(), n, vocab,
                       ignore_index, smoothing, sums);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::vocab_ce_loss(row_max.data<float>(), sum_exp.data<float>(),
                               target_logit.data<float>(), targets.data<int32_t>(),
                               lse.data<float>(), loss.data<float>(), n,
                               count_valid_targets("vocab_ce_loss", targets, vocab, ignore_index),
                               ignore_index, smoothing, sums, vocab, stream_for(c)));
  }
}

void vocab_ce_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                       int64_t begin, int64_t vocab, float dloss, int ignore_index,
                       const Tensor& dlogits, float smoothing) {
  TESSERA_PROFILE("cross_entropy");
  OpCheck c("vocab_ce_backward");
  c.tensor_ndim("logits", logits, DType::f32, 2);
  const int64_t n = logits.dim(0);
  c.tensor("targets", targets, DType::i32, {n})
      .tensor("lse", lse, DType::f32, {n})
      .tensor("dlogits", dlogits, DType::f32, logits.shape());
  const int64_t cols = real_columns(c, begin, vocab, logits.dim(1));
  if (c.device().is_cpu()) {
    cpu::vocab_ce_backward(logits.data<float>(), targets.data<int32_t>(), lse.data<float>(),
                           dlogits.data<float>(), n, logits.dim(1), cols, begin, dloss,
                           ignore_index, smoothing, vocab);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda_vocab_ce_backward(logits, targets, lse, begin, cols, dloss, ignore_index, dlogits,
                                  smoothing, vocab, stream_for(c)));
  }
}

}  // namespace tessera::ops
