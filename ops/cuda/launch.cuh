#pragma once
// Helpers for CUDA launchers: grid sizing and launch-error checks.

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/cuda/runtime.h"

namespace tessera::ops::cuda {

inline int grid_for(int64_t work_items, int block) {
  return static_cast<int>(std::min<int64_t>((work_items + block - 1) / block, 65535 * 8));
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
