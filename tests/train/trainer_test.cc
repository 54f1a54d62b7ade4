#include "train/trainer.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/support/reference.h"
#include "train/config.h"

namespace tessera::train {
namespace {

// Per process: CTest runs this binary's variants (train_trainer_test, _avx2) side by side.
std::string fresh_dir(const std::string& name) {
  std::string dir =
      (std::filesystem::path(::testing::TempDir()) / (name + "_" + std::to_string(getpid())))
          .string();
  std::filesystem::remove_all(dir);
  return dir;
}

std::vector<nlohmann::json> read_metrics(const std::string& run_dir) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

config::Config tiny(const std::vector<std::string>& overrides = {}) {
  auto c = load_config(testing::source_path("configs/gpt_tiny.pbtxt"), overrides);
  TESSERA_CHECK(c.ok(), c.status().ToString());
  return *c;
}

TEST(Trainer, RunDirectoryHoldsResolvedConfigAndMetrics) {
  std::string dir = fresh_dir("run_dir");
  TrainOptions o;
  o.config_path = testing::source_path("configs/gpt_tiny.pbtxt");
  o.overrides = {"train.steps=3", "log.every_steps=1", "data.global_batch_size=4",
                 "eval.every_steps=3", "eval.batches=2"};
  o.run_dir = dir;
  o.quiet = true;
  ASSERT_EQ(run_train(o), kExitOk);
  auto rows = read_metrics(dir);
  ASSERT_EQ(rows.size(), 4u);  // three training steps, then the evaluation after step 3
  EXPECT_EQ(rows[3]["kind"], "eval");
  EXPECT_EQ(rows[3]["step"], 3);
  EXPECT_GT(rows[3]["loss"].get<double>(), 0.0);
  for (const char* key : {"step", "loss", "lr", "grad_norm", "samples_per_s", "mfu", "step_ms",
                          "tokens_per_s", "data_wait"}) {
    EXPECT_TRUE(rows[2].contains(key)) << key;
  }
  EXPECT_EQ(rows[2]["step"], 3);
  // Warmup of 20 steps: lr at step 3 is 3/20 of the peak 1e-3.
  EXPECT_NEAR(rows[2]["lr"].get<double>(), 1.5e-4, 1e-9);
  auto resolved = load_config(dir + "/config.pbtxt");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->train().steps(), 3);
  EXPECT_EQ(resolved->data().global_batch_size(), 4);
}

TEST(Trainer, DeterministicRunsGiveBitwiseEqualParameters) {
  config::Config c = tiny({"train.steps=4", "train.deterministic=true", "log.every_steps=2"});
  Trainer a(c, fresh_dir("det_a"), true), b(c, fresh_dir("det_b"), true);
  ASSERT_EQ(a.run(), kExitOk);
  ASSERT_EQ(b.run(), kExitOk);
  const Tensor& pa = a.model().params().params();
  const Tensor& pb = b.model().params().params();
  EXPECT_EQ(0, std::memcmp(pa.raw_data(), pb.raw_data(), pa.nbytes()));
  // And training moved them: a run with another seed ends elsewhere.
  config::Config other = c;
  other.mutable_train()->set_seed(c.train().seed() + 1);
  Trainer d(other, fresh_dir("det_c"), true);
  ASSERT_EQ(d.run(), kExitOk);
  EXPECT_NE(0, std::memcmp(pa.raw_data(), d.model().params().params().raw_data(), pa.nbytes()));
}

TEST(Trainer, GradientAccumulationEqualsTheFullBatch) {
  config::Config one = tiny({"train.steps=2", "data.global_batch_size=8", "train.micro_batches=1"});
  config::Config four =
      tiny({"train.steps=2", "data.global_batch_size=8", "train.micro_batches=4"});
  Trainer a(one, fresh_dir("acc1"), true), b(four, fresh_dir("acc4"), true);
  ASSERT_EQ(a.run(), kExitOk);
  ASSERT_EQ(b.run(), kExitOk);
  const Tensor& pa = a.model().params().params();
  const Tensor& pb = b.model().params().params();
  double max_diff = 0;
  for (int64_t i = 0; i < pa.numel(); ++i) {
    max_diff = std::max(max_diff, double(std::fabs(pa.data<float>()[i] - pb.data<float>()[i])));
  }
  EXPECT_LT(max_diff, 1e-6);  // same math, summed in another order
}

// bf16 compute (train.precision = BF16: bf16 matmul operands, f32 accumulation and master
// weights) follows the f32 run. On a CPU path without oneDNN's bf16 matmul (AVX2, baseline:
// train_trainer_test_avx2 forces one) this runs the f32-sgemm-on-bf16-operands fallback; a wrong
// fallback (operands misread, epilogue dropped) would not learn like the f32 run.
TEST(Trainer, Bf16ComputeFollowsTheF32Run) {
  const std::vector<std::string> common = {"train.steps=30", "log.every_steps=5",
                                           "train.deterministic=true", "optim.lr=3e-3"};
  std::vector<std::string> bf16 = common;
  bf16.push_back("train.precision=BF16");
  std::string dir_f32 = fresh_dir("prec_f32"), dir_bf16 = fresh_dir("prec_bf16");
  Trainer a(tiny(common), dir_f32, true), b(tiny(bf16), dir_bf16, true);
  ASSERT_EQ(a.run(), kExitOk);
  ASSERT_EQ(b.run(), kExitOk);
  auto f32 = read_metrics(dir_f32), low = read_metrics(dir_bf16);
  ASSERT_EQ(f32.size(), low.size());
  ASSERT_GE(f32.size(), 6u);
  const double first = f32.front()["loss"].get<double>(), last = f32.back()["loss"].get<double>();
  ASSERT_LT(last, first - 0.3) << "the f32 run must learn for the comparison to mean anything";
  for (size_t i = 0; i < f32.size(); ++i) {
    const double lf = f32[i]["loss"].get<double>(), lb = low[i]["loss"].get<double>();
    // bf16 operands carry 8 significant bits: losses agree to about 1 %, far closer than the
    // 0.3 the run learns.
    EXPECT_NEAR(lb, lf, 0.02 * lf) << "step " << f32[i]["step"];
  }
}

TEST(Trainer, NonFiniteStepsAreSkippedThenStopTheRun) {
  std::string dir = fresh_dir("nan");
  TrainOptions o;
  o.config_path = testing::source_path("configs/gpt_tiny.pbtxt");
  // An absurd learning rate sends the parameters to infinity within a few steps.
  o.overrides = {"train.steps=50",          "optim.lr=1e30",         "optim.grad_clip=0",
                 "schedule.warmup_steps=0", "train.max_bad_steps=3", "log.every_steps=1"};
  o.run_dir = dir;
  o.quiet = true;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_train(o), kExitError);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("3 non-finite steps in a row (train.max_bad_steps)"), std::string::npos)
      << err;
}

