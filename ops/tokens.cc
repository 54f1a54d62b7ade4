// Adapters for ops/tokens.h: check dtypes, shapes and devices, then dispatch.
#include "ops/tokens.h"

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/tokens.h"

namespace tessera::ops {
namespace {

// Checks images against the patch rows of patchify/unpatchify.
void check_patches(const OpCheck& c, const Tensor& images, int64_t p, const Tensor& patches) {
  c.tensor_ndim("images", images, DType::f32, 4);
  const int64_t B = images.dim(0), H = images.dim(1), W = images.dim(2), C = images.dim(3);
  c.expect(p >= 1, absl::StrCat("patch must be >= 1, got ", p));
  c.expect(H % p == 0 && W % p == 0,
           absl::StrCat("images ", images.describe(),
                        ": height and width must be divisible by the patch ", p));
  c.tensor("patches", patches, DType::f32, {B, (H / p) * (W / p), p * p * C});
}

}  // namespace

void patchify(const Tensor& images, int64_t patch, const Tensor& out) {
  TESSERA_PROFILE("tokens");
  OpCheck c("patchify");
  check_patches(c, images, patch, out);
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::patch_copy(images.data<float>(), out.data<float>(), images.dim(0), images.dim(1),
                  images.dim(2), images.dim(3), patch, /*to_patches=*/true);
}

void unpatchify(const Tensor& patches, int64_t patch, const Tensor& images) {
  TESSERA_PROFILE("tokens");
  OpCheck c("unpatchify");
  check_patches(c, images, patch, patches);
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::patch_copy(images.data<float>(), patches.data<float>(), images.dim(0), images.dim(1),
                  images.dim(2), images.dim(3), patch, /*to_patches=*/false);
}

void copy_tokens(const Tensor& src, int64_t src_begin, const Tensor& dst, int64_t dst_begin,
                 int64_t count) {
  TESSERA_PROFILE("tokens");
  OpCheck c("copy_tokens");
  c.tensor_ndim("src", src, DType::f32, 3);
  const int64_t B = src.dim(0), ts = src.dim(1), C = src.dim(2);
  c.tensor_ndim("dst", dst, DType::f32, 3);
  c.expect(dst.dim(0) == B && dst.dim(2) == C,
           absl::StrCat("dst ", dst.describe(), " must match src ", src.describe(),
                        " in batch and channels"));
  c.expect(count >= 0 && src_begin >= 0 && src_begin + count <= ts && dst_begin >= 0 &&
               dst_begin + count <= dst.dim(1),
           absl::StrCat("rows [", src_begin, ", ", src_begin + count, ") of src ", src.describe(),
                        " -> [", dst_begin, ", ", dst_begin + count, ") of dst ", dst.describe(),
                        " out of range"));
  if (!c.device().is_cpu()) c.no_kernel(c.device());
  cpu::copy_tokens(src.data<float>(), ts, src_begin, dst.data<float>(), dst.dim(1), dst_begin, B,
                   count, C);
}

}  // namespace tessera::ops
