// Training from encoded shards (format version 2): images of any size, decoded and cropped by the
// loader to the model's image_size. Batches equal an independent recomputation (a direct shard
// read + decode_crop + normalisation), stay bitwise the same across world sizes and a resume
// (data cursor), with and without augmentation; a ViT learns from them; evaluation centre-crops.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/philox.h"
#include "data_pipeline/augment.h"
#include "data_pipeline/contact_sheet.h"
#include "data_pipeline/decode_crop.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"
#include "eval/split.h"
#include "tests/train/learning_support.h"
#include "tests/train/train_test_support.h"
#include "train/config.h"
#include "train/shard_data.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

// Two shards of class-coloured PNGs (class c: a bright channel c % 3) of sizes 8..20, with
// labels, and DIR/SPLIT.pbtxt (format_version 2). Returns the manifest path.
std::string write_dataset(const std::string& dir, const std::string& split = "train") {
  std::filesystem::create_directories(dir);
  data::Manifest manifest;
  manifest.set_format_version(2);
  manifest.set_resolution(0);
  manifest.set_split(split);
  int64_t total = 0;
  for (int s = 0; s < 2; ++s) {
    const std::string name = split + "-0000" + std::to_string(s) + ".h5";
    data::ShardWriterOptions o;
    o.format_version = 2;
    o.labels = true;
    o.image_chunk = 8;
    auto w = data::ShardWriter::create(dir + "/" + name, o);
    EXPECT_TRUE(w.ok()) << w.status();
    const int n = 24 + 8 * s;
    for (int i = 0; i < n; ++i) {
      const int label = (i * 7 + s) % 3;
      data::RgbImage im;
      im.height = 8 + (i * 5) % 13, im.width = 8 + (i * 3 + s) % 13;
      im.pixels.resize(size_t(im.height) * im.width * 3);
      for (size_t p = 0; p < im.pixels.size(); ++p) {
        const uint32_t noise = philox_block(1, s, i * 1000 + p).v[0] % 40;
        im.pixels[p] = uint8_t(int(p % 3) == label ? 200 + noise : noise);
      }
      const std::string png = dir + "/tmp.png";
      EXPECT_TRUE(data::write_png(png, im).ok());
      auto bytes = data::read_file_bytes(png);
      data::SampleToWrite t;
      t.caption = "a caption";
      t.label = label;
      t.encoded = *bytes;
      t.height = t.original_height = im.height;
      t.width = t.original_width = im.width;
      EXPECT_TRUE((*w)->append(t).ok());
    }
    EXPECT_TRUE((*w)->finish().ok());
    auto* shard = manifest.add_shards();
    shard->set_path(name);
    shard->set_num_samples(n);
    shard->set_bytes(int64_t(std::filesystem::file_size(dir + "/" + name)));
    total += n;
  }
  std::filesystem::remove(dir + "/tmp.png");
  manifest.set_num_samples(total);
  EXPECT_TRUE(data::write_manifest(manifest, dir + "/" + split + ".pbtxt").ok());
  return dir + "/" + split + ".pbtxt";
}

config::Config vit_on(const std::string& manifest, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"data.source=" + manifest, "model.vit.image_size=8",
                                   "model.vit.patch=4", "model.vit.n_classes=3",
                                   "data.global_batch_size=12"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return testing_support::load("configs/vit_tiny.pbtxt", sets);
}

constexpr int kS = 8;

