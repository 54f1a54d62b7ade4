#include "data_pipeline/image_decode.h"

#include <gtest/gtest.h>

// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <cstdio>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/support/reference.h"

namespace tessera::data {
namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string fixture(const std::string& name) {
  return tessera::testing::source_path("tests/data/images/" + name);
}

RgbImage make_image(int h, int w, auto&& value) {
  RgbImage im;
  im.height = h;
  im.width = w;
  im.pixels.resize(size_t(h) * w * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) im.pixels[(size_t(y) * w + x) * 3 + c] = uint8_t(value(y, x, c));
  return im;
}

// --- PNG: fixtures written by tests/data/make_image_fixtures.py (numpy + zlib), expected
// pixels computed there independently, compared exactly. -----------------------------------

class PngFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(PngFixture, DecodesToTheExpectedRgbExactly) {
  const std::string name = GetParam();
  auto image = read_image_file(fixture(name + ".png"));
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->height, 5);
  EXPECT_EQ(image->width, 7);
  const std::vector<uint8_t> expected = read_bytes(fixture(name + ".rgb"));
  ASSERT_EQ(image->pixels.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(int(image->pixels[i]), int(expected[i]))
        << name << " pixel " << i / 3 << " channel " << i % 3;
  }
}

INSTANTIATE_TEST_SUITE_P(ColourTypes, PngFixture,
                         ::testing::Values("rgb8", "rgba8", "gray8", "gray_alpha8", "palette2_trns",
                                           "rgb16"));

TEST(Png, TransparentPixelBecomesWhite) {
  // rgba8's pixel (0,0) has alpha 0 whatever its colour.
  auto image = read_image_file(fixture("rgba8.png"));
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->at(0, 0)[0], 255);
  EXPECT_EQ(image->at(0, 0)[1], 255);
  EXPECT_EQ(image->at(0, 0)[2], 255);
}

TEST(Png, CorruptDataIsAnErrorNamingTheInput) {
  std::vector<uint8_t> bytes = read_bytes(fixture("rgb8.png"));
  // Flip a byte inside the IDAT payload: its CRC no longer matches.
  std::vector<uint8_t> flipped = bytes;
  flipped[bytes.size() - 20] ^= 0x5A;
  auto a = decode_image(flipped, "shard-3/sample-17");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("shard-3/sample-17"), std::string::npos) << a.status();

  // Truncated inside IDAT.
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + bytes.size() / 2);
  auto b = decode_png(cut, "cut.png");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("cut.png"), std::string::npos) << b.status();

  // Not an image at all.
  const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  auto c = decode_image(text, "notes.txt");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("notes.txt"), std::string::npos) << c.status();
}

TEST(Png, MissingFileIsNotFoundNamingThePath) {
  auto r = read_image_file("/nonexistent/dir/x.png");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/dir/x.png"), std::string::npos);
}

// --- JPEG: encoded here with libjpeg at high quality, decoded, compared within tolerance
// (JPEG is lossy; chroma subsampling and DCT quantisation move smooth images by a few
// levels). ------------------------------------------------------------------------------

std::vector<uint8_t> encode_jpeg(const RgbImage& im, bool gray, int quality) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buf, &size);
  cinfo.image_width = im.width;
  cinfo.image_height = im.height;
  cinfo.input_components = gray ? 1 : 3;
  cinfo.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<uint8_t> row(im.width * 3);
  while (cinfo.next_scanline < cinfo.image_height) {
    const int y = cinfo.next_scanline;
    for (int x = 0; x < im.width; ++x)
      for (int c = 0; c < (gray ? 1 : 3); ++c) row[x * (gray ? 1 : 3) + c] = im.at(y, x)[c];
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(buf, buf + size);
  jpeg_destroy_compress(&cinfo);
  free(buf);
  return out;
}

TEST(Jpeg, DecodesColourWithinTolerance) {
  const RgbImage src = make_image(24, 40, [](int y, int x, int c) {
    return c == 0 ? x * 6 : c == 1 ? y * 10 : 128 + (x - y);
  });
  const auto bytes = encode_jpeg(src, /*gray=*/false, 95);
  auto image = decode_image(bytes, "gradient.jpg");
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->height, 24);
  ASSERT_EQ(image->width, 40);
  double sum = 0;
  int worst = 0;
  for (size_t i = 0; i < src.pixels.size(); ++i) {
    const int d = std::abs(int(image->pixels[i]) - int(src.pixels[i]));
    sum += d;
    worst = std::max(worst, d);
  }
  EXPECT_LE(worst, 12);
  EXPECT_LE(sum / src.pixels.size(), 2.0);
}

TEST(Jpeg, GrayscaleBecomesEqualChannels) {
  const RgbImage src = make_image(16, 16, [](int y, int x, int) { return 8 * x + 4 * y; });
  auto image = decode_jpeg(encode_jpeg(src, /*gray=*/true, 95), "gray.jpg");
  ASSERT_TRUE(image.ok()) << image.status();
  for (int y = 0; y < 16; ++y) {
    for (int x = 0; x < 16; ++x) {
      const uint8_t* p = image->at(y, x);
      EXPECT_EQ(p[0], p[1]);
      EXPECT_EQ(p[1], p[2]);
      EXPECT_NEAR(p[0], src.at(y, x)[0], 6) << y << "," << x;
    }
  }
}

