#include "core/allocator.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/caching_allocator.h"
#include "core/device_memory.h"

namespace tessera {
namespace {

constexpr size_t kCpuAlignment = 64;

class SystemSource final : public BlockSource {
 public:
  void* allocate(size_t bytes) override {
    size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    return std::aligned_alloc(kCpuAlignment, rounded);
  }
  void release(void* ptr, size_t) override { std::free(ptr); }
  Device device() const override { return Device::cpu(); }
};

// Blocks of 1 MiB and more are cached (rounded to 64 KiB); smaller ones go straight to malloc,
// whose own free lists serve them well. TESSERA_CPU_CACHE=0 turns the cache off.
CachingPolicy cpu_policy() {
  CachingPolicy p;
  const char* env = std::getenv("TESSERA_CPU_CACHE");
  p.min_cached_bytes = env != nullptr && std::strcmp(env, "0") == 0 ? SIZE_MAX : size_t(1) << 20;
  p.small_unit = kCpuAlignment;
  p.large_threshold = size_t(1) << 20;
  p.large_unit = size_t(64) << 10;
  return p;
}

}  // namespace

Allocator& allocator_for(Device device) {
  static CachingAllocator cpu(std::make_unique<SystemSource>(), cpu_policy());
  if (device.is_cpu()) return cpu;
  return detail::cuda_allocator(device.index);
}

}  // namespace tessera
