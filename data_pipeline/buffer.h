#pragma once
// Vectors whose resize() leaves new elements uninitialised: image buffers are always overwritten
// right after they grow (by a chunk read, a memcpy, a transform), and zero-filling megabytes
// first was a measured share of the loader's time (perf on bench_loader).

#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace tessera::data {

template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}

  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0) {
      ::new (static_cast<void*>(p)) U;  // default-init: no zeroing for scalars
    } else {
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
  }
};

using ByteBuffer = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;
using FloatBuffer = std::vector<float, DefaultInitAllocator<float>>;

}  // namespace tessera::data
