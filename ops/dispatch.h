#pragma once
// Device dispatch for op adapters:
//
//   if (c.device().is_cpu()) cpu::add(...);
//   else TESSERA_CUDA_LAUNCH(c, cuda::add(..., stream_for(c)));
//
// In a CPU-only build the CUDA call is not compiled at all and the adapter reports that it has
// no kernel for the device; models never see the difference (DESIGN.md decision 2).

#include "ops/check.h"

#if TESSERA_WITH_CUDA
#include "core/cuda/runtime.h"
#define TESSERA_CUDA_LAUNCH(check, call) (call)
namespace tessera::ops {
inline cudaStream_t stream_for(const OpCheck& c) {
  return ::tessera::cuda::compute_stream(c.device().index);
}
}  // namespace tessera::ops
#else
#define TESSERA_CUDA_LAUNCH(check, call) (check).no_kernel((check).device())
#endif
