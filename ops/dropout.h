#pragma once
// Keyed dropout and drop-path (stochastic depth) on rows that are consecutive stream positions.
//
// out[b, n] = x[b, n] * keep_elem(b, n) / (1 - p) * keep_row(b) / (1 - path_p), where the masks
// are pure functions of (key.seed, key.stream, position = key.first + b, n) through Philox
// (core/philox.h), never of a generator's state:
//   keep_elem(b, n): value n % 4 of Philox block (position * ceil(N / 4) + n / 4) of stream
//                    key.stream, as a uniform u in [0, 1): kept when u >= p;
//   keep_row(b):     value 0 of block `position` of stream key.stream ^ kDropPathStream: kept
//                    when u >= path_p (timm's DropPath: the whole sample's branch).
// So a mask does not depend on the thread count, the device, which rank holds the row (the
// trainer keys rows by their global sample position), or how often it is computed: activation
// recomputation and GradCache's second forward reproduce it exactly. Nothing is stored for
// backward: the op is linear in x, and dx = keyed_dropout(dy) with the same key.

#include <cstdint>

#include "core/tensor.h"

namespace tessera::ops {

inline constexpr uint64_t kDropPathStream = 0x8000000000000000ull;

struct DropoutKey {
  uint64_t seed = 0;
  uint64_t stream = 0;  // one per dropout site (layers/dropout.h: a hash of its name)
  int64_t first = 0;    // the stream position of row 0
};

// x, out: (B, N) f32 (any shape whose leading dimension is the rows); may alias. p, path_p in
// [0, 1).
void keyed_dropout(const Tensor& x, const Tensor& out, float p, float path_p,
                   const DropoutKey& key);

}  // namespace tessera::ops
