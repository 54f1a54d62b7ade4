// decode_crop (data_pipeline/decode_crop.h) against Pillow/numpy on the same bytes and crop
// boxes (tests/reference/decode_crop_pil.py states the reference and the tolerances): JPEG
// baseline, progressive, 4:4:4 and grayscale, DCT-scaled at 1/2, 1/4, 1/8; PNG RGB, palette,
// 16-bit and RGBA, box-reduced; WebP lossless, lossy and with alpha (decoded whole, then
// box-reduced as PNG), whole decodes compared too. Also: the reduction rule, agreement with version
// 1's augmentation at k = 1, and errors naming the sample (corrupt, truncated, CMYK, wrong size).
#include "data_pipeline/decode_crop.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <climits>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data_pipeline/augment.h"
#include "data_pipeline/image_decode.h"
#include "tests/data_pipeline/shard_fixtures.h"
#include "tests/support/reference.h"

namespace tessera::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

const std::string& images_dir() {
  static const std::string dir = [] {
    const std::string d = testing_support::fresh_test_dir("decode_crop_test");
    const std::string cmd =
        absl::StrCat("/usr/bin/python3 ",
                     testing::source_path("tests/reference/decode_crop_pil.py"), " make ", d);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return d;
  }();
  return dir;
}

std::vector<uint8_t> bytes_of(const std::string& name) {
  auto b = read_file_bytes(images_dir() + "/" + name);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *b : std::vector<uint8_t>{};
}

TEST(DecodeCrop, ReductionIsTheLargestPowerOfTwoKeepingTheCropAtLeastTheOutput) {
  EXPECT_EQ(crop_reduction({0, 0, 100, 100, false}, 224), 1);
  EXPECT_EQ(crop_reduction({0, 0, 447, 1000, false}, 224), 1);
  EXPECT_EQ(crop_reduction({0, 0, 448, 448, false}, 224), 2);
  EXPECT_EQ(crop_reduction({0, 0, 900, 1000, false}, 224), 4);
  EXPECT_EQ(crop_reduction({0, 0, 4000, 3000, false}, 224), 8);  // 8 at most
  EXPECT_EQ(crop_reduction({0, 0, 512, 512, false}, 64), 8);
}

