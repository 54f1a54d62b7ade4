// copy_tokens on the GPU: B strided blocks of count*C contiguous floats, which is exactly one
// cudaMemcpy2DAsync (rows = samples, pitch = whole sample); no kernel needed.
#include "ops/cuda/launch.cuh"
#include "ops/cuda/tokens.cuh"

namespace tessera::ops::cuda {

void copy_tokens(const float* src, int64_t ts, int64_t src_begin, float* dst, int64_t td,
                 int64_t dst_begin, int64_t B, int64_t count, int64_t C, cudaStream_t stream) {
  if (B == 0 || count == 0 || C == 0) return;
  const size_t f = sizeof(float);
  ::tessera::cuda::check(
      cudaMemcpy2DAsync(dst + dst_begin * C, size_t(td * C) * f, src + src_begin * C,
                        size_t(ts * C) * f, size_t(count * C) * f, size_t(B),
                        cudaMemcpyDeviceToDevice, stream),
      "copy_tokens: cudaMemcpy2DAsync");
}

}  // namespace tessera::ops::cuda
