#include "eval/probe_features.h"

#include <algorithm>

#include "core/error.h"
#include "models/clip.h"
#include "models/vit.h"

namespace tessera::eval {

ProbeData probe_features(models::Model& model, const BatchFn& data, int64_t n, int64_t batch) {
  auto* vit = dynamic_cast<models::Vit*>(&model);
  auto* clip = dynamic_cast<models::Clip*>(&model);
  TESSERA_CHECK(vit || clip, "linear probe: the model has no image tower (ViT or CLIP only)");
  ProbeData out;
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t count = std::min(batch, n - first);
    const models::Batch b = data(first, count);
    TESSERA_CHECK(b.count("labels"), "linear probe: the split has no labels");
    const Tensor& images = b.at("images");
    Tensor f = vit ? vit->features(images) : clip->image_features(images);  // (count, d)
    if (!f.device().is_cpu()) f = to_device(f, Device::cpu());
    const Tensor labels = to_device(b.at("labels"), Device::cpu());
    out.dim = f.dim(1);
    out.x.insert(out.x.end(), f.data<float>(), f.data<float>() + f.numel());
    out.y.insert(out.y.end(), labels.data<int32_t>(), labels.data<int32_t>() + count);
    out.n += count;
  }
  return out;
}

}  // namespace tessera::eval
