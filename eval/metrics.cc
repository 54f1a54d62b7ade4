#include "eval/metrics.h"

#include <cmath>

#include "core/error.h"

namespace tessera::eval {

int64_t rank_of(std::span<const float> scores, int64_t right) {
  const float s = scores[right];
  int64_t ahead = 0;
  for (size_t j = 0; j < scores.size(); ++j) ahead += int64_t(j) != right && scores[j] >= s;
  return ahead;
}

void add_topk(std::span<const float> scores, std::span<const int32_t> labels, int64_t classes,
              TopK& acc) {
  const int64_t n = int64_t(labels.size());
  TESSERA_CHECK(int64_t(scores.size()) == n * classes, "add_topk: scores (", scores.size(),
                ") is not labels (", n, ") x classes (", classes, ")");
  for (int64_t i = 0; i < n; ++i) {
    TESSERA_CHECK(labels[i] >= 0 && labels[i] < classes, "add_topk: label ", labels[i],
                  " of sample ", i, " is outside [0, ", classes, ")");
    const int64_t r = rank_of(scores.subspan(i * classes, classes), labels[i]);
    acc.correct1 += r < 1;
    acc.correct5 += r < 5;
  }
  acc.n += n;
}

std::vector<float> similarity(std::span<const float> a, std::span<const float> b, int64_t dim) {
  const int64_t n = int64_t(a.size()) / dim, m = int64_t(b.size()) / dim;
  std::vector<float> out(size_t(n * m));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double s = 0;
      for (int64_t e = 0; e < dim; ++e) s += double(a[i * dim + e]) * b[j * dim + e];
      out[i * m + j] = float(s);
    }
  }
  return out;
}

std::vector<float> class_embeddings(std::span<const float> prompts, int64_t classes,
                                    int64_t templates, int64_t dim) {
  TESSERA_CHECK(int64_t(prompts.size()) == classes * templates * dim,
                "class_embeddings: prompt embeddings (", prompts.size(), ") are not classes (",
                classes, ") x templates (", templates, ") x dim (", dim, ")");
  std::vector<float> out(size_t(classes * dim));
  for (int64_t k = 0; k < classes; ++k) {
    std::vector<double> mean(dim, 0.0);
    for (int64_t t = 0; t < templates; ++t)
      for (int64_t e = 0; e < dim; ++e) mean[e] += prompts[(k * templates + t) * dim + e];
    double norm = 0;
    for (double v : mean) norm += v * v;
    norm = std::sqrt(norm);
    for (int64_t e = 0; e < dim; ++e) out[k * dim + e] = float(norm > 0 ? mean[e] / norm : 0);
  }
  return out;
}

namespace {

Recall recall(const std::vector<float>& sim, int64_t n, bool transpose) {
  Recall r;
  std::vector<float> row(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) row[j] = transpose ? sim[j * n + i] : sim[i * n + j];
    const int64_t rank = rank_of(row, i);
    r.at1 += rank < 1;
    r.at5 += rank < 5;
    r.at10 += rank < 10;
  }
  if (n > 0) r.at1 /= n, r.at5 /= n, r.at10 /= n;
  return r;
}

}  // namespace

Retrieval retrieval_recall(std::span<const float> image, std::span<const float> text, int64_t dim) {
  TESSERA_CHECK(image.size() == text.size(), "retrieval_recall: ", image.size() / dim,
                " images but ", text.size() / dim, " texts");
  const int64_t n = int64_t(image.size()) / dim;
  const std::vector<float> sim = similarity(image, text, dim);  // (N images, N texts)
  return {recall(sim, n, false), recall(sim, n, true)};
}

}  // namespace tessera::eval