TEST(ShardDataV2, BatchesAreDecodeCropOfTheSampledImagesNormalised) {
  const std::string dir = testing_support::run_dir("shards_v2_batches");
  std::filesystem::remove_all(dir);
  const std::string manifest = write_dataset(dir);
  for (bool augment : {false, true}) {
    const config::Config cfg =
        vit_on(manifest, {augment ? "data.augment=true" : "data.augment=false"});
    auto source = make_data_source(cfg);
    data::GlobalSampler sampler(data::DatasetShape{{24, 32}},
                                data::SamplerConfig{uint64_t(cfg.train().seed()), 12, 8});
    const int64_t epoch_samples = sampler.batches_per_epoch() * 12;
    const data::AugmentConfig stats;
    data::AugmentConfig crop;
    crop.random_crop = augment;
    for (int64_t first : {int64_t(0), epoch_samples + 12}) {
      models::Batch b = source->batch(first, 12);
      ASSERT_EQ(b["images"].shape(), Shape({12, kS, kS, 3}));
      for (int64_t i = 0; i < 12; ++i) {
        const int64_t pos = first + i;
        const data::SampleRef ref = sampler.at(pos / epoch_samples, pos % epoch_samples);
        auto r = data::ShardReader::open(dir + "/train-0000" + std::to_string(ref.shard) + ".h5");
        ASSERT_TRUE(r.ok());
        auto raw = (*r)->read(ref.index, 1);
        ASSERT_TRUE(raw.ok());
        const int h = raw->image_sizes[0], w = raw->image_sizes[1];
        const data::CropBox box = data::sample_crop(
            h, w, crop,
            {uint64_t(cfg.train().seed()), pos / epoch_samples, (ref.shard ? 24 : 0) + ref.index});
        std::vector<uint8_t> px(kS * kS * 3);
        data::DecodeScratch scratch;
        ASSERT_TRUE(
            data::decode_crop(raw->encoded(0), h, w, box, kS, px.data(), &scratch, "t").ok());
        for (int k = 0; k < kS * kS * 3; ++k) {
          const float want = (px[k] / 255.0f - stats.mean[k % 3]) / stats.std[k % 3];
          ASSERT_NEAR(b["images"].data<float>()[i * kS * kS * 3 + k], want, 1e-5)
              << "augment " << augment << " position " << pos;
        }
        EXPECT_EQ(b["labels"].data<int32_t>()[i], raw->labels[0]);
      }
    }
  }
}

TEST(ShardDataV2, WorldSizesAndResumeSeeTheSameGlobalBatches) {
  const std::string dir = testing_support::run_dir("shards_v2_order");
  std::filesystem::remove_all(dir);
  const std::string manifest = write_dataset(dir);
  const config::Config cfg = vit_on(manifest, {"data.augment=true"});
  const int64_t G = 12, steps = 8, px = kS * kS * 3;
  auto one = make_data_source(cfg);
  std::vector<models::Batch> reference;
  for (int64_t s = 0; s < steps; ++s) reference.push_back(one->batch(s * G, G));
  auto same = [&](const std::vector<models::Batch>& slices, int64_t step) {
    const int64_t per = G / int64_t(slices.size());
    for (size_t r = 0; r < slices.size(); ++r)
      ASSERT_EQ(0, std::memcmp(reference[step]["images"].data<float>() + r * per * px,
                               slices[r].at("images").data<float>(), per * px * 4))
          << "step " << step << " rank " << r << " of " << slices.size();
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
  std::vector<std::unique_ptr<DataSource>> resumed;  // a resume at step 5 on 2 ranks
  for (int r = 0; r < 2; ++r) resumed.push_back(make_data_source(cfg));
  for (int64_t s = 5; s < steps; ++s)
    same({resumed[0]->batch(s * G, G / 2), resumed[1]->batch(s * G + G / 2, G / 2)}, s);
}

TEST(ShardDataV2, TrainerLearnsFromEncodedShards) {
  const std::string manifest = write_dataset(testing_support::run_dir("shards_v2_train"));
  config::Config cfg = vit_on(manifest, {"train.steps=40", "log.every_steps=10", "optim.lr=0.003",
                                         "schedule.warmup_steps=0", "data.global_batch_size=8"});
  const std::vector<double> losses =
      testing_support::train_losses(cfg, testing_support::run_dir("shards_v2_train_run"));
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

TEST(ShardDataV2, EvaluationSplitIsCentreCroppedToTheModelSize) {
  const std::string dir = testing_support::run_dir("shards_v2_eval");
  std::filesystem::remove_all(dir);
  const std::string val = write_dataset(dir, "val");
  EXPECT_FALSE(eval::load_split(val).ok());  // an encoded split needs the model's size
  auto split = eval::load_split(val, 0, kS);
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_EQ(split->n, 56);
  ASSERT_EQ(split->resolution, kS);
  auto r = data::ShardReader::open(dir + "/val-00001.h5");
  auto raw = (*r)->read(3, 1);
  ASSERT_TRUE(raw.ok());
  const int h = raw->image_sizes[0], w = raw->image_sizes[1];
  data::AugmentConfig centre;
  centre.random_crop = false;
  std::vector<uint8_t> want(kS * kS * 3);
  data::DecodeScratch scratch;
  ASSERT_TRUE(data::decode_crop(raw->encoded(0), h, w, data::sample_crop(h, w, centre, {}), kS,
                                want.data(), &scratch, "t")
                  .ok());
  EXPECT_EQ(0,
            std::memcmp(split->images.data() + (24 + 3) * kS * kS * 3, want.data(), want.size()));
}

}  // namespace
}  // namespace tessera::train
