#pragma once
// ViT patch embedding as ONE matmul: a patchify copy of the channels-last images
// (B, H, W, C) -> (B, H/p * W/p, p*p*C), then Linear(p*p*C -> dim) with bias. This equals the
// usual stride-p convolution (timm's PatchEmbed) with its kernel read in (py, px, c) order.
//
// Weight layout: "<name>.proj.weight" is (dim, p*p*C) with the input features in (py, px, c)
// order (channels fastest), i.e. conv_weight (dim, C, p, p) .permute(0, 2, 3, 1).reshape(dim, -1);
// "<name>.proj.bias" is (dim). Patches are numbered row-major over the (H/p, W/p) grid.

#include <string>

#include "models/layers/linear.h"

namespace tessera::models {

class PatchEmbed {
 public:
  PatchEmbed(ParamStore& store, const std::string& name, int64_t patch, int64_t channels,
             int64_t dim, Init init);

  // images (B, H, W, C) f32 -> (B, H/p * W/p, dim). H and W must be divisible by the patch and C
  // must equal `channels`; otherwise throws tessera::Error naming the images' shape.
  Tensor forward(const Tensor& images);
  // Contract: dweight, dbias ACCUMULATE. Images take no gradient, so nothing is returned.
  void backward(const Tensor& dy);  // dy (B, n_patches, dim)
  void drop_saved() { proj_.drop_saved(); }

  int64_t patch() const { return patch_; }

 private:
  int64_t patch_, channels_;
  Linear proj_;
};

}  // namespace tessera::models
