// Adapters for ops/tokens.h: check dtypes, shapes and devices, then dispatch.
#include "ops/tokens.h"

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/tokens.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/tokens.cuh"
#endif

namespace tessera::ops {
void copy_tokens(const Tensor& src, int64_t src_begin, const Tensor& dst, int64_t dst_begin,
                 int64_t count) {
  TESSERA_PROFILE("tokens");
  OpCheck c("copy_tokens");
  c.tensor_ndim("src", src, src.dtype(), 3);
  const int64_t B = src.dim(0), ts = src.dim(1), C = src.dim(2);
  c.tensor_ndim("dst", dst, src.dtype(), 3);  // bytes are moved: any dtype, the same for both
  const size_t elem = dtype_size(src.dtype());
  c.expect(dst.dim(0) == B && dst.dim(2) == C,
           absl::StrCat("dst ", dst.describe(), " must match src ", src.describe(),
                        " in batch and channels"));
  c.expect(count >= 0 && src_begin >= 0 && src_begin + count <= ts && dst_begin >= 0 &&
               dst_begin + count <= dst.dim(1),
           absl::StrCat("rows [", src_begin, ", ", src_begin + count, ") of src ", src.describe(),
                        " -> [", dst_begin, ", ", dst_begin + count, ") of dst ", dst.describe(),
                        " out of range"));
  if (c.device().is_cpu()) {
    cpu::copy_tokens(src.raw_data(), ts, src_begin, dst.raw_data(), dst.dim(1), dst_begin, B, count,
                     C, elem);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::copy_tokens(src.raw_data(), ts, src_begin, dst.raw_data(), dst.dim(1), dst_begin,
                             B, count, C, elem, stream_for(c)));
  }
}

}  // namespace tessera::ops
