// Mixup and CutMix (train/mixing.h): the transform against a PyTorch reference given each pair's
// draw, the draws' statistics (Beta moments, the share of mixed pairs and of CutMix), and the
// property the trainer relies on: a batch mixed in slices equals the batch mixed at once, so the
// result never depends on ranks or micro-batches.
#include "train/mixing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "tests/support/compare.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera::train {
namespace {

config::DataConfig mix_config(float mixup, float cutmix, float prob) {
  config::DataConfig d;
  d.set_mixup_alpha(mixup);
  d.set_cutmix_alpha(cutmix);
  d.set_mix_prob(prob);
  return d;
}

models::Batch image_batch(int64_t B, int64_t S, uint64_t stream) {
  Tensor labels = Tensor::empty({B}, DType::i32);
  for (int64_t i = 0; i < B; ++i) labels.data<int32_t>()[i] = int32_t((i * 7 + 3) % 10);
  return {{"images", testing::normal({B, S, S, 3}, stream)}, {"labels", labels}};
}

TEST(Mixing, MatchesTorchReference) {
  const int64_t B = 64, S = 16, first = 1000;
  const uint64_t seed = 7;
  const config::DataConfig d = mix_config(0.8f, 1.0f, 0.9f);
  models::Batch batch = image_batch(B, S, 3);
  const Tensor original = batch.at("images");
  Tensor kind = Tensor::empty({B / 2}, DType::i32), lam = Tensor::empty({B / 2}, DType::f32);
  Tensor cy = Tensor::empty({B / 2}, DType::i32), cx = Tensor::empty({B / 2}, DType::i32);
  int counts[3] = {0, 0, 0};
  for (int64_t k = 0; k < B / 2; ++k) {
    const MixDraw m = draw_mix(d, seed, first / 2 + k, int(S));
    kind.data<int32_t>()[k] = int32_t(m.kind);
    lam.data<float>()[k] = m.lam_drawn;
    cy.data<int32_t>()[k] = m.cy;
    cx.data<int32_t>()[k] = m.cx;
    ++counts[m.kind];
  }
  // Every branch is exercised (none: mix_prob 0.9 leaves about 3 of 32 pairs alone).
  ASSERT_GT(counts[MixDraw::kNone], 0);
  ASSERT_GT(counts[MixDraw::kMixup], 0);
  ASSERT_GT(counts[MixDraw::kCutMix], 0);
  mix_batch(d, seed, first, batch);
  using testing::case_key;
  NamedTensors ref = testing::run_reference("mixing", {{case_key(0, "images"), original},
                                                       {case_key(0, "kind"), kind},
                                                       {case_key(0, "lam"), lam},
                                                       {case_key(0, "cy"), cy},
                                                       {case_key(0, "cx"), cx}});
  EXPECT_ALL_CLOSE(batch.at("images"), ref.at(case_key(0, "images")), 1e-6, "mixed images");
  EXPECT_ALL_CLOSE(batch.at("label_weight"), ref.at(case_key(0, "weight")), 1e-6, "label weights");
  // The source batch was not modified; the partners' labels are swapped within each pair.
  EXPECT_EQ(0, std::memcmp(original.data<float>(), image_batch(B, S, 3).at("images").data<float>(),
                           original.nbytes()));
  for (int64_t i = 0; i < B; ++i) {
    EXPECT_EQ(batch.at("labels_mix").data<int32_t>()[i], batch.at("labels").data<int32_t>()[i ^ 1]);
  }
}

// A rank's slice mixed alone equals the same rows of the whole batch mixed at once.
TEST(Mixing, SlicesEqualTheWholeBatch) {
  const int64_t B = 16, S = 8, first = 48;
  const config::DataConfig d = mix_config(0.4f, 1.0f, 1.0f);
  models::Batch whole = image_batch(B, S, 5);
  const Tensor images = whole.at("images");
  mix_batch(d, 11, first, whole);
  for (int64_t part = 0; part < 4; ++part) {
    const int64_t n = B / 4, px = S * S * 3;
    Tensor slice_images = Tensor::empty({n, S, S, 3}, DType::f32);
    std::memcpy(slice_images.data<float>(), images.data<float>() + part * n * px,
                slice_images.nbytes());
    Tensor slice_labels = Tensor::empty({n}, DType::i32);
    std::memcpy(slice_labels.data<int32_t>(), whole.at("labels").data<int32_t>() + part * n,
                slice_labels.nbytes());
    models::Batch slice = {{"images", slice_images}, {"labels", slice_labels}};
    mix_batch(d, 11, first + part * n, slice);
    EXPECT_EQ(0, std::memcmp(slice.at("images").data<float>(),
                             whole.at("images").data<float>() + part * n * px,
                             slice.at("images").nbytes()))
        << "part " << part;
    EXPECT_EQ(0, std::memcmp(slice.at("label_weight").data<float>(),
                             whole.at("label_weight").data<float>() + part * n, n * sizeof(float)));
  }
}

// Beta(alpha, alpha): mean 1/2, variance 1 / (4 (2 alpha + 1)); 20000 draws, within 5 standard
// errors of the mean and 5 % of the variance.
TEST(Mixing, BetaDrawsHaveBetaMoments) {
  for (float alpha : {0.2f, 0.8f, 1.0f, 2.0f}) {
    const int n = 20000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; ++i) {
      const double x = beta_sample(alpha, 3, kMixStream, uint64_t(i) * 256);
      ASSERT_GE(x, 0.0);
      ASSERT_LE(x, 1.0);
      sum += x;
      sq += x * x;
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    const double want_var = 1.0 / (4.0 * (2.0 * alpha + 1.0));
    EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(want_var / n)) << "alpha " << alpha;
    EXPECT_NEAR(var, want_var, 0.05 * want_var) << "alpha " << alpha;
  }
}

// mix_prob and the CutMix/mixup switch: shares within 5 standard errors over 20000 pairs.
TEST(Mixing, DecisionShares) {
  const config::DataConfig d = mix_config(0.5f, 0.5f, 0.6f);
  int mixed = 0, cut = 0;
  const int n = 20000;
  for (int k = 0; k < n; ++k) {
    const MixDraw m = draw_mix(d, 9, k, 32);
    mixed += m.kind != MixDraw::kNone;
    cut += m.kind == MixDraw::kCutMix;
    if (m.kind == MixDraw::kCutMix) {
      ASSERT_GE(m.lam, m.lam_drawn - 1e-6f) << "clipping only shrinks the box";
      ASSERT_LE(m.lam, 1.0f);
    }
  }
  EXPECT_NEAR(double(mixed) / n, 0.6, 5 * std::sqrt(0.24 / n));
  EXPECT_NEAR(double(cut) / mixed, 0.5, 5 * std::sqrt(0.25 / mixed));
}

TEST(Mixing, OddSlicesAreRefusedWithTheirPosition) {
  models::Batch batch = image_batch(3, 4, 1);
  try {
    mix_batch(mix_config(1, 0, 1), 1, 8, batch);
    FAIL() << "an odd batch was mixed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch of 3 samples at position 8"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tessera::train
