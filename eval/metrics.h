#pragma once
// The arithmetic of evaluation, on host arrays (row-major), independent of any model:
// top-k accuracy, zero-shot class embeddings, retrieval recall. Ties count against the sample:
// a sample is correct at k when fewer than k OTHER candidates score at least as high as the
// right one, so a constant score (an untrained or collapsed model) scores 0, not 1.

#include <cstdint>
#include <span>
#include <vector>

namespace tessera::eval {

struct TopK {
  int64_t n = 0;
  int64_t correct1 = 0, correct5 = 0;
  double top1() const { return n ? double(correct1) / n : 0; }
  double top5() const { return n ? double(correct5) / n : 0; }
};

// The rank (0 = best) of `scores[right]` among scores (C): how many others score >= it.
int64_t rank_of(std::span<const float> scores, int64_t right);

// scores (N, C), labels (N) in [0, C): adds the N samples into `acc`.
void add_topk(std::span<const float> scores, std::span<const int32_t> labels, int64_t classes,
              TopK& acc);

// a (N, E), b (M, E) -> a b^T (N, M).
std::vector<float> similarity(std::span<const float> a, std::span<const float> b, int64_t dim);

// Zero-shot classifier weights: prompt embeddings (K * T, E), class k's T templates at rows
// [k*T, (k+1)*T), averaged over the templates and L2-normalised -> (K, E).
std::vector<float> class_embeddings(std::span<const float> prompts, int64_t classes,
                                    int64_t templates, int64_t dim);

// Recall@k of paired embeddings image (N, E), text (N, E): pair i is the right answer for query
// i. image_to_text ranks the N texts for each image; text_to_image the images for each text.
struct Recall {
  double at1 = 0, at5 = 0, at10 = 0;
};
struct Retrieval {
  Recall image_to_text, text_to_image;
};
Retrieval retrieval_recall(std::span<const float> image, std::span<const float> text, int64_t dim);

}  // namespace tessera::eval
