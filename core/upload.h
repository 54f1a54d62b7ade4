#pragma once
// Uploader: input batches from host memory to the training device, overlapped with compute
// (DESIGN.md's data flow: "host batch (pinned when the device is CUDA)").
//
// On CUDA, upload() copies the host values into pinned (page-locked) staging memory, starts a
// cudaMemcpyAsync from there on the uploader's own copy stream, and makes the device's compute
// stream wait for it with an event; it returns at once. The trainer uploads micro-batch k+1
// before it launches micro-batch k, so the transfer runs while the GPU computes. Why staging:
// a copy from pageable memory is synchronous and half as fast; the loader's buffers are recycled
// by its threads, so they cannot simply be registered with the driver. The extra host memcpy is
// about 0.1 ms per MB on one core, off the GPU's critical path.
//
// Memory reuse is safe without per-tensor events: before each copy the copy stream waits for
// everything issued on the compute stream so far, so a device block the caching allocator hands
// out again (freed by the host while compute kernels may still read it) is only overwritten once
// those kernels are done. A staging slot is reused only once its copy completed (its event).
//
// On the CPU upload() returns the host tensor itself: no copy at all.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace tessera {

namespace detail {
// The device half (core/cuda/upload_engine.cc; a CPU-only build has none and throws).
class UploadEngine {
 public:
  virtual ~UploadEngine() = default;
  // Starts copying host's bytes into device tensor dst (same dtype and numel).
  virtual void start(const Tensor& host, const Tensor& dst) = 0;
  virtual int64_t staging_bytes() const = 0;  // pinned memory held
};
std::unique_ptr<UploadEngine> make_upload_engine(Device device);
}  // namespace detail

class Uploader {
 public:
  explicit Uploader(Device device);
  ~Uploader();
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  Device device() const { return device_; }
  // A tensor on device() with host's values, usable by every op issued after this call; host
  // may be reused or freed as soon as upload() returns. host: a CPU tensor.
  Tensor upload(const Tensor& host);
  // Every tensor of a batch (models::Batch), by name.
  std::map<std::string, Tensor> upload(const std::map<std::string, Tensor>& batch);

  int64_t bytes_uploaded() const { return bytes_uploaded_; }
  int64_t staging_bytes() const { return engine_ ? engine_->staging_bytes() : 0; }

 private:
  Device device_;
  std::unique_ptr<detail::UploadEngine> engine_;  // null on the CPU
  int64_t bytes_uploaded_ = 0;
};

}  // namespace tessera
