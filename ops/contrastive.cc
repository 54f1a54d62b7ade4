// Adapters for ops/contrastive.h: check dtypes, shapes and devices, then dispatch.
#include "ops/contrastive.h"

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/contrastive.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/contrastive.cuh"
#endif

namespace tessera::ops {
namespace {

constexpr float kNormalizeEps = 1e-12f;  // torch.nn.functional.normalize's default

void check_pairs(const OpCheck& c, const Tensor& logits, int64_t offset) {
  c.tensor_ndim("logits", logits, DType::f32, 2);
  c.expect(offset == kNoPositivePairs || (offset >= 0 && offset + logits.dim(0) <= logits.dim(1)),
           absl::StrCat("the positive pairs (offset ", offset, ") of logits ", logits.describe(),
                        " must lie inside its columns"));
}

#if TESSERA_WITH_CUDA
// Row sums (doubles, 8 bytes each: a (2*bi) f32 scratch tensor) live on the device.
void cuda_sigmoid_pair_loss_forward(const OpCheck& c, const Tensor& logits, float bias,
                                    int64_t offset, const Tensor& loss) {
  Tensor rows = Tensor::empty({2 * logits.dim(0)}, DType::f32, c.device());
  cuda::sigmoid_pair_loss_forward(logits.data<float>(), logits.dim(0), logits.dim(1), bias, offset,
                                  static_cast<double*>(rows.raw_data()), loss.data<float>(),
                                  stream_for(c));
}
#endif

}  // namespace

void l2_normalize_forward(const Tensor& x, const Tensor& y, const Tensor& norm) {
  TESSERA_PROFILE("contrastive");
  OpCheck c("l2_normalize_forward");
  c.tensor_ndim("x", x, DType::f32, 2)
      .tensor("y", y, DType::f32, x.shape())
      .tensor("norm", norm, DType::f32, {x.dim(0)});
  if (c.device().is_cpu()) {
    cpu::l2_normalize_forward(x.data<float>(), y.data<float>(), norm.data<float>(), x.dim(0),
                              x.dim(1), kNormalizeEps);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::l2_normalize_forward(x.data<float>(), y.data<float>(), norm.data<float>(),
                                      x.dim(0), x.dim(1), kNormalizeEps, stream_for(c)));
  }
}

void l2_normalize_backward(const Tensor& dy, const Tensor& y, const Tensor& norm,
                           const Tensor& dx) {
  TESSERA_PROFILE("contrastive");
  OpCheck c("l2_normalize_backward");
  c.tensor_ndim("y", y, DType::f32, 2)
      .tensor("dy", dy, DType::f32, y.shape())
      .tensor("norm", norm, DType::f32, {y.dim(0)})
      .tensor("dx", dx, DType::f32, y.shape());
  if (c.device().is_cpu()) {
    cpu::l2_normalize_backward(dy.data<float>(), y.data<float>(), norm.data<float>(),
                               dx.data<float>(), y.dim(0), y.dim(1), kNormalizeEps);
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::l2_normalize_backward(
                               dy.data<float>(), y.data<float>(), norm.data<float>(),
                               dx.data<float>(), y.dim(0), y.dim(1), kNormalizeEps, stream_for(c)));
  }
}

void sigmoid_pair_loss_forward(const Tensor& logits, float bias, int64_t offset,
                               const Tensor& loss) {
  TESSERA_PROFILE("contrastive");
  OpCheck c("sigmoid_pair_loss_forward");
  check_pairs(c, logits, offset);
  c.tensor("loss", loss, DType::f32, {1});
  if (c.device().is_cpu()) {
    loss.data<float>()[0] = cpu::sigmoid_pair_loss_forward(logits.data<float>(), logits.dim(0),
                                                           logits.dim(1), bias, offset);
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda_sigmoid_pair_loss_forward(c, logits, bias, offset, loss));
  }
}

void sigmoid_pair_loss_backward(const Tensor& logits, float bias, int64_t offset, float dloss,
                                const Tensor& dlogits) {
  TESSERA_PROFILE("contrastive");
  OpCheck c("sigmoid_pair_loss_backward");
  check_pairs(c, logits, offset);
  c.tensor("dlogits", dlogits, DType::f32, logits.shape());
  if (c.device().is_cpu()) {
    cpu::sigmoid_pair_loss_backward(logits.data<float>(), logits.dim(0), logits.dim(1), bias,
                                    offset, dloss, dlogits.data<float>());
  } else {
    TESSERA_CUDA_LAUNCH(c, cuda::sigmoid_pair_loss_backward(logits.data<float>(), logits.dim(0),
                                                            logits.dim(1), bias, offset, dloss,
                                                            dlogits.data<float>(), stream_for(c)));
  }
}

}  // namespace tessera::ops
