#pragma once
// Helpers for CUDA launchers: grid sizing and launch-error checks.

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/cuda/runtime.h"
#include "core/error.h"

namespace tessera::ops::cuda {

inline int grid_for(int64_t work_items, int block) {
  return static_cast<int>(std::min<int64_t>((work_items + block - 1) / block, 65535 * 8));
}

// grid.y (and z) are limited to 65535 blocks: a larger count is an error naming the kernel rather
// than an "invalid configuration argument" at the launch.
inline unsigned grid_y(int64_t blocks, const char* kernel) {
  TESSERA_CHECK(blocks >= 0 && blocks <= 65535, kernel, ": ", blocks,
                " blocks along grid.y exceed CUDA's 65535");
  return static_cast<unsigned>(blocks);
}

// Every launcher ends with this: a bad configuration surfaces at the launch, named.
inline void check_launch(const char* kernel) {
  ::tessera::cuda::check(cudaGetLastError(), kernel);
}

// 128-bit accesses need 16-byte alignment of every pointer involved.
inline bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

}  // namespace tessera::ops::cuda
