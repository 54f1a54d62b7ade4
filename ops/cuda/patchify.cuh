#pragma once
// CUDA launcher for ops/patchify.h: images (b, h, w, c) <-> patches (b, h/p * w/p, p*p*c), raw
// device pointers; to_patches picks the direction (the other side is written).

#include <cuda_runtime.h>

#include <cstdint>

namespace tessera::ops::cuda {

void patchify(const float* images, const float* patches, int64_t b, int64_t h, int64_t w, int64_t c,
              int64_t p, bool to_patches, cudaStream_t stream);

}  // namespace tessera::ops::cuda
