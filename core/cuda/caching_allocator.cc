#include "core/cuda/caching_allocator.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera::cuda {
namespace {

constexpr size_t kSmallRounding = 512;
constexpr size_t kLargeThreshold = 1 << 20;
constexpr size_t kLargeRounding = 2 << 20;

// RAII guard that makes `index` the current device and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    cudaGetDevice(&previous_);
    if (previous_ != index) cudaSetDevice(index);
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

}  // namespace

size_t CachingAllocator::round_size(size_t bytes) {
  size_t unit = bytes < kLargeThreshold ? kSmallRounding : kLargeRounding;
  return (bytes + unit - 1) / unit * unit;
}

CachingAllocator::~CachingAllocator() {
  // Static destruction order may run after the CUDA runtime shut down; freeing then is harmless
  // to skip, the driver reclaims everything at process exit.
}

void* CachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  // Reuse a cached block no more than 25% larger than asked, so big blocks are not wasted.
  auto it = free_blocks_.lower_bound(size);
  if (it != free_blocks_.end() && it->first <= size + size / 4) {
    void* p = it->second;
    stats_.bytes_cached -= it->first;
    stats_.bytes_in_use += it->first;
    free_blocks_.erase(it);
    return p;
  }
  DeviceGuard guard(device_index_);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error before retrying
    release_cached_locked();
    err = cudaMalloc(&p, size);
  }
  TESSERA_CHECK(err == cudaSuccess, "cuda allocator: cudaMalloc of ", size,
                " bytes on cuda:", device_index_, " failed (", cudaGetErrorString(err),
                "); in use ", stats_.bytes_in_use, " bytes");
  ++stats_.device_mallocs;
  stats_.bytes_in_use += size;
  block_sizes_[p] = size;
  return p;
}

void CachingAllocator::deallocate(void* ptr, size_t) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = block_sizes_.find(ptr);
  TESSERA_CHECK(it != block_sizes_.end(), "cuda allocator: freeing a pointer it did not allocate");
  stats_.bytes_in_use -= it->second;
  stats_.bytes_cached += it->second;
  free_blocks_.emplace(it->second, ptr);
}

CachingAllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  DeviceGuard guard(device_index_);
  for (auto& [size, p] : free_blocks_) {
    cudaFree(p);
    block_sizes_.erase(p);
  }
  free_blocks_.clear();
  stats_.bytes_cached = 0;
}

}  // namespace tessera::cuda
