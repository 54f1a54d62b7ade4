#pragma once
// Evaluation of the classifier, language and diffusion families (CLIP: eval/clip_eval.h). Each
// reads n samples through a BatchFn in batches and returns its metrics as JSON.
//   ViT: top1, top5 (ties count against the sample, eval/metrics.h), loss, chance_top1.
//   GPT: val_loss (mean next-token cross-entropy over all target tokens) and perplexity
//        = exp(val_loss).
//   DiT: val_loss (the training objective, label drop included) overall and per timestep
//        bucket: the diffusion steps cut into `buckets` equal ranges, every sample scored once
//        in each at a timestep spread over the range; keys loss_t<lo>_<hi> (inclusive).

#include "eval/clip_eval.h"
#include "models/dit.h"
#include "models/vit.h"

namespace tessera::eval {

nlohmann::json evaluate_vit(models::Vit& vit, const BatchFn& data, int64_t n, int64_t batch);
nlohmann::json evaluate_gpt(models::Model& gpt, const BatchFn& data, int64_t n, int64_t batch);
nlohmann::json evaluate_dit(models::Dit& dit, const BatchFn& data, int64_t n, int64_t batch,
                            int buckets, int diffusion_steps);

}  // namespace tessera::eval
