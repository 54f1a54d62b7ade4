// Learning on fixed small data: a GPT memorises a short real text.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "models/clip.h"
#include "models/gpt.h"
#include "models/vit.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "train/synthetic_data.h"

namespace tessera::train {
namespace {

// The first sentences of the GNU General Public License preamble (a real English text that every
// Debian machine also carries in /usr/share/common-licenses).
constexpr const char* kText =
    "The GNU General Public License is a free, copyleft license for software and other kinds of "
    "works. The licenses for most software and other practical works are designed to take away "
    "your freedom to share and change the works. By contrast, the GNU General Public License is "
    "intended to guarantee your freedom to share and change all versions of a program.";

TEST(Learning, GptMemorisesAShortRealText) {
  const std::string text = kText;
  const int T = 64, B = 6;
  config::GptConfig c;
  c.set_vocab_size(256);  // bytes
  c.set_context(T);
  c.set_tie_embedding(true);
  c.mutable_transformer()->set_d_model(64);
  c.mutable_transformer()->set_n_layers(2);
  c.mutable_transformer()->set_n_heads(4);
  c.mutable_transformer()->set_mlp_ratio(4);
  models::Gpt model(c, false);
  model.params().init(1);
  config::OptimConfig o;
  o.set_lr(2e-3f);
  o.set_beta1(0.9f);
  o.set_beta2(0.99f);
  o.set_eps(1e-8f);
  o.set_weight_decay(0.0f);
  o.set_grad_clip(1.0f);
  AdamW opt(model.params(), o);

  // The text cut into B fixed windows of T+1 bytes (overlapping, so together they cover it):
  // memorising means predicting every next byte of each window from the bytes before it.
  const int stride = (static_cast<int>(text.size()) - T - 1) / (B - 1);
  double loss = 1e9;
  int step = 0;
  for (; step < 400 && loss > 0.05; ++step) {
    Tensor tokens = Tensor::empty({B, T}, DType::i32), targets = Tensor::empty({B, T}, DType::i32);
    for (int b = 0; b < B; ++b) {
      int start = b * stride;
      for (int t = 0; t < T; ++t) {
        tokens.data<int32_t>()[b * T + t] = static_cast<unsigned char>(text[start + t]);
        targets.data<int32_t>()[b * T + t] = static_cast<unsigned char>(text[start + t + 1]);
      }
    }
    model.params().zero_grads();
    loss = model.forward_backward({{"tokens", tokens}, {"targets", targets}}, 1.0f).loss;
    opt.step(2e-3);
  }
  std::printf("loss %.4f after %d steps\n", loss, step);
  EXPECT_LT(loss, 0.1);
}

}  // namespace
}  // namespace tessera::train

namespace tessera::train {
namespace {

// Trains `model` on the samples at positions [0, n) of `data` (shuffled batches of B), `steps`
// AdamW steps at a constant rate.
void fit(models::Model& model, const SyntheticData& data, int64_t n, int64_t B, int steps,
         float lr) {
  config::OptimConfig o;
  o.set_lr(lr);
  o.set_beta1(0.9f);
  o.set_beta2(0.99f);
  o.set_eps(1e-8f);
  o.set_grad_clip(1.0f);
  AdamW opt(model.params(), o);
  for (int s = 0; s < steps; ++s) {
    // Consecutive windows of the fixed sample set: every sample is seen every n / B steps.
    models::Batch batch = data.batch((int64_t(s) * B) % n, B);
    model.params().zero_grads();
    model.forward_backward(batch, 1.0f);
    opt.step(lr);
  }
}

config::Config parse(const std::string& text) {
  auto c = parse_config(text, "learning");
  TESSERA_CHECK(c.ok(), c.status().ToString());
  return *c;
}

TEST(Learning, VitFitsAFewHundredSamples) {
  config::Config c = parse(
      "model { vit { image_size: 16 channels: 3 patch: 4 n_classes: 10 transformer { d_model: 64 "
      "n_layers: 2 n_heads: 4 } } } train { seed: 5 }");
  SyntheticData data(c);
  models::Vit model(c.model().vit(), false);
  model.params().init(5);
  const int64_t n = 320, B = 32;
  fit(model, data, n, B, 150, 2e-3f);
  int64_t correct = 0;
  for (int64_t first = 0; first < n; first += B) {
    models::Batch batch = data.batch(first, B);
    Tensor logits = model.forward_logits(batch["images"]);
    for (int64_t b = 0; b < B; ++b) {
      const float* row = logits.data<float>() + b * 10;
      correct += std::max_element(row, row + 10) - row == batch["labels"].data<int32_t>()[b];
    }
  }
  std::printf("vit train accuracy %.3f\n", double(correct) / n);
  EXPECT_GT(double(correct) / n, 0.95);
}

TEST(Learning, ClipRetrievesTheRightCaption) {
  config::Config c = parse(
      "model { clip { image { image_size: 8 channels: 3 patch: 4 transformer { d_model: 48 "
      "n_layers: 2 n_heads: 4 } } text { vocab_size: 128 context: 8 transformer { d_model: 48 "
      "n_layers: 2 n_heads: 4 } } embed_dim: 32 loss: INFONCE } } train { seed: 5 }");
  SyntheticData data(c);
  models::Clip model(c.model().clip(), false);
  model.params().init(5);
  const int64_t n = 256, B = 64;
  fit(model, data, n, B, 400, 3e-3f);
  // Image -> text top-1 within each batch of 64. Captions are per class, so a retrieved caption
  // of the same class is the right caption.
  int64_t correct = 0;
  for (int64_t first = 0; first < n; first += B) {
    models::Batch batch = data.batch(first, B);
    model.forward_embeddings(batch);
    const Tensor& img = model.image_embeddings();
    const Tensor& txt = model.text_embeddings();
    const int64_t E = img.dim(1);
    for (int64_t i = 0; i < B; ++i) {
      int64_t best = 0;
      float best_sim = -1e30f;
      for (int64_t j = 0; j < B; ++j) {
        float sim = 0;
        for (int64_t e = 0; e < E; ++e)
          sim += img.data<float>()[i * E + e] * txt.data<float>()[j * E + e];
        if (sim > best_sim) best_sim = sim, best = j;
      }
      const int32_t* text = batch["text"].data<int32_t>();
      const int64_t L = batch["text"].dim(1);
      correct += std::equal(text + best * L, text + best * L + L, text + i * L);
    }
  }
  std::printf("clip retrieval top-1 %.3f\n", double(correct) / n);
  EXPECT_GT(double(correct) / n, 0.95);
}

}  // namespace
}  // namespace tessera::train
