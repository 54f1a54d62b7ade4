#pragma once
// CLIP / SigLIP evaluation:
//  - zero-shot classification over label names: each class's prompts (the names put into
//    templates; by default "a clip art of {} ({})", the demo captions' form) are embedded by the
//    text tower, averaged over the templates and L2-normalised (CLIP's prompt ensembling); an
//    image's class is the nearest class embedding. top-1 / top-5, and chance_top1 = 1 /
//    n_classes for comparison.
//  - image -> text and text -> image retrieval recall@1/5/10 over the split's (image, caption)
//    pairs: pair i is the one right answer for query i.

#include <functional>
#include <string>
#include <vector>

#include "models/clip.h"
#include "nlohmann/json.hpp"

namespace tessera::eval {

// Samples [first, first + count) of an evaluation set as a model batch.
using BatchFn = std::function<models::Batch(int64_t first, int64_t count)>;

// Tokenised prompts: class k's templates are rows [k*T, (k+1)*T).
struct ZeroShotPrompts {
  std::vector<std::string> class_names;  // K
  int64_t templates = 0;                 // T
  int64_t context = 0;                   // L
  std::vector<int32_t> tokens;           // (K*T, L)
  std::vector<int32_t> eot;              // (K*T)
};

// The prompt templates used when none are given; "{}" stands for the class name.
const std::vector<std::string>& default_templates();
// The class names put into the templates, K*T strings in the order of ZeroShotPrompts.
std::vector<std::string> prompt_texts(const std::vector<std::string>& class_names,
                                      const std::vector<std::string>& templates);

struct ClipEmbeddings {
  int64_t n = 0, dim = 0;
  std::vector<float> image, text;  // (N, E) each, L2-normalised
  std::vector<int32_t> labels;     // (N) when the batches carry "labels"
};

// Embeds the n samples (batches of `batch`: "images", "text", "text_eot", optional "labels").
ClipEmbeddings embed_pairs(models::Clip& clip, const BatchFn& data, int64_t n, int64_t batch);
// Embeds prompt rows -> (K*T, E).
std::vector<float> embed_prompts(models::Clip& clip, const ZeroShotPrompts& prompts, int64_t batch);

// All metrics as JSON: image_to_text_r1/_r5/_r10, text_to_image_r1/_r5/_r10, n_samples and,
// with prompts and labels, zero_shot_top1/_top5, chance_top1 (1 / classes), majority_top1
// (the most frequent class's share of the split), n_classes.
nlohmann::json clip_metrics(const ClipEmbeddings& e, const std::vector<float>* prompt_embeddings,
                            const ZeroShotPrompts* prompts);

nlohmann::json evaluate_clip(models::Clip& clip, const BatchFn& data, int64_t n, int64_t batch,
                             const ZeroShotPrompts* prompts);

// A host copy of a tensor's f32 values (any device).
std::vector<float> host_floats(const Tensor& t);

}  // namespace tessera::eval
