#pragma once
// Internals shared by nccl_communicator.cc (construction, the watcher thread) and
// nccl_collectives.cc (issuing operations). Not part of the interface.

#include <cuda_runtime.h>
#include <nccl.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/cuda/runtime.h"
#include "core/error.h"
#include "distributed/nccl_communicator.h"

namespace tessera::distributed {

namespace nccl_detail {

inline void nccl_check(ncclResult_t r, const std::string& what) {
  if (r != ncclSuccess)
    throw_error(
        absl::StrCat(what, ": ", ncclGetErrorString(r), " (", ncclGetLastError(nullptr), ")"));
}

inline ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMax:
      return ncclMax;
  }
  return ncclSum;
}

inline ncclDataType_t nccl_type(DType d) {
  return d == DType::bf16 ? ncclBfloat16 : ncclFloat32;
}

// An event that outlives the communicator if a Work handle does.
struct Event {
  cudaEvent_t e = nullptr;
  Event() { cuda::check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate"); }
  ~Event() {
    if (e) cudaEventDestroy(e);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};

}  // namespace nccl_detail

// Lets a Work handle launch its communicator's deferred point-to-point group before waiting;
// the communicator clears `flush` when it is destroyed.
struct NcclCommunicator::Flusher {
  std::mutex mu;
  std::function<void()> flush;
};

struct NcclCommunicator::Op {
  std::shared_ptr<Work> work;
  std::shared_ptr<nccl_detail::Event> start = std::make_shared<nccl_detail::Event>(),
                                      done = std::make_shared<nccl_detail::Event>();
  std::vector<Tensor> keep;  // buffers stay allocated until the operation completed
  bool started = false, collective = true;
  int64_t seq = 0, issued_ns = 0, deadline_ns = 0;
  // Deferred point to point.
  bool sending = false;
  int peer = 0;
  Tensor tensor;
};

}  // namespace tessera::distributed
