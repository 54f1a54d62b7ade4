// The Loader on encoded shards (format version 2): each row is decode_crop of its sample's bytes
// with the crop the caller keys by (position, sample) — checked against an independent slow path
// (ShardReader::read + decode_crop per sample); the same bytes for any thread count and any
// split of a batch over ranks; version 1 pixels and the same pixels stored as PNG give the same
// inputs; a corrupt sample is an error naming the shard and the sample.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/philox.h"
#include "data_pipeline/augment.h"
#include "data_pipeline/contact_sheet.h"
#include "data_pipeline/decode_crop.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/loader.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"
#include "tests/data_pipeline/shard_fixtures.h"

namespace tessera::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int kShards = 3, kPerShard = 70, kTotal = kShards * kPerShard;

std::string dir() {
  static const std::string d = testing_support::fresh_test_dir("loader_v2_test");
  return d;
}

// Smooth colours with a few hard edges: crops of different boxes differ.
RgbImage synthetic(int h, int w, uint64_t seed) {
  RgbImage im;
  im.height = h, im.width = w;
  im.pixels.resize(size_t(h) * w * 3);
  const Philox4x32 r = philox_block(seed, 0, 0);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        im.pixels[(size_t(y) * w + x) * 3 + c] =
            uint8_t((x * (3 + c) + y * (r.v[c] % 7) + ((x / 9 + y / 5) % 2) * 90 + r.v[3]) % 256);
  return im;
}

std::vector<uint8_t> png_bytes(const RgbImage& im, const std::string& name) {
  const std::string path = dir() + "/" + name;
  EXPECT_TRUE(write_png(path, im).ok());
  auto b = read_file_bytes(path);
  EXPECT_TRUE(b.ok());
  return *b;
}

// kShards shards of JPEGs of sizes 40..170 (so crops at 32 use k = 1, 2, 4); `bad` (shard,
// index) gets bytes that are not an image.
std::vector<std::string> write_jpeg_shards(const std::string& stem, SampleRef bad = {-1, -1}) {
  std::vector<std::string> paths;
  for (int s = 0; s < kShards; ++s) {
    ShardWriterOptions o;
    o.format_version = shard::kEncodedVersion;
    o.labels = true;
    o.image_chunk = 16;
    const std::string path = absl::StrCat(dir(), "/", stem, "-", s, ".h5");
    auto w = ShardWriter::create(path, o);
    EXPECT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < kPerShard; ++i) {
      const int h = 40 + (i * 37 + s * 11) % 131, wd = 40 + (i * 53 + s * 7) % 131;
      const RgbImage im = synthetic(h, wd, uint64_t(s * 1000 + i));
      auto jpeg = encode_jpeg(im, 90);
      EXPECT_TRUE(jpeg.ok());
      if (s == bad.shard && i == bad.index) *jpeg = std::vector<uint8_t>(300, 0x5a);
      SampleToWrite t;
      t.caption = absl::StrCat("s", s, " i", i);
      t.label = i % 5;
      t.encoded = *jpeg;
      t.height = h, t.width = wd, t.original_height = h, t.original_width = wd;
      EXPECT_TRUE((*w)->append(t).ok());
    }
    EXPECT_TRUE((*w)->finish().ok());
    paths.push_back(path);
  }
  return paths;
}

SampleRef order(int64_t position) {
  const int64_t k = (position * 97 + 13) % kTotal;
  return {int32_t(k / kPerShard), k % kPerShard};
}

constexpr int S = 32;
constexpr int64_t kEpoch = 96;  // positions per epoch, for the crop key

CropBox crop_of(int64_t position, SampleRef ref, int h, int w) {
  AugmentConfig c;
  return sample_crop(h, w, c, {5, position / kEpoch, ref.shard * kPerShard + ref.index});
}

LoaderOptions options(int threads) {
  LoaderOptions o;
  o.threads = threads;
  o.stride = 24;
  o.decode.out_size = S;
  o.decode.crop = crop_of;
  return o;
}

std::vector<uint8_t> rows(const Loader::Order& ord, LoaderOptions o,
                          const std::vector<std::string>& paths, int64_t first, int64_t count) {
  Loader loader(paths, ord, o);
  auto b = loader.get(first, count);
  EXPECT_TRUE(b.ok()) << b.status();
  if (!b.ok()) return {};
  EXPECT_EQ((*b)->resolution, S);
  EXPECT_EQ((*b)->images.size(), size_t(count) * S * S * 3);
  return std::vector<uint8_t>((*b)->images.begin(), (*b)->images.end());
}

