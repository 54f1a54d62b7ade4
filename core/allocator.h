#pragma once
// Allocators hand out raw device memory. The CPU one aligns to 64 bytes (one cache line, one
// AVX-512 register); the CUDA one caches freed blocks so a training step makes no cudaMalloc
// after warm-up.

#include <cstddef>

#include "core/dtype.h"

namespace tessera {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual Device device() const = 0;
};

// The allocator for `device`; CUDA allocators exist only in CUDA builds (throws otherwise).
Allocator& allocator_for(Device device);

// Number of usable CUDA devices: 0 in a CPU-only build or when no driver/GPU is present.
int cuda_device_count();
bool cuda_compiled();
// Makes `device` the calling thread's current CUDA device (no-op for the CPU). A process that
// works on cuda:N calls it first, so that helpers which select a device and restore "the
// previous one" never create a context on cuda:0 (the default) that nobody uses.
void make_current(Device device);

}  // namespace tessera
