// The CUDA half of core/upload.h: device buffer slots, pinned staging, a copy stream, events.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
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

// Staging slots beyond this many make the oldest copy finish first: a bound on pinned memory that
// a trainer (a few tensors per micro-batch, one micro-batch ahead) never reaches.
constexpr size_t kMaxStaging = 16;

// A batch's device buffers. kFree: may be copied into once `consumed` (if recorded) has passed
// on the device; kPending: copies started, not yet handed out; kInUse: handed out by ready().
struct BatchSlot {
  enum State { kFree, kPending, kInUse } state = kFree;
  TensorMap buffers;  // by batch tensor name, each at least as large as the last upload
  cudaEvent_t copied = nullptr, consumed = nullptr;
  bool consumed_recorded = false;
};

// Batches in flight at once: the one computing, the one uploading, and one being released.
constexpr int kSlots = 3;

class CudaUploadEngine final : public UploadEngine {
 public:
  explicit CudaUploadEngine(int device) : device_(device) {
    cuda::check(cudaSetDevice(device_), "upload: cudaSetDevice");
    cuda::check(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking),
                "upload: cudaStreamCreate");
    cuda::check(cudaEventCreateWithFlags(&compute_mark_, cudaEventDisableTiming),
                "upload: cudaEventCreate");
    for (BatchSlot& s : slots_) {
      cuda::check(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming),
                  "upload: cudaEventCreate");
      cuda::check(cudaEventCreateWithFlags(&s.consumed, cudaEventDisableTiming),
                  "upload: cudaEventCreate");
    }
    staging_.reserve(kMaxStaging);
  }

  ~CudaUploadEngine() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(copy_stream_);
    for (StagingSlot& s : staging_) {
      cudaFreeHost(s.host);
      cudaEventDestroy(s.copied);
    }
    for (BatchSlot& s : slots_) {
      cudaEventDestroy(s.copied);
      cudaEventDestroy(s.consumed);
    }
    cudaEventDestroy(compute_mark_);
    cudaStreamDestroy(copy_stream_);
  }

  int start(const TensorMap& host, const std::vector<std::string>& keep, TensorMap& out) override {
    cuda::check(cudaSetDevice(device_), "upload: cudaSetDevice");
    const int index = next_slot_;
    BatchSlot& slot = slots_[index];
    TESSERA_CHECK(slot.state == BatchSlot::kFree, "upload: more than ", kSlots - 1,
                  " batches uploaded and not yet made ready (Uploader::ready)");
    next_slot_ = (next_slot_ + 1) % kSlots;
    // The slot's buffers were last read by compute work up to `consumed`.
    if (slot.consumed_recorded) {
      cuda::check(cudaStreamWaitEvent(copy_stream_, slot.consumed, 0),
                  "upload: cudaStreamWaitEvent");
    }
    bool waited_for_compute = false;
    for (const auto& [name, t] : host) {
      if (std::find(keep.begin(), keep.end(), name) != keep.end()) {
        out[name] = t;
        continue;
      }
      Tensor& buffer = slot.buffers[name];
      if (!buffer.defined() || buffer.dtype() != t.dtype() || buffer.numel() < t.numel()) {
        // A fresh block from the shared caching allocator may have been freed by the host while
        // queued kernels still read it: this copy waits for all compute issued so far (once per
        // new buffer: the first steps, or a larger batch).
        buffer = Tensor::empty(t.shape(), t.dtype(), Device::cuda(device_));
        if (!waited_for_compute) {
          cuda::check(cudaEventRecord(compute_mark_, cuda::compute_stream(device_)),
                      "upload: cudaEventRecord");
          cuda::check(cudaStreamWaitEvent(copy_stream_, compute_mark_, 0),
                      "upload: cudaStreamWaitEvent");
          waited_for_compute = true;
        }
      }
      Tensor dst = buffer.shape() == t.shape() ? buffer : buffer.flat_view(0, t.shape());
      copy_async(t, dst);
      out[name] = dst;
    }
    cuda::check(cudaEventRecord(slot.copied, copy_stream_), "upload: cudaEventRecord");
    slot.state = BatchSlot::kPending;
    return index;
  }

  void ready(int index) override {
    cuda::check(cudaSetDevice(device_), "upload: cudaSetDevice");
    BatchSlot& slot = slots_[index];
    TESSERA_CHECK(slot.state == BatchSlot::kPending, "upload: batch slot ", index,
                  " made ready twice or never uploaded");
    cudaStream_t compute = cuda::compute_stream(device_);
    // Everything issued since the previous batch was handed out used it: release it after that.
    if (in_use_ >= 0) {
      BatchSlot& previous = slots_[in_use_];
      cuda::check(cudaEventRecord(previous.consumed, compute), "upload: cudaEventRecord");
      previous.consumed_recorded = true;
      previous.state = BatchSlot::kFree;
    }
    cuda::check(cudaStreamWaitEvent(compute, slot.copied, 0), "upload: cudaStreamWaitEvent");
    slot.state = BatchSlot::kInUse;
    in_use_ = index;
  }

  int64_t staging_bytes() const override {
    int64_t total = 0;
    for (const StagingSlot& s : staging_) total += int64_t(s.capacity);
    return total;
  }

 private:
  // host -> pinned staging -> dst on the copy stream.
  void copy_async(const Tensor& host, const Tensor& dst) {
    const size_t bytes = host.nbytes();
    if (bytes == 0) return;
    StagingSlot& s = free_staging(bytes);
    std::memcpy(s.host, host.raw_data(), bytes);
    cuda::check(
        cudaMemcpyAsync(dst.raw_data(), s.host, bytes, cudaMemcpyHostToDevice, copy_stream_),
        "upload: cudaMemcpyAsync");
    cuda::check(cudaEventRecord(s.copied, copy_stream_), "upload: cudaEventRecord");
    s.in_use = true;
  }

  bool idle(const StagingSlot& s) const {
    if (!s.in_use) return true;
    const cudaError_t q = cudaEventQuery(s.copied);
    if (q == cudaErrorNotReady) return false;
    cuda::check(q, "upload: cudaEventQuery");
    return true;
  }

  // A staging slot whose last copy finished and that holds `bytes`; grows or adds one if none
  // does.
  StagingSlot& free_staging(size_t bytes) {
    StagingSlot* best = nullptr;
    for (StagingSlot& s : staging_) {
      if (s.capacity >= bytes && idle(s) && (!best || s.capacity < best->capacity)) best = &s;
    }
    if (best) return *best;
    if (staging_.size() >= kMaxStaging) {
      // Reuse the next slot round-robin, waiting for its copy, and grow it if needed.
      StagingSlot& s = staging_[next_victim_++ % staging_.size()];
      cuda::check(cudaEventSynchronize(s.copied), "upload: cudaEventSynchronize");
      if (s.capacity < bytes) grow(s, bytes);
      return s;
    }
    staging_.emplace_back();
    StagingSlot& s = staging_.back();
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
  std::array<BatchSlot, kSlots> slots_;
  int next_slot_ = 0, in_use_ = -1;
  std::vector<StagingSlot> staging_;  // reserved to kMaxStaging: references into it stay valid
  size_t next_victim_ = 0;
};

}  // namespace

std::unique_ptr<UploadEngine> make_upload_engine(Device device) {
  TESSERA_CHECK(device.is_cuda() && device.index < cuda_device_count(), "upload: ", device.str(),
                " is not a CUDA device of this machine (", cuda_device_count(), " found)");
  return std::make_unique<CudaUploadEngine>(device.index);
}

}  // namespace tessera::detail