TEST(LoaderV2, RowsAreDecodeCropOfTheirSampleForAnyThreadCountAndRankSplit) {
  const auto paths = write_jpeg_shards("jpeg");
  const int64_t first = 90, G = 24;  // crosses the epoch boundary at 96
  const std::vector<uint8_t> one = rows(order, options(1), paths, first, G);
  ASSERT_EQ(rows(order, options(3), paths, first, G), one);
  // Data parallel: ranks of 2 and 3 ask for their slices of the same global batch.
  for (int dp : {2, 3}) {
    std::vector<uint8_t> joined;
    for (int r = 0; r < dp; ++r) {
      auto part = rows(order, options(2), paths, first + r * (G / dp), G / dp);
      joined.insert(joined.end(), part.begin(), part.end());
    }
    ASSERT_EQ(joined, one) << dp << " ranks";
  }
  // The slow path: read each sample alone and decode it here.
  DecodeScratch scratch;
  std::set<int> ks;
  for (int64_t i = 0; i < G; ++i) {
    const SampleRef ref = order(first + i);
    auto r = ShardReader::open(paths[ref.shard]);
    ASSERT_TRUE(r.ok());
    auto s = (*r)->read(ref.index, 1);
    ASSERT_TRUE(s.ok());
    const int h = s->image_sizes[0], w = s->image_sizes[1];
    const CropBox box = crop_of(first + i, ref, h, w);
    ks.insert(crop_reduction(box, S));
    std::vector<uint8_t> want(S * S * 3);
    ASSERT_TRUE(decode_crop(s->encoded(0), h, w, box, S, want.data(), &scratch, "x").ok());
    ASSERT_EQ(0, std::memcmp(one.data() + i * S * S * 3, want.data(), want.size())) << i;
  }
  EXPECT_GE(ks.size(), 2u);  // full-size and DCT-scaled decodes both occur
}

// The same S x S pixels as a version 1 shard and as PNGs in a version 2 shard: the centre crop
// gives the pixels themselves, and random crops give version 1's augmentation rounded to uint8.
TEST(LoaderV2, Version1PixelsAndTheSamePixelsEncodedGiveTheSameInputs) {
  ShardWriterOptions o1;
  o1.resolution = S;
  ShardWriterOptions o2;
  o2.format_version = shard::kEncodedVersion;
  auto w1 = ShardWriter::create(dir() + "/v1.h5", o1);
  auto w2 = ShardWriter::create(dir() + "/v2.h5", o2);
  ASSERT_TRUE(w1.ok() && w2.ok());
  constexpr int n = 40;
  for (int i = 0; i < n; ++i) {
    const RgbImage im = synthetic(S, S, uint64_t(77 + i));
    const auto png = png_bytes(im, absl::StrCat("p", i, ".png"));
    SampleToWrite t;
    t.caption = "c";
    t.image = im.pixels;
    ASSERT_TRUE((*w1)->append(t).ok());
    t.image = {};
    t.encoded = png;
    t.height = t.width = t.original_height = t.original_width = S;
    ASSERT_TRUE((*w2)->append(t).ok());
  }
  ASSERT_TRUE((*w1)->finish().ok() && (*w2)->finish().ok());
  auto ord = [](int64_t p) { return SampleRef{0, (p * 7 + 3) % n}; };
  for (bool random : {false, true}) {
    AugmentConfig ac;
    ac.out_size = S;
    ac.random_crop = random;
    for (int c = 0; c < 3; ++c) ac.mean[c] = 0, ac.std[c] = 1.0f / 255.0f;  // pixel units
    auto key = [](int64_t p, SampleRef ref) { return AugmentKey{9, p / 16, ref.index}; };
    // Version 1, as train/shard_data.cc augments: floats from the pixels.
    Loader v1({dir() + "/v1.h5"}, ord, LoaderOptions{}, [&](SampleBatch& b) {
      b.pixels.resize(b.images.size());
      for (int64_t i = 0; i < b.count; ++i)
        augment_image(b.images.data() + i * S * S * 3, S, S, ac, key(b.first + i, b.refs[i]),
                      b.pixels.data() + i * S * S * 3);
    });
    LoaderOptions lo;
    lo.decode.out_size = S;
    lo.decode.crop = [&](int64_t p, SampleRef ref, int h, int w) {
      return sample_crop(h, w, ac, key(p, ref));
    };
    Loader v2({dir() + "/v2.h5"}, ord, lo);
    auto a = v1.get(10, 30);
    auto b = v2.get(10, 30);
    ASSERT_TRUE(a.ok() && b.ok());
    const auto& pa = (*a)->pixels;
    const auto& pb = (*b)->images;
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pb.size(); ++i) {
      if (!random) {
        ASSERT_EQ(pb[i], (*a)->images[i]) << i;  // the centre crop is the image
      }
      ASSERT_NEAR(float(pb[i]), pa[i], 0.5f + 1e-3f) << "random " << random << " value " << i;
    }
  }
}

TEST(LoaderV2, CorruptSampleIsAnErrorNamingShardAndSample) {
  const auto paths = write_jpeg_shards("bad", {1, 5});
  Loader loader(
      paths,
      [](int64_t p) {
        return SampleRef{int32_t(p / kPerShard), p % kPerShard};
      },
      options(2));
  ASSERT_TRUE(loader.get(0, 16).ok());
  auto bad = loader.get(kPerShard, 16);  // shard 1, samples 0..15
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              AllOf(HasSubstr(paths[1]), HasSubstr("sample 5"), HasSubstr("neither PNG nor JPEG")));
  // Without an output size the loader cannot decode: refused by name, not guessed.
  Loader bare(paths, order, LoaderOptions{});
  auto none = bare.get(0, 4);
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("holds encoded images"));
}

}  // namespace
}  // namespace tessera::data