TEST(Jpeg, CorruptHeaderIsAnErrorNamingTheInput) {
  const RgbImage src = make_image(8, 8, [](int, int, int) { return 100; });
  auto bytes = encode_jpeg(src, false, 90);
  bytes.resize(24);  // SOI and part of the first marker segment: no frame header
  auto r = decode_image(bytes, "photos/broken.jpg");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("photos/broken.jpg"), std::string::npos) << r.status();
}

// --- resize + centre crop geometry ------------------------------------------------------

TEST(Resize, SquareInputOfTargetSizeIsUnchanged) {
  const RgbImage src = make_image(6, 6, [](int y, int x, int c) { return y * 40 + x * 5 + c; });
  EXPECT_EQ(resize_and_center_crop(src, 6).pixels, src.pixels);
}

TEST(Resize, ShortSideAlreadyRightOnlyCropsTheCentre) {
  // 4 x 12 -> 4 x 4: columns 4..7. 4 x 7 -> columns 1..4 (odd excess drops the right pixel).
  for (int w : {12, 7}) {
    const RgbImage src = make_image(4, w, [](int y, int x, int c) { return y * 50 + x * 3 + c; });
    const RgbImage out = resize_and_center_crop(src, 4);
    const int off = (w - 4) / 2;
    ASSERT_EQ(out.width, 4);
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x)
        for (int c = 0; c < 3; ++c) EXPECT_EQ(out.at(y, x)[c], src.at(y, x + off)[c]);
  }
  // Tall images crop rows the same way.
  const RgbImage tall = make_image(9, 3, [](int y, int x, int c) { return y * 20 + x + c; });
  const RgbImage out = resize_and_center_crop(tall, 3);
  for (int y = 0; y < 3; ++y) EXPECT_EQ(out.at(y, 0)[0], tall.at(y + 3, 0)[0]);
}

TEST(Resize, ShrinkAveragesAreasAndCropsTheCentre) {
  // 10 x 30 -> shorter side 5: 15 wide (factor 2 both ways), then columns 5..9 of the 15,
  // i.e. source columns 10..19. Each output pixel is the rounded mean of a 2 x 2 block.
  const RgbImage src =
      make_image(10, 30, [](int y, int x, int c) { return (y * 31 + x * 7 + c * 50) % 256; });
  const RgbImage out = resize_and_center_crop(src, 5);
  ASSERT_EQ(out.height, 5);
  ASSERT_EQ(out.width, 5);
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 5; ++x) {
      for (int c = 0; c < 3; ++c) {
        int s = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) s += src.at(2 * y + dy, 10 + 2 * x + dx)[c];
        EXPECT_NEAR(out.at(y, x)[c], s / 4.0, 0.5 + 1e-3) << y << "," << x << "," << c;
      }
    }
  }
}

TEST(Resize, FractionalShrinkWeighsPartialPixels) {
  // 3 x 3 -> 2 x 2 (scale 1.5): output column 0 covers source [0, 1.5), i.e. pixel 0 fully
  // and half of pixel 1: (v0 + 0.5 v1) / 1.5; column 1 covers [1.5, 3).
  const RgbImage src = make_image(3, 3, [](int, int x, int) {
    return x == 0 ? 90 : x == 1 ? 30 : 210;
  });
  const RgbImage out = resize_and_center_crop(src, 2);
  EXPECT_EQ(out.at(0, 0)[0], 70);   // (90 + 15) / 1.5
  EXPECT_EQ(out.at(1, 1)[2], 150);  // (15 + 210) / 1.5
}

TEST(Resize, EnlargeIsBilinearWithHalfPixelCentres) {
  // 2 x 2 -> 4 x 4; a horizontal ramp 0, 100 samples at x = -0.25 (clamped), 0.25, 0.75,
  // 1.25 (clamped): 0, 25, 75, 100 on every row.
  const RgbImage src = make_image(2, 2, [](int, int x, int) { return x * 100; });
  const RgbImage out = resize_and_center_crop(src, 4);
  const int want[4] = {0, 25, 75, 100};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) EXPECT_EQ(out.at(y, x)[1], want[x]) << y << "," << x;
}

TEST(Resize, ConstantImageStaysConstantAtAnyScale) {
  const RgbImage src = make_image(23, 37, [](int, int, int c) { return 17 + 100 * c; });
  for (int size : {1, 5, 10, 23, 40}) {
    const RgbImage out = resize_and_center_crop(src, size);
    ASSERT_EQ(out.pixels.size(), size_t(size) * size * 3);
    for (size_t i = 0; i < out.pixels.size(); ++i)
      ASSERT_EQ(out.pixels[i], 17 + 100 * (i % 3)) << "size " << size << " byte " << i;
  }
}

}  // namespace
}  // namespace tessera::data
