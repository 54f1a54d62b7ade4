// Training from packed HDF5 shards: data.source names a manifest; batches are the shard samples
// the global sampler picks, normalised for the model; a mismatched manifest is refused by name.
#include "train/shard_data.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/philox.h"
#include "data_pipeline/augment.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"
#include "tests/train/learning_support.h"
#include "tests/train/train_test_support.h"
#include "train/config.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

constexpr int kRes = 8;

// Two shards of class-coloured 8x8 images (class c: a bright channel c % 3), with labels, and a
// manifest DIR/SPLIT.pbtxt beside them. Returns the manifest path. label_shift != 0 labels each
// image with another class than its colour (a split the model cannot fit by learning colours).
std::string write_dataset(const std::string& dir, const std::string& split = "train",
                          int label_shift = 0) {
  std::filesystem::create_directories(dir);
  data::Manifest manifest;
  manifest.set_format_version(1);
  manifest.set_resolution(kRes);
  manifest.set_split(split);
  int64_t total = 0;
  for (int s = 0; s < 2; ++s) {
    const std::string name = split + "-0000" + std::to_string(s) + ".h5";
    data::ShardWriterOptions o;
    o.resolution = kRes;
    o.labels = true;
    auto w = data::ShardWriter::create(dir + "/" + name, o);
    EXPECT_TRUE(w.ok()) << w.status();
    const int n = 24 + 8 * s;
    for (int i = 0; i < n; ++i) {
      const int label = (i * 7 + s) % 3;
      std::vector<uint8_t> image(kRes * kRes * 3);
      for (size_t p = 0; p < image.size(); ++p) {
        const uint32_t noise = philox_block(1, s, i * 1000 + p).v[0] % 40;
        image[p] = uint8_t(int(p % 3) == label ? 200 + noise : noise);
      }
      EXPECT_TRUE((*w)->append({image, "a caption", {}, (label + label_shift) % 3}).ok());
    }
    EXPECT_TRUE((*w)->finish().ok());
    auto* shard = manifest.add_shards();
    shard->set_path(name);
    shard->set_num_samples(n);
    total += n;
  }
  manifest.set_num_samples(total);
  EXPECT_TRUE(data::write_manifest(manifest, dir + "/" + split + ".pbtxt").ok());
  return dir + "/" + split + ".pbtxt";
}

config::Config vit_on(const std::string& manifest, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"data.source=" + manifest, "model.vit.image_size=8",
                                   "model.vit.patch=4", "model.vit.n_classes=3",
                                   "data.global_batch_size=8"};
  sets.insert(sets.end(), extra.begin(), extra.end());  // later --set wins
  return testing_support::load("configs/vit_tiny.pbtxt", sets);
}

TEST(ShardData, BatchesAreTheSampledShardImagesNormalised) {
  const std::string manifest = write_dataset(testing_support::run_dir("shards_batches"));
  config::Config cfg = vit_on(manifest);
  auto source = make_data_source(cfg);
  models::Batch a = source->batch(0, 8), b = source->batch(0, 8), c = source->batch(8, 8);
  ASSERT_EQ(a["images"].shape(), Shape({8, kRes, kRes, 3}));
  EXPECT_EQ(0, std::memcmp(a["images"].raw_data(), b["images"].raw_data(), a["images"].nbytes()));
  EXPECT_NE(0, std::memcmp(a["images"].raw_data(), c["images"].raw_data(), a["images"].nbytes()));
  // Evaluation reads far ahead in the stream (trainer.cc: 2^40); such positions still map.
  EXPECT_NO_THROW(source->batch(int64_t(1) << 40, 8));
  EXPECT_NO_THROW(source->batch(int64_t(1) << 50, 8));
  // The bright channel of every image is its label (normalised values: bright > 1, dark < 0).
  for (int i = 0; i < 8; ++i) {
    const float* px = a["images"].data<float>() + i * kRes * kRes * 3;
    const int label = a["labels"].data<int32_t>()[i];
    EXPECT_GT(px[label], 1.0f) << i;
    EXPECT_LT(px[(label + 1) % 3], 0.0f) << i;
  }
}