TEST(DecodeCrop, MatchesPillowOnTheSameBytesAndBoxes) {
  const std::string dir = images_dir();
  struct Case {
    std::string file;
    int h, w;
  };
  const Case files[] = {
      {"photo.jpg", 283, 397},          {"progressive.jpg", 283, 397}, {"s444.jpg", 283, 397},
      {"gray.jpg", 283, 397},           {"big.jpg", 911, 1203},        {"rgb.png", 257, 301},
      {"palette.png", 257, 301},        {"gray16.png", 120, 150},      {"rgba.png", 140, 90},
      {"big.png", 700, 1000},           {"lossless.webp", 283, 397},   {"lossy.webp", 283, 397},
      {"alpha_lossless.webp", 140, 90}, {"alpha_lossy.webp", 140, 90}, {"big.webp", 700, 1000}};
  std::ofstream cases(dir + "/cases.txt");
  DecodeScratch scratch;
  int n = 0, reduced = 0;
  for (const Case& c : files) {
    const std::vector<uint8_t> bytes = bytes_of(c.file);
    std::vector<std::pair<CropBox, int>> boxes;
    AugmentConfig centre;
    centre.random_crop = false;
    boxes.push_back({sample_crop(c.h, c.w, centre, {}), 64});
    boxes.push_back({sample_crop(c.h, c.w, centre, {}), 224});
    boxes.push_back({sample_crop(c.h, c.w, centre, {}), 100});  // k = 2 from 911 or 700
    AugmentConfig random;
    for (int s = 0; s < 6; ++s)
      boxes.push_back({sample_crop(c.h, c.w, random, {7, s % 2, s}), s < 3 ? 32 : 96});
    boxes.push_back({CropBox{1, 2, c.h - 3, c.w - 5, true}, 48});  // odd edges, flipped
    for (const auto& [box, S] : boxes) {
      std::vector<uint8_t> out(size_t(S) * S * 3);
      absl::Status st = decode_crop(bytes, c.h, c.w, box, S, out.data(), &scratch, c.file);
      ASSERT_TRUE(st.ok()) << st;
      const std::string raw = absl::StrCat("out", n++, ".raw");
      std::ofstream(dir + "/" + raw, std::ios::binary)
          .write(reinterpret_cast<const char*>(out.data()), std::streamsize(out.size()));
      const int k = crop_reduction(box, S);
      reduced += k > 1;
      cases << c.file << ' ' << c.h << ' ' << c.w << ' ' << box.top << ' ' << box.left << ' '
            << box.height << ' ' << box.width << ' ' << int(box.flip) << ' ' << S << ' ' << k << ' '
            << raw << '\n';
    }
  }
  cases.close();
  EXPECT_GE(reduced, 10);  // DCT scaling and box reduction are exercised
  // Whole WebP decodes (decode_image's dispatch on RIFF....WEBP), compared pixel by pixel.
  std::ofstream decoded(dir + "/decoded.txt");
  for (const std::string file :
       {"lossless.webp", "lossy.webp", "alpha_lossless.webp", "alpha_lossy.webp"}) {
    auto image = decode_image(bytes_of(file), file);
    ASSERT_TRUE(image.ok()) << image.status();
    const std::string raw = absl::StrCat("decoded_", file, ".raw");
    std::ofstream(dir + "/" + raw, std::ios::binary)
        .write(reinterpret_cast<const char*>(image->pixels.data()),
               std::streamsize(image->pixels.size()));
    decoded << file << ' ' << image->height << ' ' << image->width << ' ' << raw << '\n';
  }
  decoded.close();
  const std::string cmd =
      absl::StrCat("/usr/bin/python3 ", testing::source_path("tests/reference/decode_crop_pil.py"),
                   " check ", dir);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// With k = 1 the crop samples exactly what version 1's augmentation samples from the same
// pixels: the uint8 result is crop_resize_normalise's value rounded (inputs stored as PNG, so
// decoding is exact).
TEST(DecodeCrop, AgreesWithVersion1AugmentationOnTheSamePixels) {
  const std::vector<uint8_t> png = bytes_of("rgb.png");
  auto pixels = decode_image(png, "rgb.png");
  ASSERT_TRUE(pixels.ok()) << pixels.status();
  AugmentConfig c;
  c.out_size = 40;
  for (int ch = 0; ch < 3; ++ch) c.mean[ch] = 0, c.std[ch] = 1.0f / 255.0f;  // identity
  DecodeScratch scratch;
  for (int s = 0; s < 20; ++s) {
    const CropBox box = sample_crop(257, 301, c, {11, 0, s});
    ASSERT_EQ(crop_reduction(box, 40) > 1, box.height >= 80 && box.width >= 80);
    if (crop_reduction(box, 40) > 1) continue;
    std::vector<float> v1(40 * 40 * 3);
    crop_resize_normalise(pixels->pixels.data(), 257, 301, box, c, v1.data());
    std::vector<uint8_t> v2(40 * 40 * 3);
    ASSERT_TRUE(decode_crop(png, 257, 301, box, 40, v2.data(), &scratch, "rgb.png").ok());
    for (size_t i = 0; i < v2.size(); ++i)
      ASSERT_NEAR(float(v2[i]), v1[i], 0.5f + 1e-3f) << "sample " << s << " value " << i;
  }
}

TEST(DecodeCrop, BadInputsAreErrorsNamingTheSample) {
  DecodeScratch scratch;
  std::vector<uint8_t> out(32 * 32 * 3);
  const CropBox box{0, 0, 100, 100, false};
  auto error = [&](std::span<const uint8_t> bytes, int h, int w) {
    absl::Status st =
        decode_crop(bytes, h, w, box, 32, out.data(), &scratch, "shard s.h5, sample 7");
    EXPECT_FALSE(st.ok());
    return std::string(st.message());
  };
  std::vector<uint8_t> garbage = bytes_of("photo.jpg");
  for (size_t i = 200; i < garbage.size(); i += 3) garbage[i] = uint8_t(i * 37);
  EXPECT_THAT(error(garbage, 283, 397),
              AllOf(HasSubstr("shard s.h5, sample 7"), HasSubstr("corrupt JPEG")));
  EXPECT_THAT(
      error(bytes_of("photo.jpg"), 300, 397),
      AllOf(HasSubstr("sample 7"), HasSubstr("the JPEG is 283x397, the shard records 300x397")));
  EXPECT_THAT(error(bytes_of("cmyk.jpg"), 283, 397),
              AllOf(HasSubstr("sample 7"), HasSubstr("CMYK")));
  EXPECT_THAT(error(bytes_of("rgb.png"), 257, 300), HasSubstr("the shard records 257x300"));
  const std::vector<uint8_t> text{'G', 'I', 'F', '8', '9', 'a', 0, 0};
  EXPECT_THAT(error(text, 283, 397), HasSubstr("neither PNG nor JPEG nor WebP"));
  EXPECT_THAT(error(bytes_of("lossy.webp"), 283, 390),
              AllOf(HasSubstr("sample 7"), HasSubstr("the shard records 283x390")));
  EXPECT_THAT(error(bytes_of("photo.jpg"), 50, 50), HasSubstr("outside the 50x50 image"));
  // A box whose end overflows int (found by tests/fuzz shard_v2): refused, not wrapped into
  // range and decoded.
  for (const CropBox far : {CropBox{1, 0, INT_MAX, 10, false}, CropBox{0, 1, 10, INT_MAX, false},
                            CropBox{INT_MAX, INT_MAX, INT_MAX, INT_MAX, false}}) {
    const absl::Status st = decode_crop(bytes_of("photo.jpg"), 283, 397, far, 32, out.data(),
                                        &scratch, "shard s.h5, sample 7");
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr("outside the 283x397 image"));
  }
  // The packer decodes every input once: a truncated JPEG (libjpeg only warns and fills gray) is
  // refused there, so it is skipped and listed instead of stored.
  auto truncated = decode_image(bytes_of("truncated.jpg"), "truncated.jpg");
  ASSERT_FALSE(truncated.ok());
  EXPECT_THAT(std::string(truncated.status().message()),
              AllOf(HasSubstr("truncated.jpg"), HasSubstr("corrupt or truncated")));
}

