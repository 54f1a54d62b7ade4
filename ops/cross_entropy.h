#pragma once
// Fused softmax cross-entropy over the last dimension, averaged over the rows whose target is not
// ignore_index (PyTorch's F.cross_entropy with reduction='mean').
//
// Rows whose target is ignore_index contribute nothing. When no target is valid, the loss is 0 and
// the gradient is zero: PyTorch returns NaN (0/0) there, but a batch that is all padding should
// not poison the step. A target outside [0, V) that is not ignore_index throws tessera::Error
// naming the row and the value.
//
// valid_cols (padded vocabularies, models/gpt.h): only the first valid_cols of the V columns
// take part in the softmax; the rest are padding. The loss is that of logits[:, :valid_cols],
// targets must lie in [0, valid_cols), and dlogits of the padded columns is exactly 0. The
// padding is skipped by the kernels, not masked with -inf copies. -1 (the default): all V.

#include "core/tensor.h"

namespace tessera::ops {

// Soft targets (label smoothing, and mixup/CutMix's two labels per sample): row i's target
// distribution over the valid columns is
//   y_i = (1 - smoothing) * (w_i * onehot(targets_i) + (1 - w_i) * onehot(mix_targets_i))
//         + smoothing / valid_cols
// and its loss -sum_j y_ij log softmax_ij = lse_i - sum_j y_ij x_ij. Without mixing (w = 1) this
// is PyTorch's F.cross_entropy(label_smoothing=smoothing); with it, timm's mixup_target followed
// by SoftTargetCrossEntropy. Whether a row is ignored is decided by targets alone; the mix target
// of a kept row must lie in [0, valid_cols) like its target. The default is hard targets.
struct SoftTargets {
  float smoothing = 0;  // in [0, 1)
  Tensor mix_targets;   // (N) i32 on the logits' device, or undefined (no mixing)
  Tensor weights;       // (N) f32 w_i, set exactly when mix_targets is
};

// Writes the mean loss and each row's log-sum-exp (for backward; also for rows that are ignored).
void cross_entropy_forward(const Tensor& logits,   // (N, V)
                           const Tensor& targets,  // (N) i32
                           const Tensor& loss,     // (1)
                           const Tensor& lse,      // (N)
                           int ignore_index = -100, int64_t valid_cols = -1,
                           const SoftTargets& soft = {});

// Contract: dlogits is WRITTEN (=): dloss * (softmax - y) / n_valid (y: onehot(target), or the
// soft targets above), and zero rows
// for ignored targets and zero padded columns. `dloss` is the gradient of the objective with
// respect to the loss.
void cross_entropy_backward(const Tensor& logits,   // (N, V)
                            const Tensor& targets,  // (N) i32
                            const Tensor& lse,      // (N), from forward
                            float dloss,
                            const Tensor& dlogits,  // (N, V)
                            int ignore_index = -100, int64_t valid_cols = -1,
                            const SoftTargets& soft = {});

}  // namespace tessera::ops
