#pragma once
// CUDA runtime helpers shared by core and the CUDA op launchers (CUDA builds only).

#include <cuda_runtime.h>

namespace tessera::cuda {

// The stream every op on `device` runs on. Created on first use, non-blocking with respect to
// other streams but ordered with the legacy default stream, so plain cudaMemcpy calls in
// core/tensor.cc see completed op results.
cudaStream_t compute_stream(int device);

// Throws tessera::Error("WHAT: <cuda error string>") unless err is cudaSuccess.
void check(cudaError_t err, const char* what);

}  // namespace tessera::cuda
