#pragma once
// Device dispatch for op adapters:
//
//   if (c.device().is_cpu()) cpu::add(...);
//   else TESSERA_CUDA_LAUNCH(c, cuda::add(..., stream_for(c)));
//
// In a CPU-only build the CUDA call is not compiled at all and the adapter reports that it has
// no kernel for the device; models never see the difference (docs/DESIGN.md decision 2).

#include "ops/check.h"

#if TESSERA_WITH_CUDA
#include "core/cuda/runtime.h"
#define TESSERA_CUDA_LAUNCH(check, call) (call)
namespace tessera::ops {
// The op's stream, with the op's device made current first: kernels launch on the calling
// thread's current device, and the cuBLASLt / cuDNN handles and workspaces are looked up by it,
// while the stream belongs to the tensor's device; a mismatch (a thread that never selected the
// device, or several devices in one process) would fail with "invalid resource handle".
inline cudaStream_t stream_for(const OpCheck& c) {
  const int device = c.device().index;
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device)
    ::tessera::cuda::check(cudaSetDevice(device), "cudaSetDevice");
  return ::tessera::cuda::compute_stream(device);
}
}  // namespace tessera::ops
#else
#define TESSERA_CUDA_LAUNCH(check, call) (check).no_kernel((check).device())
#endif
