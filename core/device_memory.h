#pragma once
// Internal: raw memory operations that differ between a CPU-only and a CUDA build.
// core/cpu_only.cc and core/cuda/device_memory.cc each define these.

#include <cstddef>

#include "core/allocator.h"
#include "core/dtype.h"

namespace tessera::detail {

void device_memcpy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void device_memset_zero(void* dst, Device device, size_t bytes);
Allocator& cuda_allocator(int index);

}  // namespace tessera::detail