// WebP: a truncated file, a corrupt one, an animated one and one whose header claims more
// pixels than allowed are errors naming the input. huge.webp's header says 16383 x 16383 over
// a 397 x 283 bitstream: refused from the header ("exceeds"), not after a failed decode.
TEST(DecodeWebp, BadInputsAreErrorsNamingTheInput) {
  auto message = [](std::span<const uint8_t> bytes, std::string_view name,
                    int64_t max_pixels = shard::kMaxImagePixels) {
    auto image = decode_image(bytes, name, max_pixels);
    EXPECT_FALSE(image.ok()) << name;
    return image.ok() ? std::string() : std::string(image.status().message());
  };
  EXPECT_THAT(
      message(bytes_of("truncated.webp"), "in/truncated.webp"),
      AllOf(HasSubstr("in/truncated.webp"), HasSubstr("corrupt WebP"), HasSubstr("truncated")));
  // Lossless data is entropy-coded with checks that scrambled bytes fail; lossy (VP8) data has
  // none (as JPEG's coefficients), so there a broken frame header stands for corruption.
  std::vector<uint8_t> garbage = bytes_of("lossless.webp");
  for (size_t i = 40; i < garbage.size(); i += 3) garbage[i] = uint8_t(i * 37);
  EXPECT_THAT(message(garbage, "shard s.h5, sample 3"),
              AllOf(HasSubstr("shard s.h5, sample 3"), HasSubstr("corrupt WebP")));
  std::vector<uint8_t> bad_header = bytes_of("lossy.webp");
  ASSERT_EQ(bad_header[23], 0x9d);  // the VP8 start code 9d 01 2a
  bad_header[23] = 0;
  EXPECT_THAT(message(bad_header, "sample 4"),
              AllOf(HasSubstr("sample 4"), HasSubstr("corrupt WebP: bitstream error")));
  EXPECT_THAT(message(bytes_of("animated.webp"), "a.webp"),
              AllOf(HasSubstr("a.webp"), HasSubstr("animated WebP")));
  // A still WebP holds at most 16383 x 16383 pixels (14-bit fields), under the default limit,
  // so the refusal is shown with a lower one (the parameter the shard reader passes).
  EXPECT_THAT(message(bytes_of("huge.webp"), "huge.webp", int64_t{1} << 26),
              AllOf(HasSubstr("huge.webp"),
                    HasSubstr("image 16383x16383 exceeds the 67108864-pixel limit")));
  EXPECT_THAT(message(bytes_of("lossless.webp"), "small limit", 397 * 283 - 1),
              HasSubstr("image 397x283 exceeds"));
  // A file within the limit decodes (the limit is inclusive).
  EXPECT_TRUE(decode_image(bytes_of("lossless.webp"), "ok", 397 * 283).ok());
}

// Alpha is composited onto white as for PNG: the RGBA test image's first column is fully
// transparent (alpha ramps 0..255 left to right), so it decodes to white.
TEST(DecodeWebp, TransparentPixelsBecomeWhite) {
  for (const std::string file : {"alpha_lossless.webp", "alpha_lossy.webp"}) {
    auto image = decode_image(bytes_of(file), file);
    ASSERT_TRUE(image.ok()) << image.status();
    ASSERT_EQ(image->height, 140);
    ASSERT_EQ(image->width, 90);
    for (int y = 0; y < image->height; ++y)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(int(image->at(y, 0)[c]), 255) << file << " row " << y;
  }
}

}  // namespace
}  // namespace tessera::data
