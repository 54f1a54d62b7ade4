#pragma once
// Encoded image (format version 2) -> one training or evaluation input: decode only what the
// crop needs, at the smallest scale that keeps the crop at least the output size, then resize
// bilinearly (and mirror) to S x S. Runs on the loader's worker threads.
//
// The reduction k in {1, 2, 4, 8} is the largest with box.height >= k*S and box.width >= k*S,
// so the final bilinear step never shrinks by 2x or more (bilinear without a filter aliases
// beyond that) and a large photo is never decoded at full size for a small output:
// - JPEG (libjpeg-turbo's libjpeg API): DCT-domain scaling (scale_denom = k: an 8x8 block
//   becomes 8/k x 8/k pixels, cost falls with k), and only the rows and iMCU columns the crop
//   touches are decoded (jpeg_skip_scanlines, jpeg_crop_scanline). The TurboJPEG 2.1 API that
//   Debian ships can scale but not crop, hence the libjpeg API.
// - PNG (libpng) and WebP (libwebp): the whole image (decode_image), then k x k box averaging.
// Resizing samples source coordinate (top + (y + 0.5) * height / S) / k - 0.5 (half-pixel
// centres), clamped to the crop's first and last pixel centres: with k = 1 exactly what
// crop_resize_normalise (augment.h) samples for pixels, so version 1 and 2 shards give the
// same crops; results round to uint8.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "data_pipeline/augment.h"

namespace tessera::data {

// Buffers reused from sample to sample by one thread (no allocation per image in steady state).
struct DecodeScratch {
  std::vector<uint8_t> region, reduced;
};

// k (see above) for a crop to out_size.
int crop_reduction(const CropBox& box, int out_size);

// Decodes `bytes`, a JPEG, PNG or WebP recorded in the shard as height x width, and writes the crop
// `box` (in those pixels) resized to out_size x out_size, (S, S, 3) uint8, to `out`. Errors
// (corrupt data, a size that disagrees with the record, unsupported colour space) name `name`.
absl::Status decode_crop(std::span<const uint8_t> bytes, int height, int width, const CropBox& box,
                         int out_size, uint8_t* out, DecodeScratch* scratch, std::string_view name);

// The resize step alone: `region` is rh x rw RGB pixels whose (0, 0) is pixel (r0, c0) of the
// image reduced by k to reduced_h x reduced_w; `box` is in the full image's pixels.
void resize_reduced_crop(const uint8_t* region, int rh, int rw, int r0, int c0, int reduced_h,
                         int reduced_w, int k, const CropBox& box, int out_size, uint8_t* out);

}  // namespace tessera::data
