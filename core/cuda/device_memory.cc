// Device memory operations for a CUDA build. Without a driver or GPU, cudaGetDeviceCount
// returns an error: that means "no GPU", and CPU tensors keep working.
#include "core/device_memory.h"

#include <cuda_runtime.h>

#include <cstring>
#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "core/caching_allocator.h"
#include "core/error.h"

namespace tessera {

int cuda_device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

bool cuda_compiled() {
  return true;
}

void make_current(Device device) {
  if (device.is_cpu()) return;
  const cudaError_t err = cudaSetDevice(device.index);
  TESSERA_CHECK(err == cudaSuccess, "make_current: cudaSetDevice(", device.index,
                ") failed: ", cudaGetErrorString(err));
}

namespace {

// RAII guard that makes `index` the current device and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    cudaGetDevice(&previous_);
    switched_ = previous_ != index;
    if (switched_) cudaSetDevice(index);
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(previous_);
  }

 private:
  int previous_ = 0;
  bool switched_ = false;
};

class CudaSource final : public BlockSource {
 public:
  explicit CudaSource(int index) : index_(index) {}
  void* allocate(size_t bytes) override {
    DeviceGuard guard(index_);
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();  // clear the error so the caller can retry after freeing the cache
      return nullptr;
    }
    return p;
  }
  void release(void* ptr, size_t) override {
    DeviceGuard guard(index_);
    cudaFree(ptr);
  }
  Device device() const override { return Device::cuda(index_); }

 private:
  int index_;
};

}  // namespace

namespace detail {

void device_memcpy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  // On the CUDA side's device (the source's when both are): the copy runs on that device's
  // legacy stream, which is what orders it after the device's (blocking) compute stream.
  DeviceGuard guard(src_device.is_cpu() ? dst_device.index : src_device.index);
  cudaError_t err = cudaMemcpy(dst, src, bytes, cudaMemcpyDefault);
  TESSERA_CHECK(err == cudaSuccess, "copy ", src_device.str(), " -> ", dst_device.str(), " of ",
                bytes, " bytes failed: ", cudaGetErrorString(err));
}

void device_memset_zero(void* dst, Device device, size_t bytes) {
  if (bytes == 0) return;
  if (device.is_cpu()) {
    std::memset(dst, 0, bytes);
    return;
  }
  DeviceGuard guard(device.index);  // see device_memcpy: the device's legacy stream
  cudaError_t err = cudaMemset(dst, 0, bytes);
  TESSERA_CHECK(err == cudaSuccess, "zero_ on ", device.str(),
                " failed: ", cudaGetErrorString(err));
}

Allocator& cuda_allocator(int index) {
  static std::mutex mutex;
  static std::deque<CachingAllocator> allocators;  // deque: stable addresses
  int count = cuda_device_count();
  TESSERA_CHECK(index >= 0 && index < count, "allocator: cuda:", index,
                " requested but this machine has ", count, " CUDA device(s)");
  std::lock_guard<std::mutex> lock(mutex);
  while (static_cast<int>(allocators.size()) < count) {
    // Everything is cached, rounded to 512 B below 1 MiB and to 2 MiB above.
    allocators.emplace_back(std::make_unique<CudaSource>(static_cast<int>(allocators.size())),
                            CachingPolicy{});
  }
  return allocators[index];
}

}  // namespace detail
}  // namespace tessera