// The data order and resume guarantees, checked at the trainer's data source: 1, 2, 3 or 4 DP ranks
// (each with its own source, as separate processes would have) assemble the same global batches as
// one rank, across an epoch boundary; and a source started fresh at step k (a resumed run, here
// on 2 ranks) continues with exactly the batches of the uninterrupted run.
TEST(ShardData, WorldSizesAndResumeSeeTheSameGlobalBatches) {
  const std::string manifest = write_dataset(testing_support::run_dir("shards_order"));
  const config::Config cfg = vit_on(manifest, {"data.global_batch_size=12"});
  const int64_t G = 12, steps = 8;  // 56 samples: 4 batches per epoch, so 2 epochs
  auto one = make_data_source(cfg);
  std::vector<models::Batch> reference;
  for (int64_t s = 0; s < steps; ++s) reference.push_back(one->batch(s * G, G));
  auto same = [&](const std::vector<models::Batch>& slices, int64_t step) {
    const int64_t per = G / int64_t(slices.size()), px = kRes * kRes * 3;
    for (size_t r = 0; r < slices.size(); ++r) {
      EXPECT_EQ(0, std::memcmp(reference[step]["images"].data<float>() + r * per * px,
                               slices[r].at("images").data<float>(), per * px * 4))
          << "step " << step << " rank " << r << " of " << slices.size();
      EXPECT_EQ(0, std::memcmp(reference[step]["labels"].data<int32_t>() + r * per,
                               slices[r].at("labels").data<int32_t>(), per * 4));
    }
  };
  for (int dp : {2, 3, 4}) {
    std::vector<std::unique_ptr<DataSource>> ranks;
    for (int r = 0; r < dp; ++r) ranks.push_back(make_data_source(cfg));
    for (int64_t s = 0; s < steps; ++s) {
      std::vector<models::Batch> slices;
      for (int r = 0; r < dp; ++r) slices.push_back(ranks[r]->batch(s * G + r * (G / dp), G / dp));
      same(slices, s);
    }
  }
  std::vector<std::unique_ptr<DataSource>> resumed;
  for (int r = 0; r < 2; ++r) resumed.push_back(make_data_source(cfg));
  for (int64_t s = 5; s < steps; ++s)
    same({resumed[0]->batch(s * G, G / 2), resumed[1]->batch(s * G + G / 2, G / 2)}, s);
}

