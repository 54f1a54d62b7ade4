// Contact sheets: every tile is its image exactly, gaps are white, and the PNG written through
// libpng reads back to the same pixels; an unwritable path is an error naming it.

#include "data_pipeline/contact_sheet.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"

namespace tessera::data {
namespace {

TEST(ContactSheet, TilesAreTheImagesAndThePngReadsBackExactly) {
  constexpr int S = 5, kCount = 7, kColumns = 3, kGap = 2;
  std::mt19937 rng(2);
  std::vector<uint8_t> images(kCount * S * S * 3);
  for (auto& p : images) p = uint8_t(rng() % 250);  // never white, so gaps are distinguishable
  const RgbImage sheet = contact_sheet(images.data(), kCount, S, kColumns, kGap);
  ASSERT_EQ(sheet.width, kGap + kColumns * (S + kGap));
  ASSERT_EQ(sheet.height, kGap + 3 * (S + kGap));  // 7 images in rows of 3
  int image_pixels = 0;
  for (int y = 0; y < sheet.height; ++y) {
    for (int x = 0; x < sheet.width; ++x) {
      const int row = (y - kGap) / (S + kGap), col = (x - kGap) / (S + kGap);
      const int ty = (y - kGap) % (S + kGap), tx = (x - kGap) % (S + kGap);
      const int i = row * kColumns + col;
      const bool inside = y >= kGap && x >= kGap && ty < S && tx < S && i < kCount;
      for (int c = 0; c < 3; ++c) {
        const uint8_t want = inside ? images[((i * S + ty) * S + tx) * 3 + c] : 255;
        ASSERT_EQ(sheet.at(y, x)[c], want) << y << "," << x;
      }
      image_pixels += inside;
    }
  }
  EXPECT_EQ(image_pixels, kCount * S * S);

  const std::string path = absl::StrCat(::testing::TempDir(), "/sheet_", getpid(), ".png");
  ASSERT_TRUE(write_png(path, sheet).ok());
  auto back = read_image_file(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->width, sheet.width);
  EXPECT_EQ(back->height, sheet.height);
  EXPECT_EQ(back->pixels, sheet.pixels);
  std::filesystem::remove(path);

  const absl::Status bad = write_png("/nonexistent/dir/sheet.png", sheet);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("/nonexistent/dir/sheet.png"));
}

}  // namespace
}  // namespace tessera::data
