// Device memory operations for a build without CUDA: only the CPU exists.
#include <cstring>

#include "core/allocator.h"
#include "core/device_memory.h"
#include "core/error.h"
#include "core/upload.h"

namespace tessera {

int cuda_device_count() {
  return 0;
}
bool cuda_compiled() {
  return false;
}
void make_current(Device device) {
  TESSERA_CHECK(device.is_cpu(), "make_current: ", device.str(),
                " requested but this build has no CUDA support");
}

namespace detail {

void device_memcpy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  TESSERA_CHECK(dst_device.is_cpu() && src_device.is_cpu(),
                "copy: this build has no CUDA support (", src_device.str(), " -> ",
                dst_device.str(), ")");
  if (bytes) std::memcpy(dst, src, bytes);
}

void device_memset_zero(void* dst, Device device, size_t bytes) {
  TESSERA_CHECK(device.is_cpu(), "zero_: this build has no CUDA support (", device.str(), ")");
  if (bytes) std::memset(dst, 0, bytes);
}

Allocator& cuda_allocator(int index) {
  throw_error(absl::StrCat("allocator: cuda:", index,
                           " requested but this build has no CUDA "
                           "support (configure with TESSERA_CUDA=ON)"));
}

std::unique_ptr<UploadEngine> make_upload_engine(Device device) {
  throw_error(absl::StrCat("upload: ", device.str(),
                           " requested but this build has no CUDA support (configure with "
                           "TESSERA_CUDA=ON)"));
}

}  // namespace detail
}  // namespace tessera