TEST(ShardData, TrainerLearnsFromShards) {
  const std::string manifest = write_dataset(testing_support::run_dir("shards_train"));
  config::Config cfg = vit_on(manifest, {"train.steps=40", "log.every_steps=10", "optim.lr=0.003",
                                         "schedule.warmup_steps=0"});
  const std::vector<double> losses =
      testing_support::train_losses(cfg, testing_support::run_dir("shards_train_run"));
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

// data.augment: each row is augment_image of its shard sample keyed by (seed, epoch, global
// sample id) — recomputed here from an independent sampler and a direct shard read — the same
// in a fresh source, and evaluation sources are not augmented.
TEST(ShardData, AugmentationIsKeyedBySeedEpochAndSample) {
  const std::string dir = testing_support::run_dir("shards_augment");
  const std::string manifest = write_dataset(dir);
  const config::Config cfg = vit_on(manifest, {"data.augment=true"});
  auto source = make_data_source(cfg);
  auto again = make_data_source(cfg);
  auto plain = make_data_source(cfg, manifest, /*training=*/false);
  data::DatasetShape shape{{24, 32}};
  data::SamplerConfig sc;
  sc.seed = cfg.train().seed();
  sc.global_batch = 8;
  sc.shuffle_window = 8;
  data::GlobalSampler sampler(shape, sc);
  const int64_t epoch_samples = sampler.batches_per_epoch() * 8;
  data::AugmentConfig ac;
  ac.out_size = kRes;
  const int64_t px = kRes * kRes * 3;
  for (int64_t first : {int64_t(0), epoch_samples + 16}) {
    models::Batch a = source->batch(first, 8), b = again->batch(first, 8);
    models::Batch p = plain->batch(first, 8);
    EXPECT_EQ(0, std::memcmp(a["images"].raw_data(), b["images"].raw_data(), a["images"].nbytes()));
    EXPECT_NE(0, std::memcmp(a["images"].raw_data(), p["images"].raw_data(), a["images"].nbytes()));
    for (int64_t i = 0; i < 8; ++i) {
      const int64_t pos = first + i;
      const data::SampleRef ref = sampler.at(pos / epoch_samples, pos % epoch_samples);
      auto reader =
          data::ShardReader::open(dir + "/train-0000" + std::to_string(ref.shard) + ".h5");
      ASSERT_TRUE(reader.ok());
      auto raw = (*reader)->read(ref.index, 1);
      ASSERT_TRUE(raw.ok());
      std::vector<float> want(px);
      data::augment_image(
          raw->images.data(), kRes, kRes, ac,
          {uint64_t(sc.seed), pos / epoch_samples, (ref.shard ? 24 : 0) + ref.index}, want.data());
      for (int64_t k = 0; k < px; ++k)
        ASSERT_NEAR(a["images"].data<float>()[i * px + k], want[k], 1e-4) << pos << " " << k;
    }
  }
}

TEST(ShardData, EvalSourceDefaultsToTheValManifestBesideTheTrainingOne) {
  const std::string dir = testing_support::run_dir("shards_eval_source");
  std::filesystem::remove_all(dir);
  const std::string train = write_dataset(dir);
  EXPECT_EQ(eval_source(vit_on(train)), "");  // no val.pbtxt yet
  const std::string val = write_dataset(dir, "val");
  EXPECT_EQ(eval_source(vit_on(train)), val);
  EXPECT_EQ(eval_source(vit_on(train, {"eval.source=none"})), "");
  EXPECT_EQ(eval_source(vit_on(train, {"eval.source=/elsewhere/x.pbtxt"})), "/elsewhere/x.pbtxt");
  EXPECT_EQ(eval_source(vit_on(val)), "");  // training on val: nothing held out beside it
  EXPECT_EQ(eval_source(vit_on("synthetic")), "");
}

// Evaluation reads the held-out split: its labels disagree with the colours, so a model that
// fitted the training split scores far worse on it, and the record names it.
TEST(ShardData, EvaluationReadsTheHeldOutSplit) {
  const std::string dir = testing_support::run_dir("shards_eval");
  std::filesystem::remove_all(dir);
  const std::string manifest = write_dataset(dir);
  const std::string val = write_dataset(dir, "val", /*label_shift=*/1);
  config::Config cfg =
      vit_on(manifest, {"train.steps=40", "log.every_steps=40", "optim.lr=0.003",
                        "schedule.warmup_steps=0", "eval.every_steps=40", "eval.batches=2"});
  const std::string run = testing_support::run_dir("shards_eval_run");
  std::filesystem::remove_all(run);
  Trainer t(cfg, run, true);
  ASSERT_EQ(t.run(), kExitOk);
  std::ifstream f(run + "/metrics.jsonl");
  double train_loss = -1, eval_loss = -1;
  for (std::string line; std::getline(f, line);) {
    const auto rec = nlohmann::json::parse(line);
    if (rec.value("kind", "") == "eval") {
      EXPECT_EQ(rec["source"], val);
      eval_loss = rec["loss"];
    } else {
      train_loss = rec["loss"];
    }
  }
  ASSERT_GE(train_loss, 0);
  ASSERT_GE(eval_loss, 0);
  EXPECT_LT(train_loss, 0.5);
  EXPECT_GT(eval_loss, 3 * train_loss);
}

TEST(ShardData, MismatchedManifestIsRefusedByName) {
  const std::string manifest = write_dataset(testing_support::run_dir("shards_bad"));
  config::Config cfg = vit_on(manifest, {"model.vit.image_size=16"});
  try {
    make_data_source(cfg);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(": resolution 8 does not match the model's image_size 16"),
              std::string::npos)
        << e.what();
  }
  cfg = vit_on("/nonexistent/train.pbtxt");
  EXPECT_THROW(make_data_source(cfg), Error);
}

}  // namespace
}  // namespace tessera::train
