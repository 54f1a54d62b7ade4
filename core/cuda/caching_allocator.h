#pragma once
// CUDA caching allocator: freed blocks go to a free list keyed by rounded size and are reused,
// so after the first step a training loop makes no cudaMalloc (issue 3 checks the counter).
// Blocks are assumed to be used on one compute stream per device; a block freed while a kernel
// on another stream still reads it would need an event (not needed while tessera uses one
// compute stream per device).

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/allocator.h"

namespace tessera::cuda {

struct CachingAllocatorStats {
  size_t bytes_in_use = 0;     // handed out, not yet freed
  size_t bytes_cached = 0;     // held in the free lists
  int64_t device_mallocs = 0;  // calls to cudaMalloc so far
};

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device_index) : device_index_(device_index) {}
  ~CachingAllocator() override;
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  Device device() const override { return Device::cuda(device_index_); }

  CachingAllocatorStats stats() const;
  // Returns every cached block to the driver.
  void release_cached();

  // Small requests round to 512 B, large ones to 2 MiB, so a free block fits the next request
  // of about the same size.
  static size_t round_size(size_t bytes);

 private:
  void release_cached_locked();

  int device_index_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_blocks_;       // rounded size -> block
  std::unordered_map<void*, size_t> block_sizes_;  // every live or cached block -> rounded size
  CachingAllocatorStats stats_;
};

}  // namespace tessera::cuda
