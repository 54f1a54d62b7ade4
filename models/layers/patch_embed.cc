#include "models/layers/patch_embed.h"

#include "ops/patchify.h"

namespace tessera::models {

PatchEmbed::PatchEmbed(ParamStore& store, const std::string& name, int64_t patch, int64_t channels,
                       int64_t dim, Init init)
    : patch_(patch),
      channels_(channels),
      proj_(store, name + ".proj", patch * patch * channels, dim, /*bias=*/true, init) {}

Tensor PatchEmbed::forward(const Tensor& images) {
  TESSERA_CHECK(images.ndim() == 4 && images.dtype() == DType::f32,
                "PatchEmbed: images must be (B, H, W, C) f32, got ", images.describe());
  const int64_t B = images.dim(0), H = images.dim(1), W = images.dim(2), C = images.dim(3);
  TESSERA_CHECK(C == channels_, "PatchEmbed: images ", images.describe(), " have ", C,
                " channels, the model expects ", channels_, " (channels last: (B, H, W, C))");
  TESSERA_CHECK(H % patch_ == 0 && W % patch_ == 0, "PatchEmbed: images ", images.describe(),
                ": height ", H, " and width ", W, " must be divisible by the patch ", patch_);
  const int64_t n = (H / patch_) * (W / patch_);
  Tensor patches = Tensor::empty({B, n, patch_ * patch_ * C}, DType::f32, images.device());
  ops::patchify(images, patches, patch_);
  return proj_.forward(patches);  // (B, n, dim); proj_ keeps the patches for its backward
}

void PatchEmbed::backward(const Tensor& dy) {
  proj_.backward(dy, /*need_dx=*/false);
}

}  // namespace tessera::models
