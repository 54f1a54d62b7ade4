#include "core/allocator.h"

#include <cstdlib>
#include <new>

#include "absl/strings/str_cat.h"
#include "core/device_memory.h"
#include "core/error.h"

namespace tessera {
namespace {

constexpr size_t kCpuAlignment = 64;

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    void* p = std::aligned_alloc(kCpuAlignment, rounded);
    TESSERA_CHECK(p != nullptr, "cpu allocator: out of memory allocating ", bytes, " bytes");
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
  Device device() const override { return Device::cpu(); }
};

}  // namespace

Allocator& allocator_for(Device device) {
  static CpuAllocator cpu;
  if (device.is_cpu()) return cpu;
  return detail::cuda_allocator(device.index);
}

}  // namespace tessera
