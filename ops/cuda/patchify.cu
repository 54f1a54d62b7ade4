// CUDA kernel for ops/patchify.h: a permutation, one thread per image element (coalesced on the
// image side; on the patch side runs of p*c floats are contiguous, as in ops/cpu/patchify.cc).
#include "ops/cuda/launch.cuh"
#include "ops/cuda/patchify.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void patchify_kernel(float* images, float* patches, int64_t h, int64_t w, int64_t c,
                                int64_t p, bool to_patches, int64_t n) {
  const int64_t gh = h / p, gw = w / p, token = p * p * c;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ch = e % c, x = (e / c) % w, y = (e / (c * w)) % h, s = e / (c * w * h);
    const int64_t patch = s * gh * gw + (y / p) * gw + x / p;
    const int64_t k = patch * token + ((y % p) * p + x % p) * c + ch;
    if (to_patches)
      patches[k] = images[e];
    else
      images[e] = patches[k];
  }
}

}  // namespace

void patchify(const float* images, const float* patches, int64_t b, int64_t h, int64_t w, int64_t c,
              int64_t p, bool to_patches, cudaStream_t stream) {
  const int64_t n = b * h * w * c;
  if (n == 0 || p == 0) return;
  patchify_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(
      const_cast<float*>(images), const_cast<float*>(patches), h, w, c, p, to_patches, n);
  check_launch("patchify");
}

}  // namespace tessera::ops::cuda
