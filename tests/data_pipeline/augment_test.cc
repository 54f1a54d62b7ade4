// Augmentation: crop/flip/resize geometry on gradient images whose pixel values say where they
// came from, and Philox keying (same key, same pixels; another seed/epoch/sample, other pixels).
#include "data_pipeline/augment.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <set>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/philox.h"

namespace tessera::data {

void PrintTo(const CropBox& b, std::ostream* os) {
  *os << "{" << b.top << ", " << b.left << ", " << b.height << ", " << b.width << ", "
      << (b.flip ? "true" : "false") << "}";
}

namespace {

constexpr int H = 24, W = 32;

// Channel 0 = 4*row, channel 1 = 4*column, channel 2 = 7: linear, so bilinear resizing
// reproduces it exactly away from the clamped edges.
std::vector<uint8_t> gradient() {
  std::vector<uint8_t> img(size_t(H) * W * 3);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      img[size_t(y * W + x) * 3 + 0] = uint8_t(4 * y);
      img[size_t(y * W + x) * 3 + 1] = uint8_t(4 * x);
      img[size_t(y * W + x) * 3 + 2] = 7;
    }
  return img;
}

// mean 0, std 1: out * 255 is the interpolated pixel value.
AugmentConfig plain(int S) {
  AugmentConfig c;
  c.out_size = S;
  for (int ch = 0; ch < 3; ++ch) {
    c.mean[ch] = 0;
    c.std[ch] = 1;
  }
  return c;
}

std::vector<float> run(const std::vector<uint8_t>& img, CropBox box, int S) {
  std::vector<float> out(size_t(S) * S * 3);
  crop_resize_normalise(img.data(), H, W, box, plain(S), out.data());
  return out;
}

float px(const std::vector<float>& out, int S, int y, int x, int ch) {
  return out[size_t(y * S + x) * 3 + ch] * 255.0f;
}

TEST(Augment, CropAtTheOutputSizeCopiesTheRegion) {
  const std::vector<float> out = run(gradient(), CropBox{3, 5, 8, 8, false}, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) {
      EXPECT_NEAR(px(out, 8, y, x, 0), 4 * (3 + y), 1e-3) << y << "," << x;
      EXPECT_NEAR(px(out, 8, y, x, 1), 4 * (5 + x), 1e-3) << y << "," << x;
      EXPECT_NEAR(px(out, 8, y, x, 2), 7, 1e-3);
    }
}

TEST(Augment, FlipMirrorsColumnsOnly) {
  const std::vector<float> out = run(gradient(), CropBox{3, 5, 8, 8, true}, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) {
      EXPECT_NEAR(px(out, 8, y, x, 0), 4 * (3 + y), 1e-3) << y << "," << x;
      EXPECT_NEAR(px(out, 8, y, x, 1), 4 * (5 + 7 - x), 1e-3) << y << "," << x;
    }
}

TEST(Augment, ResizeSamplesAtHalfPixelCentres) {
  // 16 -> 8: output i reads source 2i + 0.5 of the crop.
  const std::vector<float> down = run(gradient(), CropBox{2, 4, 16, 16, false}, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) {
      EXPECT_NEAR(px(down, 8, y, x, 0), 4 * (2 + 2 * y + 0.5), 1e-3) << y << "," << x;
      EXPECT_NEAR(px(down, 8, y, x, 1), 4 * (4 + 2 * x + 0.5), 1e-3) << y << "," << x;
    }
  // 4 -> 8: output i reads source i/2 - 0.25, clamped to the crop [0, 3] at the edges.
  const std::vector<float> up = run(gradient(), CropBox{10, 20, 4, 4, false}, 8);
  for (int i = 0; i < 8; ++i) {
    const double src = std::clamp(0.5 * i - 0.25, 0.0, 3.0);
    EXPECT_NEAR(px(up, 8, i, 0, 0), 4 * (10 + src), 1e-3) << i;
    EXPECT_NEAR(px(up, 8, 0, i, 1), 4 * (20 + src), 1e-3) << i;
  }
}

TEST(Augment, NormalisesPerChannel) {
  AugmentConfig c = plain(8);
  c.mean[0] = 0.5f;
  c.std[0] = 0.25f;
  const std::vector<uint8_t> img = gradient();
  std::vector<float> out(8 * 8 * 3);
  crop_resize_normalise(img.data(), H, W, CropBox{3, 5, 8, 8, false}, c, out.data());
  EXPECT_NEAR(out[(2 * 8 + 1) * 3 + 0], (4 * 5 / 255.0 - 0.5) / 0.25, 1e-5);
  EXPECT_NEAR(out[(2 * 8 + 1) * 3 + 1], 4 * 6 / 255.0, 1e-5);
}

std::vector<uint8_t> noise(int h, int w) {
  std::vector<uint8_t> img(size_t(h) * w * 3);
  for (size_t i = 0; i < img.size(); ++i) img[i] = uint8_t(philox_block(99, 0, i).v[0]);
  return img;
}

TEST(Augment, SameKeySamePixelsOtherKeysOtherPixels) {
  const std::vector<uint8_t> img = noise(40, 48);
  AugmentConfig c;
  c.out_size = 16;
  auto pixels = [&](AugmentKey k) {
    std::vector<float> out(16 * 16 * 3);
    augment_image(img.data(), 40, 48, c, k, out.data());
    return out;
  };
  const std::vector<float> base = pixels({1, 0, 5});
  EXPECT_EQ(pixels({1, 0, 5}), base);  // bitwise: a resumed run sees the same pixels
  EXPECT_NE(pixels({2, 0, 5}), base) << "seed ignored";
  EXPECT_NE(pixels({1, 1, 5}), base) << "epoch ignored";
  EXPECT_NE(pixels({1, 0, 6}), base) << "sample ignored";
  // augment_image is exactly sample_crop + crop_resize_normalise.
  std::vector<float> split(16 * 16 * 3);
  crop_resize_normalise(img.data(), 40, 48, sample_crop(40, 48, c, {1, 0, 5}), c, split.data());
  EXPECT_EQ(split, base);
}

TEST(Augment, RandomCropsRespectScaleRatioAndBounds) {
  AugmentConfig c;
  c.out_size = 16;
  std::set<std::tuple<int, int, int, int>> distinct;
  int flips = 0, in_range = 0;
  const int n = 2000;
  for (int s = 0; s < n; ++s) {
    const CropBox b = sample_crop(H, W, c, {3, 2, s});
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_GT(b.height, 0);
    ASSERT_GT(b.width, 0);
    ASSERT_LE(b.top + b.height, H);
    ASSERT_LE(b.left + b.width, W);
    const double area = double(b.height) * b.width / (H * W), ratio = double(b.width) / b.height;
    // Rounding to whole pixels moves small crops a little outside the drawn ranges.
    in_range += area >= 0.08 * 0.7 && area <= 1.0 && ratio >= 0.75 * 0.8 && ratio <= 4.0 / 3 * 1.25;
    flips += b.flip;
    distinct.insert({b.top, b.left, b.height, b.width});
  }
  EXPECT_EQ(in_range, n);
  EXPECT_GT(flips, n * 45 / 100);
  EXPECT_LT(flips, n * 55 / 100);
  EXPECT_GT(distinct.size(), size_t(n / 4));
  c.flip = false;
  for (int s = 0; s < 100; ++s) EXPECT_FALSE(sample_crop(H, W, c, {3, 2, s}).flip);
}

TEST(Augment, EvaluationTakesTheCentreSquare) {
  AugmentConfig c;
  c.out_size = 16;
  c.random_crop = false;
  EXPECT_EQ(sample_crop(H, W, c, {1, 0, 0}), (CropBox{0, 4, 24, 24, false}));
  EXPECT_EQ(sample_crop(W, H, c, {1, 0, 0}), (CropBox{4, 0, 24, 24, false}));
}

// Pinned: the crops are part of what a resumed run must reproduce across builds.
TEST(Augment, CropIsPinned) {
  AugmentConfig c;
  c.out_size = 16;
  EXPECT_EQ(sample_crop(H, W, c, {0, 0, 0}), (CropBox{0, 1, 22, 27, true}));
  EXPECT_EQ(sample_crop(H, W, c, {0, 3, 17}), (CropBox{6, 4, 14, 13, false}));
}

TEST(Augment, BadInputsNameTheProblem) {
  const std::vector<uint8_t> img = gradient();
  std::vector<float> out(8 * 8 * 3);
  auto expect_error = [](auto&& fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected one containing: " << part;
    } catch (const tessera::Error& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(part));
    }
  };
  expect_error(
      [&] {
        crop_resize_normalise(img.data(), H, W, CropBox{20, 0, 8, 8, false}, plain(8), out.data());
      },
      "crop (top 20, left 0, 8x8) is outside the 24x32 image");
  expect_error(
      [&] {
        crop_resize_normalise(img.data(), H, W, CropBox{0, 0, 8, 8, false}, plain(0), out.data());
      },
      "out_size must be positive, got 0");
  expect_error(
      [&] {
        sample_crop(0, 10, plain(8), {0, 0, 42});
      },
      "sample 42 has an empty image (0x10)");
  AugmentConfig bad = plain(8);
  bad.scale_min = 0;
  expect_error([&] { sample_crop(H, W, bad, {0, 0, 1}); }, "scale range [0, 1]");
}

}  // namespace
}  // namespace tessera::data

