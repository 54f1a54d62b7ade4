// GPT from text shards: data.source names a text manifest; a batch's rows are the windows the
// global sampler picks (checked against an independent sampler and a direct read of the
// stream), targets are the next tokens, DP slices are slices of the global batch, GPT learns
// from it, and bad manifests are refused by name.
#include "train/text_data.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data_pipeline/pack.h"
#include "tests/train/learning_support.h"
#include "tests/train/train_test_support.h"
#include "train/config.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

using ::testing::HasSubstr;

constexpr int kContext = 16;

// A learnable stream (each token determines the next) split over two shards of 1,000 and 700
// tokens, and a text manifest. Returns the manifest path.
std::string write_text(const std::string& dir, std::vector<std::vector<int32_t>>* shards) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  data::Manifest m;
  m.set_format_version(1);
  m.set_kind("text");
  m.set_eot_id(2);
  m.set_split("train");
  int64_t total = 0;
  for (int s = 0; s < 2; ++s) {
    std::vector<int32_t> tokens(s == 0 ? 1000 : 700);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 37 + s) % 101) + 3;
    const std::string name = "train-0000" + std::to_string(s) + ".h5";
    EXPECT_TRUE(data::write_text_shard(dir + "/" + name, tokens, "test", 2).ok());
    auto* info = m.add_shards();
    info->set_path(name);
    info->set_num_samples(int64_t(tokens.size()));
    info->set_bytes(int64_t(std::filesystem::file_size(dir + "/" + name)));
    total += int64_t(tokens.size());
    shards->push_back(tokens);
  }
  m.set_num_samples(total);
  EXPECT_TRUE(data::write_manifest(m, dir + "/train.pbtxt").ok());
  return dir + "/train.pbtxt";
}

config::Config gpt_on(const std::string& manifest, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"data.source=" + manifest, "model.gpt.context=16",
                                   "data.global_batch_size=8"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return testing_support::load("configs/gpt_tiny.pbtxt", sets);
}

TEST(TextData, RowsAreTheSampledWindowsAndTargetsTheNextTokens) {
  std::vector<std::vector<int32_t>> shards;
  const std::string manifest = write_text(testing_support::run_dir("text_windows"), &shards);
  const config::Config cfg = gpt_on(manifest);
  auto source = make_data_source(cfg);
  // The independent reference: the same sampler over (n - 1) / T windows per shard.
  data::DatasetShape shape{{(1000 - 1) / kContext, (700 - 1) / kContext}};
  data::SamplerConfig sc;
  sc.seed = cfg.train().seed();
  sc.global_batch = 8;
  sc.shuffle_window = 8;
  data::GlobalSampler sampler(shape, sc);
  const int64_t epoch_samples = sampler.batches_per_epoch() * 8;
  for (int64_t first : {int64_t(0), int64_t(8), epoch_samples + 8}) {  // also the second epoch
    models::Batch b = source->batch(first, 8);
    ASSERT_EQ(b["tokens"].shape(), Shape({8, kContext}));
    for (int64_t r = 0; r < 8; ++r) {
      const int64_t p = first + r;
      const data::SampleRef ref = sampler.at(p / epoch_samples, p % epoch_samples);
      const auto& stream = shards[ref.shard];
      for (int t = 0; t < kContext; ++t) {
        ASSERT_EQ(b["tokens"].data<int32_t>()[r * kContext + t], stream[ref.index * kContext + t]);
        ASSERT_EQ(b["targets"].data<int32_t>()[r * kContext + t],
                  stream[ref.index * kContext + t + 1]);
      }
    }
  }
  // DP slices of a global batch are slices of it.
  models::Batch all = source->batch(16, 8), lo = source->batch(16, 4), hi = source->batch(20, 4);
  EXPECT_EQ(0, std::memcmp(all["tokens"].data<int32_t>(), lo["tokens"].data<int32_t>(),
                           4 * kContext * 4));
  EXPECT_EQ(0, std::memcmp(all["tokens"].data<int32_t>() + 4 * kContext,
                           hi["tokens"].data<int32_t>(), 4 * kContext * 4));
}

// Windows read ahead on the worker (data.prefetch_batches = 3) equal windows read on the
// caller's thread (0), for the trainer's stride, out-of-order and repeated requests and DP
// slices.
TEST(TextData, ReadAheadGivesTheSameBatches) {
  std::vector<std::vector<int32_t>> shards;
  const std::string manifest = write_text(testing_support::run_dir("text_prefetch"), &shards);
  auto direct = make_data_source(gpt_on(manifest, {"data.prefetch_batches=0"}));
  auto ahead = make_data_source(gpt_on(manifest, {"data.prefetch_batches=3"}));
  const std::vector<std::pair<int64_t, int64_t>> requests = {
      {0, 8}, {8, 8}, {16, 8}, {40, 8}, {24, 8}, {24, 8}, {32, 4}, {36, 4}, {200, 8}, {3, 5}};
  for (const auto& [first, count] : requests) {
    models::Batch want = direct->batch(first, count), got = ahead->batch(first, count);
    for (const char* key : {"tokens", "targets"}) {
      ASSERT_EQ(got[key].shape(), want[key].shape());
      EXPECT_EQ(0, std::memcmp(got[key].data<int32_t>(), want[key].data<int32_t>(),
                               size_t(count * kContext * 4)))
          << key << " at [" << first << ", " << first + count << ")";
    }
  }
}

TEST(TextData, GptLearnsFromTextShards) {
  std::vector<std::vector<int32_t>> shards;
  const std::string manifest = write_text(testing_support::run_dir("text_learn"), &shards);
  config::Config cfg = gpt_on(manifest, {"train.steps=40", "log.every_steps=10", "optim.lr=0.003",
                                         "schedule.warmup_steps=0"});
  const std::vector<double> losses =
      testing_support::train_losses(cfg, testing_support::run_dir("text_learn_run"));
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

TEST(TextData, BadManifestsAreRefusedByName) {
  std::vector<std::vector<int32_t>> shards;
  const std::string manifest = write_text(testing_support::run_dir("text_bad"), &shards);
  auto error_of = [](const config::Config& c) {
    try {
      make_data_source(c)->batch(0, 8);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error_of(gpt_on(manifest, {"model.gpt.vocab_size=2"})),
              HasSubstr(manifest + ": end-of-text id 2 is outside model.gpt.vocab_size 2"));
  EXPECT_THAT(error_of(gpt_on(manifest, {"model.gpt.vocab_size=50"})),
              HasSubstr("outside model.gpt.vocab_size 50"));
  EXPECT_THAT(error_of(gpt_on(manifest, {"model.gpt.context=1024"})),
              HasSubstr(manifest + " (windows of 1025 tokens)"));
  const config::Config vit = testing_support::load(
      "configs/vit_tiny.pbtxt", {"data.source=" + manifest, "data.global_batch_size=8"});
  EXPECT_THAT(error_of(vit), HasSubstr("a text manifest (token stream) needs a GPT model"));
}

}  // namespace
}  // namespace tessera::train