TEST(Trainer, BadConfigsExitWithOneAndAMessage) {
  TrainOptions o;
  o.config_path = "/nonexistent.pbtxt";
  o.quiet = true;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_train(o), kExitError);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "tessera train: /nonexistent.pbtxt: cannot open config file\n");
  o.config_path = testing::source_path("configs/gpt_tiny.pbtxt");
  o.overrides = {"model.gpt.transformer.n_heads=5"};
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_train(o), kExitError);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find(
                "model.gpt.transformer.n_heads: 5 heads do not divide"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera::train

namespace tessera::train {
namespace {

// Learning on synthetic class-prototype images: the DiT's noise-prediction loss falls below half
// its starting value within 100 steps (a few seconds).
TEST(Learning, DitLossFallsBelowHalfItsStart) {
  std::string dir = fresh_dir("dit_learning");
  TrainOptions o;
  o.config_path = testing::source_path("configs/dit_tiny.pbtxt");
  o.overrides = {"train.steps=100", "log.every_steps=10"};
  o.run_dir = dir;
  o.quiet = true;
  ASSERT_EQ(run_train(o), kExitOk);
  auto rows = read_metrics(dir);
  ASSERT_EQ(rows.size(), 10u);
  const double first = rows.front()["loss"], last = rows.back()["loss"];
  EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
}

}  // namespace
}  // namespace tessera::train
