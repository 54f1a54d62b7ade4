// CUDA kernel for ops/dropout.h: one thread per group of 4 elements of a row (one Philox block),
// the same masks as the CPU (core/philox.h is host and device code).
#include "core/philox.h"
#include "ops/cuda/dropout.cuh"
#include "ops/cuda/launch.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void keyed_dropout_kernel(const float* x, float* out, int64_t rows, int64_t n,
                                     int64_t blocks, float p, float path_p, uint64_t seed,
                                     uint64_t stream, int64_t first) {
  const float scale = 1.0f / (1.0f - p), path_scale = 1.0f / (1.0f - path_p);
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < rows * blocks;
       g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = g / blocks, k = g % blocks;
    const uint64_t pos = uint64_t(first + b);
    float row = path_scale;
    if (path_p > 0.0f) {
      const Philox4x32 r = philox_block(seed, stream ^ kDropPathStream, pos);
      if (philox_uniform(r.v[0]) < path_p) row = 0.0f;
    }
    const Philox4x32 r = philox_block(seed, stream, pos * blocks + k);
    for (int l = 0; l < 4 && 4 * k + l < n; ++l) {
      const int64_t j = b * n + 4 * k + l;
      const bool keep = p == 0.0f || philox_uniform(r.v[l]) >= p;
      out[j] = keep ? x[j] * (p == 0.0f ? 1.0f : scale) * row : 0.0f;
    }
  }
}

}  // namespace

void keyed_dropout(const float* x, float* out, int64_t rows, int64_t n, float p, float path_p,
                   const DropoutKey& key, cudaStream_t stream) {
  const int64_t blocks = (n + 3) / 4;
  if (rows * blocks == 0) return;
  keyed_dropout_kernel<<<grid_for(rows * blocks, kBlock), kBlock, 0, stream>>>(
      x, out, rows, n, blocks, p, path_p, key.seed, key.stream, key.first);
  check_launch("keyed_dropout");
}

}  // namespace tessera::ops::cuda
