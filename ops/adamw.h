#pragma once
// One fused AdamW step over flat f32 buffers: the parameters, their gradients and the two Adam
// moments are equally long slices of the flat buffers (docs/DESIGN.md decision 3) — all of them on
// a plain data-parallel rank, this rank's ZeRO shard otherwise.
//
// Semantics are exactly torch.optim.AdamW (amsgrad=False, maximize=False), element by element:
//   g  = grad_scale * grad            (undoes loss scaling and applies global-norm clipping)
//   p  = p * (1 - lr * weight_decay)  where decay_mask is 1 (decoupled weight decay, first)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   p  = p - lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// in one pass over memory. m and v start at zero before step 1, as in PyTorch. The
// hyperparameters are the floats given: 0.999f is 0.99900001, so 1 - beta2 is 1.3e-5 (relative)
// below the 0.001 that PyTorch derives from the Python double 0.999.
//
// Why a per-element decay mask rather than a list of (offset, length, decay?) ranges: ZeRO cuts
// the flat buffers into equal shards at arbitrary element offsets, so a shard begins and ends in
// the middle of parameters, and the owner of each shard would have to intersect every
// parameter's range with its own. A u8 mask built once for the whole flat buffer is sliced
// exactly like the buffers it describes (flat_view at the shard's offset), costs 1 byte per
// parameter (1/16 of p, m, v, grad), and keeps the kernel a single branch-free loop.

#include <cstdint>

#include "core/tensor.h"

namespace tessera::ops {

struct AdamWConfig {
  float lr;  // no default: every caller states its (scheduled) learning rate
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  float grad_scale = 1.0f;  // multiplies grad before anything else
};

// Updates param, m and v in place; grad is only read. The four buffers must not overlap.
void adamw_step(const Tensor& param,       // (N) f32, any shape allowed (treated as flat)
                const Tensor& grad,        // same shape as param, f32
                const Tensor& m,           // same shape as param, f32: first moment
                const Tensor& v,           // same shape as param, f32: second moment
                const Tensor& decay_mask,  // same shape as param, u8: 1 = apply weight decay,
                                           // 0 = none (biases, norms); undefined = decay all
                const AdamWConfig& cfg,
                int64_t step);  // 1-based count of steps taken including this one

}  // namespace tessera::ops
