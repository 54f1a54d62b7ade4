#pragma once
// Image decoding and the fixed-size preprocessing that turns a demo image into a shard sample:
// PNG (libpng) and JPEG (libjpeg-turbo) bytes -> 8-bit RGB, then resize the shorter side to S
// and center-crop S x S. Decoding is a file boundary, so failures are absl::Status naming the
// input (a path or a shard key), never exceptions (core/error.h).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "data_pipeline/shard_format.h"

namespace tessera::data {

// Row-major H x W x 3 RGB, 8 bits per channel, no padding between rows.
struct RgbImage {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> pixels;  // height * width * 3

  const uint8_t* at(int y, int x) const { return pixels.data() + (size_t(y) * width + x) * 3; }
};

// Decodes a PNG of any colour type and bit depth. Alpha (an alpha channel or a tRNS chunk) is
// composited onto white, because the demo clip art is drawn on transparent backgrounds and a
// model should see a background, not whatever colour a transparent pixel happened to store:
// out = (c * a + 255 * (255 - a) + 127) / 255, integer, per channel. Palette and gray are
// expanded to RGB; 16-bit samples keep their high byte. gAMA/sRGB/iCCP chunks are ignored
// (samples are taken as stored, as PIL-based ML loaders do). Interlaced files are supported.
// `name` (path or key) is put into every error message.
// An image of more than max_pixels (width x height, from its header) is refused before anything
// is allocated for it: a corrupt header must not ask for gigabytes. The default, 16384^2, covers
// any real photo or clip art (shard::kMaxImagePixels, also the shard reader's limit).
absl::StatusOr<RgbImage> decode_png(std::span<const uint8_t> bytes, std::string_view name,
                                    int64_t max_pixels = shard::kMaxImagePixels);

// Decodes a baseline or progressive JPEG (gray or YCbCr; CMYK is rejected) to RGB.
absl::StatusOr<RgbImage> decode_jpeg(std::span<const uint8_t> bytes, std::string_view name,
                                     int64_t max_pixels = shard::kMaxImagePixels);

// Picks the decoder from the magic bytes (not the file name), so a mislabelled file still
// decodes and an unknown format is an error naming `name`.
absl::StatusOr<RgbImage> decode_image(std::span<const uint8_t> bytes, std::string_view name,
                                      int64_t max_pixels = shard::kMaxImagePixels);

// Reads the whole file (the packer stores it as is in format version 2); errors name the path.
absl::StatusOr<std::vector<uint8_t>> read_file_bytes(const std::string& path);

// Reads the whole file and decodes it; errors name the path.
absl::StatusOr<RgbImage> read_image_file(const std::string& path);

// Resizes so the shorter side is `size` (aspect ratio kept, longer side rounded to the nearest
// pixel), then takes the centred size x size window (for an odd excess the extra pixel is
// dropped on the bottom/right). Each axis is resampled separably:
//   - shrinking (the common case: clip art is hundreds of pixels, samples are 32..256): area
//     averaging, every source pixel weighted by the fraction of it an output pixel covers, so
//     thin lines fade instead of aliasing away;
//   - enlarging: bilinear with half-pixel centres (PyTorch align_corners=False), edges clamped.
// Rounding is to nearest. An axis that is already the target length is copied exactly, so an
// S x S input comes back unchanged.
RgbImage resize_and_center_crop(const RgbImage& image, int size);

// Resizes to height x width with the same per-axis resampling (area when shrinking, bilinear
// when enlarging): the packer's limit on the longest side (`tessera pack --max-side`).
RgbImage resize_image(const RgbImage& image, int height, int width);

// Encodes 8-bit RGB as a baseline JPEG (libjpeg-turbo, 4:2:0, `quality` in [1, 100]).
absl::StatusOr<std::vector<uint8_t>> encode_jpeg(const RgbImage& image, int quality);

}  // namespace tessera::data
