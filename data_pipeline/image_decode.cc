#include "data_pipeline/image_decode.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "data_pipeline/jpeg_error.h"
#include "data_pipeline/shard_format.h"
#include "data_pipeline/webp_decode.h"

namespace tessera::data {
namespace {

absl::Status too_large(std::string_view name, int64_t w, int64_t h, int64_t max_pixels) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(name), ": image ", w, "x", h,
                                                 " exceeds the ", max_pixels, "-pixel limit"));
}

}  // namespace

namespace {

// libpng reports errors by longjmp. Everything that decode_png_into touches after setjmp lives
// behind pointers that are not reassigned, and its frame holds no C++ objects to unwind.
struct PngReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char message[256];
};

void png_read_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) png_error(png, "unexpected end of data");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

void png_on_error(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof(r->message), "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // benign chunk issues: ignore

// Decodes to 8-bit RGBA in *rgba; false with reader->message set on failure.
bool decode_png_into(PngReader* reader, RgbImage* dims, std::vector<uint8_t>* rgba,
                     std::vector<png_bytep>* rows, int64_t max_pixels, bool* too_big) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, reader, png_on_error, png_on_warning);
  if (png == nullptr) {
    std::snprintf(reader->message, sizeof(reader->message), "png_create_read_struct failed");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  if (info == nullptr) png_error(png, "png_create_info_struct failed");
  png_set_read_fn(png, reader, png_read_bytes);
  png_read_info(png, info);
  const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  dims->width = int(w);
  dims->height = int(h);
  if (int64_t{w} * h > max_pixels) {
    *too_big = true;
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  // Every colour type and depth -> 8-bit RGBA: palette -> RGB, gray < 8 bits -> 8, tRNS ->
  // alpha, 16 bits -> the high byte, gray -> RGB, opaque alpha added where there is none.
  // gAMA/sRGB/iCCP are ignored: samples are taken as stored, like most ML loaders do.
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_gray_to_rgb(png);
  png_set_add_alpha(png, 0xFF, PNG_FILLER_AFTER);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != size_t(w) * 4) png_error(png, "unexpected row layout");
  rgba->resize(size_t(w) * h * 4);
  // png_read_image runs every interlace pass over every row.
  rows->resize(h);
  for (png_uint_32 y = 0; y < h; ++y) (*rows)[y] = rgba->data() + size_t(y) * w * 4;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace

absl::StatusOr<RgbImage> decode_png(std::span<const uint8_t> bytes, std::string_view name,
                                    int64_t max_pixels) {
  PngReader reader{bytes.data(), bytes.size(), 0, {}};
  RgbImage out;
  std::vector<uint8_t> rgba;
  std::vector<png_bytep> rows;
  bool too_big = false;
  if (!decode_png_into(&reader, &out, &rgba, &rows, max_pixels, &too_big)) {
    if (too_big) return too_large(name, out.width, out.height, max_pixels);
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(name), ": corrupt PNG: ", reader.message));
  }
  // Composite onto white with our own integer arithmetic, so it is exact and testable.
  const size_t n = size_t(out.width) * out.height;
  out.pixels.resize(n * 3);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t a = rgba[i * 4 + 3];
    for (int c = 0; c < 3; ++c) {
      out.pixels[i * 3 + c] = uint8_t((rgba[i * 4 + c] * a + 255 * (255 - a) + 127) / 255);
    }
  }
  return out;
}

namespace {

// Plain C-style decoding: returns false with err->message set. `out` is only written through
// its pointer, and is sized before any libjpeg call that could jump.
bool decode_jpeg_into(const uint8_t* data, size_t size, RgbImage* out, JpegError* err,
                      int64_t max_pixels, bool* too_big) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_error_manager(err, /*silent=*/true);
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_open_memory(&cinfo, data, size);
  cinfo.out_color_space = JCS_RGB;  // converts gray and YCbCr; CMYK fails in start_decompress
  if (int64_t{cinfo.image_width} * cinfo.image_height > max_pixels) {
    out->width = int(cinfo.image_width);
    out->height = int(cinfo.image_height);
    *too_big = true;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_start_decompress(&cinfo);
  out->width = int(cinfo.output_width);
  out->height = int(cinfo.output_height);
  out->pixels.resize(size_t(out->width) * out->height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->pixels.data() + size_t(cinfo.output_scanline) * out->width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  // libjpeg fills a truncated or corrupt stream with gray and only warns: refuse it, so the
  // packer skips (and lists) the file rather than storing a damaged image.
  const long warnings = err->mgr.num_warnings;
  jpeg_destroy_decompress(&cinfo);
  if (warnings > 0) {
    std::snprintf(err->message, sizeof(err->message), "%ld warning(s): corrupt or truncated data",
                  warnings);
    return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<RgbImage> decode_jpeg(std::span<const uint8_t> bytes, std::string_view name,
                                     int64_t max_pixels) {
  RgbImage out;
  JpegError err{};
  bool too_big = false;
  if (!decode_jpeg_into(bytes.data(), bytes.size(), &out, &err, max_pixels, &too_big)) {
    if (too_big) return too_large(name, out.width, out.height, max_pixels);
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(name), ": corrupt JPEG: ", err.message));
  }
  return out;
}

absl::StatusOr<RgbImage> decode_image(std::span<const uint8_t> bytes, std::string_view name,
                                      int64_t max_pixels) {
  static constexpr uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 8 && std::equal(kPng, kPng + 8, bytes.begin())) {
    return decode_png(bytes, name, max_pixels);
  }
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    return decode_jpeg(bytes, name, max_pixels);
  }
  if (is_webp(bytes)) return decode_webp(bytes, name, max_pixels);  // webp_decode.h
  return absl::InvalidArgumentError(absl::StrCat(std::string(name),
                                                 ": neither PNG nor JPEG nor WebP (", bytes.size(),
                                                 " bytes, unknown magic)"));
}

