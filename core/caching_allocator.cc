#include "core/caching_allocator.h"

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera {

CachingAllocator::CachingAllocator(std::unique_ptr<BlockSource> source, CachingPolicy policy)
    : source_(std::move(source)), policy_(policy) {}

CachingAllocator::~CachingAllocator() {
  // Allocators live for the whole process; at exit the CUDA runtime may already be gone, and
  // the operating system reclaims everything anyway, so nothing is released here.
}

size_t CachingAllocator::round_size(size_t bytes) const {
  size_t unit = bytes < policy_.large_threshold ? policy_.small_unit : policy_.large_unit;
  return (bytes + unit - 1) / unit * unit;
}

void* CachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes < policy_.min_cached_bytes) {
    void* p = source_->allocate(bytes);
    TESSERA_CHECK(p != nullptr, "allocator: out of memory allocating ", bytes, " bytes on ",
                  device().str());
    return p;
  }
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_blocks_.lower_bound(size);
  if (it != free_blocks_.end() && it->first <= size + size / 4) {
    void* p = it->second;
    stats_.bytes_cached -= it->first;
    stats_.bytes_in_use += it->first;
    free_blocks_.erase(it);
    return p;
  }
  void* p = source_->allocate(size);
  if (p == nullptr) {  // out of memory: give the cache back and try once more
    release_cached_locked();
    p = source_->allocate(size);
  }
  TESSERA_CHECK(p != nullptr, "allocator: out of memory allocating ", size, " bytes on ",
                device().str(), " (", stats_.bytes_in_use, " bytes in use)");
  ++stats_.source_allocs;
  stats_.bytes_in_use += size;
  block_sizes_[p] = size;
  return p;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) {
  if (ptr == nullptr) return;
  if (bytes < policy_.min_cached_bytes) {
    source_->release(ptr, bytes);
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = block_sizes_.find(ptr);
  TESSERA_CHECK(it != block_sizes_.end(), "allocator: freeing a pointer it did not allocate");
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
  for (auto& [size, p] : free_blocks_) {
    source_->release(p, size);
    block_sizes_.erase(p);
  }
  free_blocks_.clear();
  stats_.bytes_cached = 0;
}

}  // namespace tessera
