#pragma once
// WebP (libwebp) bytes -> 8-bit RGB, the third encoded format of format version 2 next to PNG
// and JPEG. decode_image (image_decode.h) dispatches here on the RIFF....WEBP magic, so the
// packer, the loader's decode_crop and the shard verifier handle WebP without knowing of it.

#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/shard_format.h"

namespace tessera::data {

// True when `bytes` start with a RIFF header of form type WEBP ("RIFF" size "WEBP").
bool is_webp(std::span<const uint8_t> bytes);

// Decodes a still WebP, lossy (VP8) or lossless (VP8L), to RGB. Alpha is composited onto white
// with the PNG path's formula, out = (c * a + 255 * (255 - a) + 127) / 255 per channel, so a
// clip-art image gives the same pixels whichever format it came in. Animated WebP is refused
// (which frame would be the sample?). The dimensions are read from the header first and an
// image of more than max_pixels is refused before anything is allocated for it. Truncated or
// corrupt data is an error (libwebp's status named); every error names `name`.
absl::StatusOr<RgbImage> decode_webp(std::span<const uint8_t> bytes, std::string_view name,
                                     int64_t max_pixels = shard::kMaxImagePixels);

}  // namespace tessera::data
