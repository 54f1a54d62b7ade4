// Adapters for ops/patchify.h: check dtypes, shapes and devices, then dispatch.
#include "ops/patchify.h"

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "ops/check.h"
#include "ops/cpu/patchify.h"
#include "ops/dispatch.h"

#if TESSERA_WITH_CUDA
#include "ops/cuda/patchify.cuh"
#endif

namespace tessera::ops {
namespace {

// Checks images (B, H, W, C) against p and returns the patch tensor's shape.
Shape patch_shape(const OpCheck& c, const Tensor& images, int64_t p) {
  c.tensor_ndim("images", images, DType::f32, 4);
  const int64_t h = images.dim(1), w = images.dim(2), ch = images.dim(3);
  c.expect(
      p >= 1 && h % p == 0 && w % p == 0,
      absl::StrCat("images ", images.describe(), " do not split into ", p, " x ", p, " patches"));
  return {images.dim(0), (h / p) * (w / p), p * p * ch};
}

}  // namespace

void patchify(const Tensor& images, const Tensor& patches, int64_t p) {
  TESSERA_PROFILE("patchify");
  OpCheck c("patchify");
  c.tensor("patches", patches, DType::f32, patch_shape(c, images, p));
  if (c.device().is_cpu()) {
    cpu::patchify(images.data<float>(), patches.data<float>(), images.dim(0), images.dim(1),
                  images.dim(2), images.dim(3), p, /*to_patches=*/true);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::patchify(images.data<float>(), patches.data<float>(), images.dim(0), images.dim(1),
                          images.dim(2), images.dim(3), p, /*to_patches=*/true, stream_for(c)));
  }
}

void unpatchify(const Tensor& patches, const Tensor& images, int64_t p) {
  TESSERA_PROFILE("patchify");
  OpCheck c("unpatchify");
  c.tensor("patches", patches, DType::f32, patch_shape(c, images, p));
  if (c.device().is_cpu()) {
    cpu::patchify(images.data<float>(), patches.data<float>(), images.dim(0), images.dim(1),
                  images.dim(2), images.dim(3), p, /*to_patches=*/false);
  } else {
    TESSERA_CUDA_LAUNCH(
        c, cuda::patchify(images.data<float>(), patches.data<float>(), images.dim(0), images.dim(1),
                          images.dim(2), images.dim(3), p, /*to_patches=*/false, stream_for(c)));
  }
}

}  // namespace tessera::ops
