#pragma once
// CUDA launchers for ops/embedding.h: raw device pointers; n ids, a (v, c) table; the op's
// stream. Ids are range-checked on the host by the adapter (ops/embedding.cc), which copies them
// back for that; backward also takes that host copy (`host_ids`) to group positions by id.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void embedding_forward(const int32_t* ids, const float* table, float* out, int64_t n, int64_t v,
                       int64_t c, cudaStream_t stream);
// dtable accumulated: each touched row gets its contributions added in position order, one
// thread per (row, column), so the result equals the CPU's and does not depend on timing.
void embedding_backward(const float* dout, const int32_t* ids, float* dtable, int64_t n, int64_t v,
                        int64_t c, const int32_t* host_ids, cudaStream_t stream);

}  // namespace tessera::ops::cuda
