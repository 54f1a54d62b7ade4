// A padded vocabulary (GptConfig.vocab_pad_multiple) changes nothing but the table shapes: a GPT
// with Vp > V rows equals the unpadded GPT holding the same real rows -- loss, logits of the
// real columns and every real-row gradient -- and its padded rows get exactly zero gradient,
// whatever they hold (the test fills them with noise, so a loss that let padded logits into the
// softmax, or a backward that wrote them, would fail). On every device.
#include <gtest/gtest.h>

#include <cmath>

#include "core/philox.h"
#include "models/gpt.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"

namespace tessera::models {
namespace {

constexpr int kVocab = 37;

config::GptConfig config_of(bool tied, int pad_multiple) {
  config::GptConfig c;
  c.set_vocab_size(kVocab);
  c.set_vocab_pad_multiple(pad_multiple);
  c.set_context(9);
  c.set_tie_embedding(tied);
  auto* t = c.mutable_transformer();
  t->set_d_model(16);
  t->set_n_layers(2);
  t->set_n_heads(2);
  t->set_mlp_ratio(4);
  return c;
}

Batch random_batch(int64_t B, int64_t T, uint64_t seed) {
  Tensor tokens = Tensor::empty({B, T}, DType::i32), targets = Tensor::empty({B, T}, DType::i32);
  for (int64_t i = 0; i < B * T; ++i) {
    Philox4x32 r = philox_block(seed, 0, uint64_t(i));
    tokens.data<int32_t>()[i] = int32_t(r.v[0] % kVocab);
    targets.data<int32_t>()[i] = r.v[2] % 8 == 0 ? -100 : int32_t(r.v[1] % kVocab);
  }
  return {{"tokens", tokens}, {"targets", targets}};
}

bool padded_table(const std::string& name) {
  return name == "tok_emb.weight" || name == "head.weight";
}

class GptVocabPaddingTest : public testing::DeviceTest {};

TEST_P(GptVocabPaddingTest, PaddedEqualsUnpaddedAndPaddingGetsNoGradient) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied head" : "untied head");
    Gpt plain(config_of(tied, 0), false, nullptr, device());
    Gpt padded(config_of(tied, 16), false, nullptr, device());
    ASSERT_EQ(plain.padded_vocab_size(), kVocab);
    ASSERT_EQ(padded.padded_vocab_size(), 48);  // round_up(37, 16)
    ASSERT_EQ(padded.vocab_size(), kVocab);
    plain.params().init(5);
    padded.params().init(5);

    // The same real values from init (a function of seed, name and element), zero padded rows;
    // then noise into the padded rows.
    Tensor host = testing::to_cpu_f32(padded.params().params());
    const Tensor ref_host = testing::to_cpu_f32(plain.params().params());
    for (const ParamInfo& info : padded.params().infos()) {
      const ParamInfo& ref = plain.params().info(plain.params().find(info.spec.name));
      float* p = host.data<float>() + info.offset;
      const float* r = ref_host.data<float>() + ref.offset;
      for (int64_t i = 0; i < ref.numel; ++i) ASSERT_EQ(p[i], r[i]) << info.spec.name << " " << i;
      if (!padded_table(info.spec.name)) {
        ASSERT_EQ(info.numel, ref.numel) << info.spec.name;
        continue;
      }
      EXPECT_EQ(info.spec.shape, (Shape{48, 16})) << info.spec.name;  // the checkpoint shape
      for (int64_t i = ref.numel; i < info.numel; ++i) {
        ASSERT_EQ(p[i], 0.0f) << info.spec.name << " padded element " << i << " after init";
        p[i] = 3.0f * std::sin(float(i));  // anything: padding must not matter
      }
    }
    copy(host, padded.params().params());
    padded.params().sync_compute_params();

    const Batch batch = random_batch(3, 9, 17);
    const double loss = padded.forward_backward(batch, 0.5f).loss;
    const double ref_loss = plain.forward_backward(batch, 0.5f).loss;
    EXPECT_NEAR(loss, ref_loss, 1e-6 * std::fabs(ref_loss));
    EXPECT_EQ(padded.forward_loss(batch).loss, loss);

    // Logits: the real columns agree; the padded ones are what the noise rows give (not read).
    const Tensor logits = testing::to_cpu_f32(padded.forward_logits(batch.at("tokens")));
    const Tensor ref_logits = testing::to_cpu_f32(plain.forward_logits(batch.at("tokens")));
    ASSERT_EQ(logits.dim(2), 48);
    for (int64_t row = 0; row < 27; ++row)
      for (int64_t v = 0; v < kVocab; ++v)
        EXPECT_NEAR(logits.data<float>()[row * 48 + v], ref_logits.data<float>()[row * kVocab + v],
                    1e-5)
            << "row " << row << " column " << v;

    const Tensor grads = testing::to_cpu_f32(padded.params().grads());
    const Tensor ref_grads = testing::to_cpu_f32(plain.params().grads());
    for (const ParamInfo& info : padded.params().infos()) {
      const ParamInfo& ref = plain.params().info(plain.params().find(info.spec.name));
      const float* g = grads.data<float>() + info.offset;
      const float* r = ref_grads.data<float>() + ref.offset;
      double scale = 1e-3;
      for (int64_t i = 0; i < ref.numel; ++i) scale = std::max(scale, double(std::fabs(r[i])));
      for (int64_t i = 0; i < ref.numel; ++i)
        ASSERT_NEAR(g[i], r[i], 1e-5 * scale) << "gradient of " << info.spec.name << " " << i;
      for (int64_t i = ref.numel; i < info.numel; ++i)
        ASSERT_EQ(g[i], 0.0f) << "gradient of " << info.spec.name << " padded element " << i;
    }
  }
}

// A token id in the padding [V, Vp) is refused like one past the table, naming it (it would
// otherwise select a padded row and give it a gradient), wherever it stands.
TEST_P(GptVocabPaddingTest, PaddedIdsAreRefused) {
  Gpt padded(config_of(true, 16), false, nullptr, device());
  padded.params().init(5);
  Batch batch = random_batch(2, 9, 3);
  batch["tokens"].data<int32_t>()[0] = int32_t(kVocab);  // position 0: no target checks it
  try {
    padded.forward_loss(batch);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("id " + std::to_string(kVocab)), std::string::npos)
        << e.what();
  }
}

TEST(GptVocabPadding, PaddedSizeRoundsUpAndRejectsNegative) {
  config::GptConfig c = config_of(true, 0);
  c.set_vocab_size(50257);
  EXPECT_EQ(Gpt::padded_vocab(c), 50257);
  c.set_vocab_pad_multiple(1);
  EXPECT_EQ(Gpt::padded_vocab(c), 50257);
  c.set_vocab_pad_multiple(128);
  EXPECT_EQ(Gpt::padded_vocab(c), 50304);  // llm.c's padded GPT-2 vocabulary
  c.set_vocab_size(512);
  EXPECT_EQ(Gpt::padded_vocab(c), 512);
  c.set_vocab_pad_multiple(-8);
  try {
    Gpt::padded_vocab(c);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.gpt.vocab_pad_multiple"), std::string::npos)
        << e.what();
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(GptVocabPaddingTest);

}  // namespace
}  // namespace tessera::models
