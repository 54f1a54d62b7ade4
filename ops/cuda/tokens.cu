// copy_tokens on the GPU: B strided blocks of count*C contiguous elements, which is exactly one
// cudaMemcpy2DAsync (rows = samples, pitch = whole sample); no kernel needed.
#include "ops/cuda/launch.cuh"
#include "ops/cuda/tokens.cuh"

namespace tessera::ops::cuda {

void copy_tokens(const void* src, int64_t ts, int64_t src_begin, void* dst, int64_t td,
                 int64_t dst_begin, int64_t B, int64_t count, int64_t C, size_t elem,
                 cudaStream_t stream) {
  if (B == 0 || count == 0 || C == 0) return;
  ::tessera::cuda::check(
      cudaMemcpy2DAsync(static_cast<char*>(dst) + dst_begin * C * elem, size_t(td * C) * elem,
                        static_cast<const char*>(src) + src_begin * C * elem, size_t(ts * C) * elem,
                        size_t(count * C) * elem, size_t(B), cudaMemcpyDeviceToDevice, stream),
      "copy_tokens: cudaMemcpy2DAsync");
}

}  // namespace tessera::ops::cuda
