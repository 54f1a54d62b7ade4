// The linear probe (eval/linear_probe.h) equals scikit-learn's LogisticRegression on the same
// features (tests/reference/ref_probe.py): the same C picked from the sweep, hold-out and val
// top-1 within 1e-3 (here: the same predictions), and the refitted weights within 1e-4 relative.
// Then `tessera eval --probe`'s path on a real (tiny, trained) ViT checkpoint: features of the
// trunk's width, an accuracy that is a fraction of the split.
#include "eval/linear_probe.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/run_eval.h"
#include "tests/support/reference.h"
#include "tests/train/train_test_support.h"
#include "train/trainer.h"

namespace tessera::eval {
namespace {

// Gaussian clusters around random centres, close enough to overlap (neither split separable).
void clusters(int64_t n, int64_t dim, int classes, uint32_t seed, ProbeData* out) {
  std::mt19937 rng(seed);
  std::mt19937 centres_rng(7);  // the same centres for train and val
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centres(classes * dim);
  for (float& c : centres) c = 0.8f * normal(centres_rng);
  out->n = n;
  out->dim = dim;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t y = int32_t(rng() % classes);
    out->y.push_back(y);
    for (int64_t j = 0; j < dim; ++j) {
      // Columns on different scales and offsets: standardisation matters.
      out->x.push_back((centres[y * dim + j] + normal(rng)) * float(1 + j) + float(j));
    }
  }
}

Tensor as_tensor(const std::vector<float>& v, Shape shape) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}
Tensor as_tensor(const std::vector<int32_t>& v) {
  Tensor t = Tensor::empty({int64_t(v.size())}, DType::i32);
  std::copy(v.begin(), v.end(), t.data<int32_t>());
  return t;
}

TEST(LinearProbe, EqualsScikitLearn) {
  ProbeData train, val;
  const int classes = 5;
  clusters(400, 12, classes, 1, &train);
  clusters(200, 12, classes, 2, &val);
  const std::vector<double> strengths = {1e-3, 1e-2, 1e-1, 1.0};
  const ProbeResult got = linear_probe(train, val, classes, strengths);

  NamedTensors in{{"case0.train_x", as_tensor(train.x, {train.n, train.dim})},
                  {"case0.train_y", as_tensor(train.y)},
                  {"case0.val_x", as_tensor(val.x, {val.n, val.dim})},
                  {"case0.val_y", as_tensor(val.y)}};
  auto want = testing::run_reference("probe", in, {{"case0.strengths", "0.001,0.01,0.1,1"}});
  const Tensor& hold = want.at("case0.holdout_top1");
  ASSERT_EQ(hold.numel(), int64_t(strengths.size()));
  for (size_t i = 0; i < strengths.size(); ++i) {
    EXPECT_NEAR(got.sweep[i].holdout_top1, hold.data<float>()[i], 1e-3) << "C = " << strengths[i];
  }
  EXPECT_NEAR(got.best_c, want.at("case0.best_c").data<float>()[0], 1e-6 * got.best_c);  // f32
  EXPECT_NEAR(got.val_top1, want.at("case0.val_top1").data<float>()[0], 1e-3);
  // Not a trivial problem: neither chance nor perfect.
  EXPECT_GT(got.val_top1, 0.4);
  EXPECT_LT(got.val_top1, 0.98);

  // The refitted weights themselves (the unique optimum), on the standardised features.
  ProbeData t = train, v = val;
  standardise(t, v);
  const LogisticModel m = fit_logistic(t, classes, got.best_c);
  EXPECT_LT(m.gradient_norm, 1e-8 * got.best_c * t.n)
      << m.iterations << " iterations";  // converged
  const Tensor& coef = want.at("case0.coef");
  const Tensor& intercept = want.at("case0.intercept");
  ASSERT_EQ(coef.numel(), int64_t(m.w.size()));
  // scikit-learn's multinomial intercepts and weights are unique only up to a constant per
  // feature across classes when unpenalised; the L2 penalty fixes the weights, the intercepts
  // differ by a common shift: compare them centred.
  double mean_b = 0, mean_ref = 0;
  for (int k = 0; k < classes; ++k) {
    mean_b += m.b[k] / classes;
    mean_ref += intercept.data<float>()[k] / classes;
  }
  for (int k = 0; k < classes; ++k) {
    EXPECT_NEAR(m.b[k] - mean_b, intercept.data<float>()[k] - mean_ref, 1e-4) << "b[" << k << "]";
  }
  for (size_t i = 0; i < m.w.size(); ++i) {
    ASSERT_NEAR(m.w[i], coef.data<float>()[i], 1e-4 * (1 + std::fabs(m.w[i]))) << "w[" << i << "]";
  }
}

TEST(LinearProbe, RunsOnAVitCheckpoint) {
  auto cfg = train::testing_support::load(
      "configs/vit_tiny.pbtxt",
      {"train.steps=2", "data.global_batch_size=8", "train.peak_flops=1e9"});
  const std::string dir = train::testing_support::run_dir("probe_vit");
  std::filesystem::remove_all(dir);
  {
    train::Trainer t(cfg, dir, true);
    ASSERT_EQ(t.run(), train::kExitOk);
  }
  EvalOptions o;
  o.checkpoint = dir;
  o.probe = true;
  o.max_samples = 100;
  o.probe_train_samples = 200;
  auto r = run_eval(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["probe_dim"].get<int64_t>(), 64);
  EXPECT_EQ((*r)["probe_train_samples"].get<int64_t>(), 200);
  EXPECT_EQ((*r)["n_samples"].get<int64_t>(), 100);
  const double top1 = (*r)["probe_top1"].get<double>();
  EXPECT_GE(top1, 0.0);
  EXPECT_LE(top1, 1.0);
  EXPECT_EQ(std::round(top1 * 100), top1 * 100);  // hits out of 100 samples
  EXPECT_TRUE(r->contains("probe_holdout_top1_c0.01"));
  // A GPT checkpoint has no image tower: named.
  auto gpt = train::testing_support::load(
      "configs/gpt_tiny.pbtxt",
      {"train.steps=1", "data.global_batch_size=4", "train.peak_flops=1e9"});
  const std::string gdir = train::testing_support::run_dir("probe_gpt");
  std::filesystem::remove_all(gdir);
  {
    train::Trainer t(gpt, gdir, true);
    ASSERT_EQ(t.run(), train::kExitOk);
  }
  o.checkpoint = gdir;
  auto bad = run_eval(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("probes read ViT or CLIP"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace tessera::eval
