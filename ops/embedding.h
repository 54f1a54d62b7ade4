#pragma once
// Embedding lookup (token and learned position embeddings): out[i] = table[ids[i]]. Ids may
// repeat. An id outside [0, V) throws tessera::Error naming its position and value.

#include "core/tensor.h"

namespace tessera::ops {

void embedding_forward(const Tensor& ids,    // (N) i32
                       const Tensor& table,  // (V, C)
                       const Tensor& out);   // (N, C)

// Contract: dtable ACCUMULATES (+=) by scatter-add: dtable[ids[i]] += dout[i]. Each table row
// receives its contributions in position order whatever the thread count (threads split the C
// columns), so the result is deterministic and race-free.
void embedding_backward(const Tensor& dout,     // (N, C)
                        const Tensor& ids,      // (N) i32
                        const Tensor& dtable);  // (V, C)

}  // namespace tessera::ops
