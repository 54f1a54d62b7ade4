#include "data_pipeline/webp_decode.h"

#include <webp/decode.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tessera::data {
namespace {

const char* status_text(VP8StatusCode code) {
  switch (code) {
    case VP8_STATUS_OK:
      return "ok";
    case VP8_STATUS_OUT_OF_MEMORY:
      return "out of memory";
    case VP8_STATUS_INVALID_PARAM:
      return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR:
      return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE:
      return "unsupported feature";
    case VP8_STATUS_SUSPENDED:
      return "suspended";
    case VP8_STATUS_USER_ABORT:
      return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA:
      return "truncated (not enough data)";
  }
  return "unknown error";
}

absl::Status corrupt(std::string_view name, VP8StatusCode code) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(name), ": corrupt WebP: ", status_text(code)));
}

}  // namespace

bool is_webp(std::span<const uint8_t> bytes) {
  return bytes.size() >= 12 && std::memcmp(bytes.data(), "RIFF", 4) == 0 &&
         std::memcmp(bytes.data() + 8, "WEBP", 4) == 0;
}

absl::StatusOr<RgbImage> decode_webp(std::span<const uint8_t> bytes, std::string_view name,
                                     int64_t max_pixels) {
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config))
    return absl::InternalError(absl::StrCat(std::string(name), ": libwebp version mismatch"));
  // Header only: dimensions, alpha, animation. Nothing is allocated yet.
  if (VP8StatusCode st = WebPGetFeatures(bytes.data(), bytes.size(), &config.input);
      st != VP8_STATUS_OK)
    return corrupt(name, st);
  const WebPBitstreamFeatures& f = config.input;
  if (f.has_animation)
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(name), ": animated WebP, not supported (a still image is)"));
  if (f.width <= 0 || f.height <= 0) return corrupt(name, VP8_STATUS_BITSTREAM_ERROR);
  if (int64_t{f.width} * f.height > max_pixels)
    return absl::InvalidArgumentError(absl::StrCat(std::string(name), ": image ", f.width, "x",
                                                   f.height, " exceeds the ", max_pixels,
                                                   "-pixel limit"));
  RgbImage out;
  out.width = f.width;
  out.height = f.height;
  const size_t n = size_t(f.width) * size_t(f.height);
  out.pixels.resize(n * 3);
  // Opaque images decode straight into the result; with alpha, into RGBA (not premultiplied)
  // and then composited here with the PNG path's integer arithmetic.
  std::vector<uint8_t> rgba;
  config.output.is_external_memory = 1;
  if (f.has_alpha) {
    rgba.resize(n * 4);
    config.output.colorspace = MODE_RGBA;
    config.output.u.RGBA.rgba = rgba.data();
    config.output.u.RGBA.stride = f.width * 4;
    config.output.u.RGBA.size = rgba.size();
  } else {
    config.output.colorspace = MODE_RGB;
    config.output.u.RGBA.rgba = out.pixels.data();
    config.output.u.RGBA.stride = f.width * 3;
    config.output.u.RGBA.size = out.pixels.size();
  }
  const VP8StatusCode st = WebPDecode(bytes.data(), bytes.size(), &config);
  WebPFreeDecBuffer(&config.output);  // external memory: releases nothing of ours
  if (st != VP8_STATUS_OK) return corrupt(name, st);
  if (f.has_alpha) {
    for (size_t i = 0; i < n; ++i) {
      const uint32_t a = rgba[i * 4 + 3];
      for (int c = 0; c < 3; ++c)
        out.pixels[i * 3 + c] = uint8_t((rgba[i * 4 + c] * a + 255 * (255 - a) + 127) / 255);
    }
  }
  return out;
}

}  // namespace tessera::data
