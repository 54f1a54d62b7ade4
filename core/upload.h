#pragma once
// Uploader: input batches from host memory to the training device, overlapped with compute
// (docs/DESIGN.md's data flow: the host batch, copied through pinned memory on CUDA).
//
//   Uploader::Pending next = uploader.upload(host_batch(0));
//   for k: batch = uploader.ready(std::move(next));      // compute waits for k's copies
//          next = uploader.upload(host_batch(k + 1));    // copies run while k computes
//          model.forward_backward(batch);
//
// On CUDA, upload() copies each host tensor into pinned (page-locked) staging memory and starts a
// cudaMemcpyAsync from there on the uploader's own copy stream into device buffers the uploader
// owns (a ring of kSlots batches), then returns: nothing on the compute stream waits yet.
// ready() makes the compute stream wait for that batch's copies and hands out its tensors.
// Why staging: a copy from pageable memory is synchronous; the loader's buffers are recycled by
// its threads, so they cannot be registered with the driver. The extra host memcpy is about
// 0.1 ms per MB, off the GPU's critical path.
//
// Why own device buffers: memory from the shared caching allocator may be a block the host freed
// while queued kernels still read it (core/caching_allocator.h assumes one stream), so a copy on
// another stream must not write there. A slot's buffers are reused only after the compute work
// that used them: ready() records an event on the compute stream for the slot handed out before
// (everything issued since then used it), and the next copy into that slot waits for the event
// on the copy stream, not on the host. A staging slot is reused once its copy completed.
//
// On the CPU upload() keeps the host tensors and ready() returns them: no copy at all.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera {

using TensorMap = std::map<std::string, Tensor>;  // a batch: tensors by name (models::Batch)

namespace detail {
// The device half (core/cuda/upload_engine.cc; a CPU-only build has none and throws).
class UploadEngine {
 public:
  virtual ~UploadEngine() = default;
  // Starts copying each of `host` into the device buffers of a free slot; `keep` names tensors
  // passed through as they are. Returns the slot and the device (or kept) tensors.
  virtual int start(const TensorMap& host, const std::vector<std::string>& keep,
                    TensorMap& out) = 0;
  // Orders the compute stream after slot's copies; the slot handed out before is released to
  // reuse once the compute work issued until now completed.
  virtual void ready(int slot) = 0;
  virtual int64_t staging_bytes() const = 0;  // pinned memory held
};
std::unique_ptr<UploadEngine> make_upload_engine(Device device);
}  // namespace detail

class Uploader {
 public:
  // A batch whose copies may still run; hand it to ready() before using it.
  struct Pending {
    TensorMap tensors;
    int slot = -1;  // -1: nothing to wait for (CPU, or nothing copied)
  };

  // keep_on_host: batch tensors the model reads on the host (Model::host_inputs()): passed
  // through, never uploaded.
  explicit Uploader(Device device, std::vector<std::string> keep_on_host = {});
  ~Uploader();
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  Device device() const { return device_; }
  // Starts the copies of every tensor of `host` (CPU tensors; any may be freed or reused as soon
  // as this returns). Errors name the tensor.
  Pending upload(const TensorMap& host);
  // The batch on device(), for ops issued after this call.
  TensorMap ready(Pending pending);
  // Both at once, for a batch needed right away (evaluation).
  TensorMap upload_now(const TensorMap& host) { return ready(upload(host)); }

  int64_t bytes_uploaded() const { return bytes_uploaded_; }
  int64_t staging_bytes() const { return engine_ ? engine_->staging_bytes() : 0; }

 private:
  Device device_;
  std::vector<std::string> keep_;
  std::unique_ptr<detail::UploadEngine> engine_;  // null on the CPU
  int64_t bytes_uploaded_ = 0;
};

}  // namespace tessera
