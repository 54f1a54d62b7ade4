// The models' training losses with label smoothing and mixed labels (models/vit.h, models/gpt.h):
// forward_backward's loss equals the soft-target cross-entropy of the model's own logits computed
// here in double, the gradient of the smoothed loss differs from the plain one, and forward_loss
// (evaluation) stays the plain cross-entropy.
#include <gtest/gtest.h>

#include <cmath>

#include "models/gpt.h"
#include "models/vit.h"
#include "tests/support/compare.h"
#include "tests/support/inputs.h"

namespace tessera::models {
namespace {

// Mean over rows of lse - sum_j y_j x_j, y = (1 - eps)(w e_a + (1 - w) e_b) + eps / V.
double soft_ce(const float* logits, int64_t n, int64_t V, const int32_t* a, const int32_t* b,
               const float* w, double eps) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* x = logits + i * V;
    double m = x[0], s = 0, sum = 0;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, double(x[j]));
    for (int64_t j = 0; j < V; ++j) s += std::exp(x[j] - m), sum += x[j];
    const double wi = w ? w[i] : 1.0;
    const double hard = wi * x[a[i]] + (1 - wi) * x[b ? b[i] : a[i]];
    total += m + std::log(s) - ((1 - eps) * hard + eps / V * sum);
  }
  return total / n;
}

config::VitConfig tiny_vit() {
  config::VitConfig c;
  c.set_image_size(8);
  c.set_channels(3);
  c.set_patch(4);
  c.set_n_classes(10);
  c.mutable_transformer()->set_d_model(16);
  c.mutable_transformer()->set_n_layers(1);
  c.mutable_transformer()->set_n_heads(2);
  c.mutable_transformer()->set_mlp_ratio(2);
  return c;
}

TEST(SoftTargets, VitMixedAndSmoothedLoss) {
  Vit vit(tiny_vit(), false);
  vit.params().init(3);
  const int64_t B = 6;
  Tensor labels = Tensor::empty({B}, DType::i32), mix = Tensor::empty({B}, DType::i32);
  for (int64_t i = 0; i < B; ++i) {
    labels.data<int32_t>()[i] = int32_t(i % 10);
    mix.data<int32_t>()[i] = int32_t((i * 3 + 1) % 10);
  }
  Tensor weight = testing::uniform({B}, 4, 0.0f, 1.0f);
  const Batch plain = {{"images", testing::normal({B, 8, 8, 3}, 5)}, {"labels", labels}};
  Batch mixed = plain;
  mixed["labels_mix"] = mix;
  mixed["label_weight"] = weight;
  const Tensor logits = vit.forward_logits(plain.at("images"));
  const double eps = 0.1;
  const double want = soft_ce(logits.data<float>(), B, 10, labels.data<int32_t>(),
                              mix.data<int32_t>(), weight.data<float>(), eps);
  const double want_plain =
      soft_ce(logits.data<float>(), B, 10, labels.data<int32_t>(), nullptr, nullptr, 0);
  vit.set_label_smoothing(float(eps));
  vit.params().zero_grads();
  EXPECT_NEAR(vit.forward_backward(mixed, 1.0f).loss, want, 1e-5 * want);
  Tensor soft_grads = Tensor::empty({vit.params().numel()}, DType::f32);
  copy(vit.params().grads(), soft_grads);
  // Evaluation scores the plain labels, whatever the smoothing.
  EXPECT_NEAR(vit.forward_loss(mixed).loss, want_plain, 1e-5 * want_plain);
  vit.set_label_smoothing(0);
  vit.params().zero_grads();
  EXPECT_NEAR(vit.forward_backward(plain, 1.0f).loss, want_plain, 1e-5 * want_plain);
  EXPECT_GT(testing::diff(soft_grads, vit.params().grads()).relative(), 1e-3);
}

TEST(SoftTargets, VitRefusesHalfAMix) {
  Vit vit(tiny_vit(), false);
  vit.params().init(3);
  Tensor labels = Tensor::zeros({2}, DType::i32);
  Batch batch = {
      {"images", testing::normal({2, 8, 8, 3}, 5)}, {"labels", labels}, {"labels_mix", labels}};
  EXPECT_THROW(vit.forward_backward(batch, 1.0f), Error);
}

TEST(SoftTargets, GptSmoothedLossIgnoresPaddedVocabulary) {
  config::GptConfig c;
  c.set_vocab_size(37);
  c.set_vocab_pad_multiple(8);  // 40 rows, 3 of padding that must take no share of eps
  c.set_context(8);
  c.set_tie_embedding(true);
  c.mutable_transformer()->set_d_model(16);
  c.mutable_transformer()->set_n_layers(1);
  c.mutable_transformer()->set_n_heads(2);
  c.mutable_transformer()->set_mlp_ratio(2);
  Gpt gpt(c, false);
  gpt.params().init(2);
  const int64_t B = 2, T = 8, V = 37, Vp = 40;
  Tensor tokens = Tensor::empty({B, T}, DType::i32), targets = Tensor::empty({B, T}, DType::i32);
  for (int64_t i = 0; i < B * T; ++i) {
    tokens.data<int32_t>()[i] = int32_t((i * 5) % V);
    targets.data<int32_t>()[i] = int32_t((i * 7 + 2) % V);
  }
  const Tensor logits = gpt.forward_logits(tokens);  // (B, T, Vp)
  Tensor real = Tensor::empty({B * T, V}, DType::f32);
  for (int64_t i = 0; i < B * T; ++i)
    for (int64_t j = 0; j < V; ++j)
      real.data<float>()[i * V + j] = logits.data<float>()[i * Vp + j];
  const double eps = 0.2;
  const double want =
      soft_ce(real.data<float>(), B * T, V, targets.data<int32_t>(), nullptr, nullptr, eps);
  gpt.set_label_smoothing(float(eps));
  gpt.params().zero_grads();
  EXPECT_NEAR(gpt.forward_backward({{"tokens", tokens}, {"targets", targets}}, 1.0f).loss, want,
              1e-5 * want);
}

}  // namespace
}  // namespace tessera::models