namespace tessera::data {
namespace {

// normalise_pixels (the trainer's per-batch path) equals AugmentConfig's formula
// (pixel / 255 - mean) / std for every value and channel.
TEST(Augment, NormalisePixelsEqualsTheConfigFormula) {
  AugmentConfig c;
  float scale[3], bias[3];
  for (int ch = 0; ch < 3; ++ch) {
    scale[ch] = 1.0f / (255.0f * c.std[ch]);
    bias[ch] = -c.mean[ch] / c.std[ch];
  }
  std::vector<uint8_t> in(256 * 3);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i / 3);
  std::vector<float> out(in.size());
  normalise_pixels(in.data(), 256, scale, bias, out.data());
  for (size_t i = 0; i < in.size(); ++i) {
    const double want = (in[i] / 255.0 - c.mean[i % 3]) / c.std[i % 3];
    EXPECT_NEAR(out[i], want, 2e-6) << i;
  }
}

// The vectorised runs give exactly the per-value multiply and add, at any pixel count (runs of
// 16 pixels plus a remainder).
TEST(Augment, NormalisePixelsExactAtAnyLength) {
  const float scale[3] = {0.0146f, 0.0150f, 0.0142f}, bias[3] = {-1.79f, -1.75f, -1.48f};
  std::vector<uint8_t> in(103 * 3);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i * 37 + 11);
  for (int64_t pixels : {0, 1, 15, 16, 17, 33, 103}) {
    std::vector<float> out(in.size(), -7.0f);
    normalise_pixels(in.data(), pixels, scale, bias, out.data());
    for (size_t i = 0; i < in.size(); ++i) {
      const float want = i < size_t(pixels * 3) ? float(in[i]) * scale[i % 3] + bias[i % 3] : -7.0f;
      ASSERT_EQ(out[i], want) << pixels << " pixels, value " << i;
    }
  }
}

}  // namespace
}  // namespace tessera::data