absl::StatusOr<std::vector<uint8_t>> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open image file"));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return bytes;
}

absl::StatusOr<RgbImage> read_image_file(const std::string& path) {
  auto bytes = read_file_bytes(path);
  if (!bytes.ok()) return bytes.status();
  return decode_image(*bytes, path);
}

namespace {

// For each output index in [first, first + count) of an axis resampled from in_len to
// out_len: the first source index and the weights of the consecutive sources it reads.
struct AxisTap {
  int start;
  std::vector<float> weights;
};

std::vector<AxisTap> axis_taps(int in_len, int out_len, int first, int count) {
  std::vector<AxisTap> taps(count);
  const double scale = double(in_len) / out_len;
  for (int k = 0; k < count; ++k) {
    const int o = first + k;
    AxisTap& t = taps[k];
    if (in_len == out_len) {
      t = {o, {1.0f}};
    } else if (out_len < in_len) {  // area: coverage of [o*scale, (o+1)*scale)
      const double lo = o * scale, hi = std::min<double>((o + 1) * scale, in_len);
      const int i0 = int(std::floor(lo)), i1 = std::min(int(std::ceil(hi)), in_len);
      t.start = i0;
      for (int i = i0; i < i1; ++i) {
        const double w = std::min<double>(hi, i + 1) - std::max<double>(lo, i);
        t.weights.push_back(float(w / scale));
      }
    } else {  // bilinear, half-pixel centres, clamped at the edges
      const double src = std::clamp((o + 0.5) * scale - 0.5, 0.0, double(in_len - 1));
      const int i0 = int(std::floor(src));
      const float frac = float(src - i0);
      t.start = i0;
      t.weights = {1.0f - frac};
      if (i0 + 1 < in_len) t.weights.push_back(frac);
    }
  }
  return taps;
}

}  // namespace

namespace {

// Resamples `image` with per-axis taps (rows: out_h of them, cols: out_w) into an out_h x out_w
// image: a horizontal pass over only the source rows the vertical taps read, then the vertical.
RgbImage resample(const RgbImage& image, const std::vector<AxisTap>& rows,
                  const std::vector<AxisTap>& cols) {
  const int out_h = int(rows.size()), out_w = int(cols.size());
  const int row_lo = rows.front().start;
  const int row_hi = rows.back().start + int(rows.back().weights.size());
  std::vector<float> tmp(size_t(row_hi - row_lo) * out_w * 3, 0.0f);
  for (int y = row_lo; y < row_hi; ++y) {
    float* dst = tmp.data() + size_t(y - row_lo) * out_w * 3;
    for (int x = 0; x < out_w; ++x) {
      const AxisTap& t = cols[x];
      for (size_t j = 0; j < t.weights.size(); ++j) {
        const uint8_t* p = image.at(y, t.start + int(j));
        for (int c = 0; c < 3; ++c) dst[x * 3 + c] += t.weights[j] * p[c];
      }
    }
  }
  RgbImage out;
  out.height = out_h;
  out.width = out_w;
  out.pixels.resize(size_t(out_h) * out_w * 3);
  for (int y = 0; y < out_h; ++y) {
    const AxisTap& t = rows[y];
    for (int x = 0; x < out_w * 3; ++x) {
      float v = 0.0f;
      for (size_t j = 0; j < t.weights.size(); ++j) {
        v += t.weights[j] * tmp[size_t(t.start + int(j) - row_lo) * out_w * 3 + x];
      }
      out.pixels[size_t(y) * out_w * 3 + x] = uint8_t(std::lround(std::clamp(v, 0.0f, 255.0f)));
    }
  }
  return out;
}

}  // namespace

RgbImage resize_image(const RgbImage& image, int height, int width) {
  TESSERA_CHECK(height > 0 && width > 0, "resize_image: bad size ", height, "x", width);
  TESSERA_CHECK(image.height > 0 && image.width > 0, "resize_image: empty image ", image.width, "x",
                image.height);
  return resample(image, axis_taps(image.height, height, 0, height),
                  axis_taps(image.width, width, 0, width));
}

RgbImage resize_and_center_crop(const RgbImage& image, int size) {
  TESSERA_CHECK(size > 0, "resize_and_center_crop: size must be positive, got ", size);
  TESSERA_CHECK(image.height > 0 && image.width > 0, "resize_and_center_crop: empty image ",
                image.width, "x", image.height);
  const int h = image.height, w = image.width;
  // Shorter side -> size; longer side scaled by the same factor, rounded, never below size.
  int out_h = size, out_w = size;
  if (h < w) {
    out_w = std::max(size, int(std::lround(double(w) * size / h)));
  } else if (w < h) {
    out_h = std::max(size, int(std::lround(double(h) * size / w)));
  }
  return resample(image, axis_taps(h, out_h, (out_h - size) / 2, size),
                  axis_taps(w, out_w, (out_w - size) / 2, size));
}

}  // namespace tessera::data
