#include "core/cuda/runtime.h"

#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/allocator.h"
#include "core/error.h"

namespace tessera::cuda {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw_error(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

cudaStream_t compute_stream(int device) {
  static std::mutex mutex;
  static std::vector<cudaStream_t> streams;
  std::lock_guard<std::mutex> lock(mutex);
  if (streams.empty()) streams.resize(static_cast<size_t>(cuda_device_count()), nullptr);
  TESSERA_CHECK(device >= 0 && device < static_cast<int>(streams.size()),
                "compute_stream: cuda:", device, " does not exist (", streams.size(), " devices)");
  if (streams[device] == nullptr) {
    int previous = 0;
    check(cudaGetDevice(&previous), "cudaGetDevice");
    check(cudaSetDevice(device), "cudaSetDevice");
    check(cudaStreamCreate(&streams[device]), "cudaStreamCreate");
    check(cudaSetDevice(previous), "cudaSetDevice");
  }
  return streams[device];
}

}  // namespace tessera::cuda
