// Dropout and drop-path in the models (models/layers/dropout.h): keyed masks make training
// deterministic (two runs bitwise equal), activation recomputation reproduces them (gradients
// with and without model.recompute_activations agree bitwise), the batch's "position" keys them,
// and evaluation never drops anything.
#include <gtest/gtest.h>

#include <cstring>

#include "models/factory.h"
#include "models/layers/dropout.h"
#include "tests/support/compare.h"
#include "tests/support/inputs.h"

namespace tessera::models {
namespace {

config::ModelConfig gpt_config(float dropout, float drop_path, bool recompute) {
  config::ModelConfig m;
  auto* g = m.mutable_gpt();
  g->set_vocab_size(50);
  g->set_context(8);
  g->set_tie_embedding(true);
  g->mutable_transformer()->set_d_model(16);
  g->mutable_transformer()->set_n_layers(3);
  g->mutable_transformer()->set_n_heads(2);
  g->mutable_transformer()->set_mlp_ratio(2);
  m.set_dropout(dropout);
  m.set_drop_path(drop_path);
  m.set_recompute_activations(recompute);
  return m;
}

Batch gpt_batch(int64_t position) {
  const int64_t B = 4, T = 8;
  Tensor tokens = Tensor::empty({B, T}, DType::i32), targets = Tensor::empty({B, T}, DType::i32);
  for (int64_t i = 0; i < B * T; ++i) {
    tokens.data<int32_t>()[i] = int32_t((i * 7) % 50);
    targets.data<int32_t>()[i] = int32_t((i * 11 + 3) % 50);
  }
  Tensor pos = Tensor::empty({1}, DType::i64);
  pos.data<int64_t>()[0] = position;
  return {{"tokens", tokens}, {"targets", targets}, {"position", pos}};
}

struct Result {
  double loss;
  Tensor grads;
};

Result step(const config::ModelConfig& c, const Batch& batch) {
  auto model = make_model(c);
  model->params().init(5);
  model->set_seed(9);
  model->params().zero_grads();
  const double loss = model->forward_backward(batch, 1.0f).loss;
  Tensor grads = Tensor::empty({model->params().numel()}, DType::f32);
  copy(model->params().grads(), grads);
  return {loss, grads};
}

bool same(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0;
}

TEST(ModelDropout, DeterministicAndReproducedByRecomputation) {
  const Batch batch = gpt_batch(64);
  const Result a = step(gpt_config(0.2f, 0.3f, false), batch);
  const Result b = step(gpt_config(0.2f, 0.3f, false), batch);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_TRUE(same(a.grads, b.grads)) << "two runs differ";
  const Result r = step(gpt_config(0.2f, 0.3f, true), batch);
  EXPECT_EQ(a.loss, r.loss);
  EXPECT_TRUE(same(a.grads, r.grads)) << "recomputation drew other masks";
  // The masks act, and depend on the rows' position.
  const Result none = step(gpt_config(0, 0, false), batch);
  EXPECT_NE(a.loss, none.loss);
  EXPECT_GT(testing::diff(a.grads, none.grads).relative(), 1e-3);
  EXPECT_NE(step(gpt_config(0.2f, 0.3f, false), gpt_batch(68)).loss, a.loss);
}

TEST(ModelDropout, EvaluationDropsNothing) {
  const Batch batch = gpt_batch(64);
  auto with = make_model(gpt_config(0.5f, 0.5f, false));
  auto without = make_model(gpt_config(0, 0, false));
  for (Model* m : {with.get(), without.get()}) {
    m->params().init(5);
    m->set_seed(9);
  }
  // Also after a training step has run (the training mode ends with forward_backward).
  with->forward_backward(batch, 1.0f);
  EXPECT_EQ(with->forward_loss(batch).loss, without->forward_loss(batch).loss);
}

// model.attention_dropout (inside the fused attention) and model.embedding_dropout, each alone:
// two runs bitwise equal, recomputation bitwise equal gradients, the masks act and depend on
// position, and evaluation drops nothing.
config::ModelConfig gpt_with(float attention, float embedding, bool recompute) {
  config::ModelConfig m = gpt_config(0, 0, recompute);
  m.set_attention_dropout(attention);
  m.set_embedding_dropout(embedding);
  return m;
}

TEST(ModelDropout, AttentionAndEmbeddingDropoutDeterministicAndRecomputed) {
  const Batch batch = gpt_batch(64);
  const Result none = step(gpt_config(0, 0, false), batch);
  for (const auto& [attention, embedding] : {std::pair{0.3f, 0.0f}, std::pair{0.0f, 0.3f}}) {
    const std::string what =
        "attention " + std::to_string(attention) + " embedding " + std::to_string(embedding);
    const Result a = step(gpt_with(attention, embedding, false), batch);
    const Result b = step(gpt_with(attention, embedding, false), batch);
    EXPECT_EQ(a.loss, b.loss) << what;
    EXPECT_TRUE(same(a.grads, b.grads)) << what << ": two runs differ";
    const Result r = step(gpt_with(attention, embedding, true), batch);
    EXPECT_EQ(a.loss, r.loss) << what;
    EXPECT_TRUE(same(a.grads, r.grads)) << what << ": recomputation drew other masks";
    EXPECT_NE(a.loss, none.loss) << what << ": the masks do not act";
    EXPECT_GT(testing::diff(a.grads, none.grads).relative(), 1e-3) << what;
    EXPECT_NE(step(gpt_with(attention, embedding, false), gpt_batch(68)).loss, a.loss) << what;
    auto with = make_model(gpt_with(attention, embedding, false));
    auto without = make_model(gpt_config(0, 0, false));
    for (Model* m : {with.get(), without.get()}) {
      m->params().init(5);
      m->set_seed(9);
    }
    with->forward_backward(batch, 1.0f);
    EXPECT_EQ(with->forward_loss(batch).loss, without->forward_loss(batch).loss) << what;
  }
}

// The drop-path share of a branch rises linearly over the blocks (timm): 0 at the first block.
TEST(ModelDropout, DropPathRateIsLinearOverBlocks) {
  EXPECT_EQ(drop_path_rate(0.3f, 0, 4), 0.0f);
  EXPECT_FLOAT_EQ(drop_path_rate(0.3f, 2, 4), 0.2f);
  EXPECT_FLOAT_EQ(drop_path_rate(0.3f, 3, 4), 0.3f);
  EXPECT_FLOAT_EQ(drop_path_rate(0.3f, 0, 1), 0.3f);
}

}  // namespace
}  // namespace tessera::models
