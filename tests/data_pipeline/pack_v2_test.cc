// tessera pack into format version 2 (pack_images with format_version 2): inputs within
// --max-side are stored byte for byte, larger ones shrunk to max_side and re-encoded as JPEG
// (original sizes kept), and inputs the loader could not decode (truncated JPEG, CMYK JPEG,
// not an image, truncated WebP) are skipped and listed, never stored. A WebP within --max-side
// is stored as it is and the Loader's rows of it are decode_crop of the original file; a larger
// WebP becomes a JPEG like the others. Images from tests/reference/decode_crop_pil.py (Pillow).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "data_pipeline/decode_crop.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/loader.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_reader.h"
#include "tests/data_pipeline/shard_fixtures.h"
#include "tests/support/reference.h"

namespace tessera::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(PackV2, StoresInputsAsTheyAreOrShrunkAndSkipsWhatCannotBeDecoded) {
  const std::string dir = testing_support::fresh_test_dir("pack_v2_test");
  const std::string cmd =
      absl::StrCat("/usr/bin/python3 ", testing::source_path("tests/reference/decode_crop_pil.py"),
                   " make ", dir, "/in");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ofstream(dir + "/in/garbage.webp") << "RIFF....WEBPVP8 not really";
  // name -> (stored as is?, height, width)
  const std::map<std::string, std::tuple<bool, int, int>> good = {
      {"photo.jpg", {false, 283, 397}},      {"gray.jpg", {false, 283, 397}},
      {"rgb.png", {false, 257, 301}},        {"gray16.png", {true, 120, 150}},
      {"rgba.png", {true, 140, 90}},         {"big.jpg", {false, 911, 1203}},
      {"alpha_lossy.webp", {true, 140, 90}}, {"lossless.webp", {false, 283, 397}},
      {"big.webp", {false, 700, 1000}}};
  const std::vector<std::string> bad = {"truncated.jpg", "cmyk.jpg", "garbage.webp",
                                        "truncated.webp"};
  {
    std::ofstream index(dir + "/index.jsonl");
    for (const auto& [name, _] : good)
      index << "{\"path\": \"in/" << name << "\", \"caption\": \"a " << name << "\"}\n";
    for (const auto& name : bad)
      index << "{\"path\": \"in/" << name << "\", \"caption\": \"a " << name << "\"}\n";
  }
  PackOptions o;
  o.index_path = dir + "/index.jsonl";
  o.out_dir = dir + "/out";
  o.format_version = 2;
  o.max_side = 200;
  o.quality = 85;
  o.val_fraction = 0;
  auto report = pack_images(o);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->skipped.size(), bad.size());
  std::map<std::string, std::string> reasons;
  for (const auto& s : report->skipped) reasons[s.path] = s.reason;
  EXPECT_THAT(reasons["in/truncated.jpg"], HasSubstr("corrupt or truncated"));
  EXPECT_THAT(reasons["in/cmyk.jpg"], HasSubstr("in/cmyk.jpg"));
  EXPECT_THAT(reasons["in/garbage.webp"],
              AllOf(HasSubstr("in/garbage.webp"), HasSubstr("corrupt WebP")));
  EXPECT_THAT(reasons["in/truncated.webp"],
              AllOf(HasSubstr("in/truncated.webp"), HasSubstr("truncated")));

  auto m = load_manifest(dir + "/out/train.pbtxt");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->format_version(), 2);
  EXPECT_EQ(m->resolution(), 200);
  ASSERT_EQ(m->num_samples(), int64_t(good.size()));
  auto r = ShardReader::open(dir + "/out/" + m->shards(0).path());
  ASSERT_TRUE(r.ok()) << r.status();
  auto rows = (*r)->read(0, (*r)->num_samples());
  ASSERT_TRUE(rows.ok()) << rows.status();
  int64_t webp_row = -1;
  for (int64_t i = 0; i < rows->count; ++i) {
    const std::string name = rows->captions[i].substr(2);
    if (name == "alpha_lossy.webp") webp_row = i;
    ASSERT_TRUE(good.count(name)) << name;
    const auto [as_is, h, w] = good.at(name);
    EXPECT_EQ(rows->original_sizes[2 * i], h) << name;
    EXPECT_EQ(rows->original_sizes[2 * i + 1], w) << name;
    const auto e = rows->encoded(i);
    auto decoded = decode_image(e, name);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->height, rows->image_sizes[2 * i]) << name;
    EXPECT_EQ(decoded->width, rows->image_sizes[2 * i + 1]) << name;
    auto file = read_file_bytes(dir + "/in/" + name);
    ASSERT_TRUE(file.ok());
    if (as_is) {
      EXPECT_EQ(std::vector<uint8_t>(e.begin(), e.end()), *file) << name << " stored byte for byte";
    } else {
      // Longer side -> 200, the other scaled alike and rounded; a JPEG now.
      const double f = 200.0 / std::max(h, w);
      EXPECT_EQ(rows->image_sizes[2 * i], int(std::lround(h * f))) << name;
      EXPECT_EQ(rows->image_sizes[2 * i + 1], int(std::lround(w * f))) << name;
      EXPECT_TRUE(e[0] == 0xFF && e[1] == 0xD8) << name;
      EXPECT_LT(e.size(), file->size()) << name;
    }
  }

  // The Loader (what training runs) on the stored WebP: a random crop and a centre crop, each
  // equal to decode_crop of the original file with the same box.
  ASSERT_GE(webp_row, 0);
  auto original = read_file_bytes(dir + "/in/alpha_lossy.webp");
  ASSERT_TRUE(original.ok());
  constexpr int S = 24;
  for (const bool random : {true, false}) {
    AugmentConfig a;
    a.random_crop = random;
    LoaderOptions lo;
    lo.threads = 2;
    lo.decode.out_size = S;
    lo.decode.crop = [&](int64_t position, SampleRef, int h, int w) {
      return sample_crop(h, w, a, {3, 0, position});
    };
    Loader loader(
        {dir + "/out/" + m->shards(0).path()},
        [&](int64_t) {
          return SampleRef{0, webp_row};
        },
        lo);
    auto batch = loader.get(0, 2);
    ASSERT_TRUE(batch.ok()) << batch.status();
    DecodeScratch scratch;
    for (int64_t p = 0; p < 2; ++p) {
      std::vector<uint8_t> want(S * S * 3);
      ASSERT_TRUE(decode_crop(*original, 140, 90, sample_crop(140, 90, a, {3, 0, p}), S,
                              want.data(), &scratch, "alpha_lossy.webp")
                      .ok());
      EXPECT_EQ(0, std::memcmp((*batch)->images.data() + p * S * S * 3, want.data(), want.size()))
          << "position " << p << (random ? " (random crop)" : " (centre crop)");
    }
  }
}

}  // namespace
}  // namespace tessera::data
