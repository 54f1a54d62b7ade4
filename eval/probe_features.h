#pragma once
// The features a linear probe (eval/linear_probe.h) is fitted on: the image tower's pooled
// output (the class token after the final LayerNorm), before any head or projection, for ViT
// classifiers (Vit::features) and CLIP/SigLIP image towers (Clip::image_features) alike, so
// that a tower keeps its probe score when it moves between the two (init.*).

#include <cstdint>

#include "eval/linear_probe.h"
#include "eval/model_eval.h"
#include "models/model.h"

namespace tessera::eval {

// Features and labels of samples [0, n) in batches of `batch`. Throws tessera::Error when the
// model has no image tower or the batches have no "labels".
ProbeData probe_features(models::Model& model, const BatchFn& data, int64_t n, int64_t batch);

}  // namespace tessera::eval
