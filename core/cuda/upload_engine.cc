// The CUDA half of core/upload.h: pinned staging slots, a copy stream, events.
#include <cuda_runtime.h>

#include <cstring>
#include <vector>

#include "core/cuda/runtime.h"
#include "core/error.h"
#include "core/upload.h"

namespace tessera::detail {
namespace {

// One pinned host buffer and the event that says its last copy has completed.
struct StagingSlot {
  void* host = nullptr;
  size_t capacity = 0;
  cudaEvent_t copied = nullptr;
  bool in_use = false;  // a copy was started from it (the event is meaningful)
};

// Slots beyond this many make the oldest copy finish first: a bound on pinned memory that a
// trainer (a few tensors per micro-batch, one micro-batch ahead) never reaches.
constexpr size_t kMaxSlots = 16;

class CudaUploadEngine final : public UploadEngine {
 public:
  explicit CudaUploadEngine(int device) : device_(device) {
    cuda::check(cudaSetDevice(device_), "upload: cudaSetDevice");
    cuda::check(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking),
                "upload: cudaStreamCreate");
    cuda::check(cudaEventCreateWithFlags(&compute_mark_, cudaEventDisableTiming),
                "upload: cudaEventCreate");
    slots_.reserve(kMaxSlots);
  }

  ~CudaUploadEngine() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(copy_stream_);
    for (StagingSlot& s : slots_) {
      cudaFreeHost(s.host);
      cudaEventDestroy(s.copied);
    }
    cudaEventDestroy(compute_mark_);
    cudaStreamDestroy(copy_stream_);
  }

  void start(const Tensor& host, const Tensor& dst) override {
    TESSERA_CHECK(host.dtype() == dst.dtype() && host.numel() == dst.numel(),
                  "upload: ", host.describe(), " into ", dst.describe());
    const size_t bytes = host.nbytes();
    if (bytes == 0) return;
    cuda::check(cudaSetDevice(device_), "upload: cudaSetDevice");
    StagingSlot& slot = free_slot(bytes);
    std::memcpy(slot.host, host.raw_data(), bytes);
    cudaStream_t compute = cuda::compute_stream(device_);
    // The copy may overwrite a block freed by the host while earlier kernels still read it:
    // it waits for all compute work issued so far (see the header).
    cuda::check(cudaEventRecord(compute_mark_, compute), "upload: cudaEventRecord");
    cuda::check(cudaStreamWaitEvent(copy_stream_, compute_mark_, 0), "upload: cudaStreamWaitEvent");
    cuda::check(
        cudaMemcpyAsync(dst.raw_data(), slot.host, bytes, cudaMemcpyHostToDevice, copy_stream_),
        "upload: cudaMemcpyAsync");
    cuda::check(cudaEventRecord(slot.copied, copy_stream_), "upload: cudaEventRecord");
    slot.in_use = true;
    // Every op issued from now on sees the values.
    cuda::check(cudaStreamWaitEvent(compute, slot.copied, 0), "upload: cudaStreamWaitEvent");
  }

  int64_t staging_bytes() const override {
    int64_t total = 0;
    for (const StagingSlot& s : slots_) total += int64_t(s.capacity);
    return total;
  }

 private:
  bool idle(const StagingSlot& s) const {
    if (!s.in_use) return true;
    const cudaError_t q = cudaEventQuery(s.copied);
    if (q == cudaErrorNotReady) return false;
    cuda::check(q, "upload: cudaEventQuery");
    return true;
  }

  // A slot whose last copy finished and that holds `bytes`; grows or adds one if none does.
  StagingSlot& free_slot(size_t bytes) {
    StagingSlot* best = nullptr;
    for (StagingSlot& s : slots_) {
      if (s.capacity >= bytes && idle(s) && (!best || s.capacity < best->capacity)) best = &s;
    }
    if (best) return *best;
    if (slots_.size() >= kMaxSlots) {
      // Reuse the next slot round-robin, waiting for its copy, and grow it if needed.
      StagingSlot& s = slots_[next_victim_++ % slots_.size()];
      cuda::check(cudaEventSynchronize(s.copied), "upload: cudaEventSynchronize");
      if (s.capacity < bytes) grow(s, bytes);
      return s;
    }
    slots_.emplace_back();
    StagingSlot& s = slots_.back();
    cuda::check(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming),
                "upload: cudaEventCreate");
    grow(s, bytes);
    return s;
  }

  void grow(StagingSlot& s, size_t bytes) {
    if (s.host) cuda::check(cudaFreeHost(s.host), "upload: cudaFreeHost");
    s.host = nullptr;
    s.capacity = 0;
    // Round up so that batches of slightly different sizes (a last, shorter batch) share slots.
    const size_t rounded = (bytes + (1 << 20) - 1) & ~size_t((1 << 20) - 1);
    cuda::check(cudaHostAlloc(&s.host, rounded, cudaHostAllocDefault),
                "upload: cudaHostAlloc of pinned staging memory");
    s.capacity = rounded;
    s.in_use = false;
  }

  int device_;
  cudaStream_t copy_stream_ = nullptr;
  cudaEvent_t compute_mark_ = nullptr;
  std::vector<StagingSlot> slots_;  // reserved to kMaxSlots: references into it stay valid
  size_t next_victim_ = 0;
};

}  // namespace

std::unique_ptr<UploadEngine> make_upload_engine(Device device) {
  TESSERA_CHECK(device.is_cuda() && device.index < cuda_device_count(), "upload: ", device.str(),
                " is not a CUDA device of this machine (", cuda_device_count(), " found)");
  return std::make_unique<CudaUploadEngine>(device.index);
}

}  // namespace tessera::detail
