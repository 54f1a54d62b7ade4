#pragma once
// CUDA launcher for ops/tokens.h: copies rows [src_begin, src_begin + count) of src (B, ts, C)
// to rows [dst_begin, ...) of dst (B, td, C); raw device pointers.

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

// C counts elements of `elem` bytes.
void copy_tokens(const void* src, int64_t ts, int64_t src_begin, void* dst, int64_t td,
                 int64_t dst_begin, int64_t B, int64_t count, int64_t C, size_t elem,
                 cudaStream_t stream);

}  // namespace tessera::ops::cuda
