#include "data_pipeline/decode_crop.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/jpeg_error.h"

namespace tessera::data {
namespace {

struct Tap {
  int i0, i1;  // region coordinates
  float w1;    // weight of i1
};

// Output i of an axis reads reduced coordinate (first + (i + 0.5) * len / S) / k - 0.5, clamped
// to the centres of the crop's first and last pixels (and to the image); region coordinates.
void axis_taps(int first, int len, int k, int reduced_len, int region_origin, int S,
               std::vector<Tap>* taps) {
  taps->resize(size_t(S));
  const double lo = std::max(0.0, (first + 0.5) / k - 0.5);
  const double hi = std::min(double(reduced_len - 1), (first + len - 0.5) / k - 0.5);
  const double step = double(len) / S;
  for (int i = 0; i < S; ++i) {
    const double f = std::clamp((first + (i + 0.5) * step) / k - 0.5, lo, std::max(lo, hi));
    const int i0 = int(std::floor(f));
    const int i1 = std::min(i0 + 1, reduced_len - 1);
    (*taps)[size_t(i)] = Tap{i0 - region_origin, i1 - region_origin, float(f - i0)};
  }
}

// The reduced rows (or columns) [lo, hi) a crop reads: what axis_taps can touch.
void needed(int first, int len, int k, int reduced_len, int* lo, int* hi) {
  const double a = std::max(0.0, (first + 0.5) / k - 0.5);
  const double b = std::min(double(reduced_len - 1), (first + len - 0.5) / k - 0.5);
  *lo = std::min(int(std::floor(a)), reduced_len - 1);
  *hi = std::min(int(std::floor(std::max(a, b))) + 2, reduced_len);
}

struct JpegRegion {
  int full_h = 0, full_w = 0;        // from the header
  int reduced_h = 0, reduced_w = 0;  // after DCT scaling
  int r0 = 0, c0 = 0, rh = 0, rw = 0;
  bool cmyk = false;
};

// C-style: returns false with err->message set. Nothing with a destructor lives in this frame
// across setjmp; `region` is sized before the calls that may jump into it.
bool decode_jpeg_region(const uint8_t* data, size_t size, int k, const CropBox& box, int height,
                        int width, std::vector<uint8_t>* region, JpegRegion* out, JpegError* err) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_error_manager(err, /*silent=*/true);
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_open_memory(&cinfo, data, size);
  out->full_h = int(cinfo.image_height);
  out->full_w = int(cinfo.image_width);
  if (out->full_h != height || out->full_w != width) {
    jpeg_destroy_decompress(&cinfo);
    return true;  // the caller reports the disagreement
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    out->cmyk = true;
    jpeg_destroy_decompress(&cinfo);
    return true;
  }
  cinfo.out_color_space = JCS_RGB;
  cinfo.scale_num = 1;
  cinfo.scale_denom = unsigned(k);
  jpeg_start_decompress(&cinfo);
  out->reduced_h = int(cinfo.output_height);
  out->reduced_w = int(cinfo.output_width);
  int r1 = 0, c1 = 0;
  needed(box.top, box.height, k, out->reduced_h, &out->r0, &r1);
  needed(box.left, box.width, k, out->reduced_w, &out->c0, &c1);
  // Columns: libjpeg widens the range to whole iMCUs and says where it starts.
  JDIMENSION x = JDIMENSION(out->c0), w = JDIMENSION(c1 - out->c0);
  if (w < cinfo.output_width) jpeg_crop_scanline(&cinfo, &x, &w);
  out->c0 = int(x);
  out->rw = int(w);
  out->rh = r1 - out->r0;
  region->resize(size_t(out->rh) * out->rw * 3);
  if (out->r0 > 0) jpeg_skip_scanlines(&cinfo, JDIMENSION(out->r0));
  for (int y = 0; y < out->rh; ++y) {
    JSAMPROW row = region->data() + size_t(y) * out->rw * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_abort_decompress(&cinfo);  // the rows below the crop are never decoded
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// k x k box average (partial blocks at the right and bottom average what they hold).
void reduce(const RgbImage& image, int k, std::vector<uint8_t>* out, int* rh, int* rw) {
  *rh = (image.height + k - 1) / k;
  *rw = (image.width + k - 1) / k;
  out->resize(size_t(*rh) * *rw * 3);
  for (int y = 0; y < *rh; ++y) {
    const int y0 = y * k, y1 = std::min(image.height, y0 + k);
    for (int x = 0; x < *rw; ++x) {
      const int x0 = x * k, x1 = std::min(image.width, x0 + k);
      int sum[3] = {0, 0, 0};
      for (int yy = y0; yy < y1; ++yy)
        for (int xx = x0; xx < x1; ++xx)
          for (int c = 0; c < 3; ++c) sum[c] += image.at(yy, xx)[c];
      const int n = (y1 - y0) * (x1 - x0);
      for (int c = 0; c < 3; ++c)
        (*out)[(size_t(y) * *rw + x) * 3 + c] = uint8_t((sum[c] + n / 2) / n);
    }
  }
}

}  // namespace

int crop_reduction(const CropBox& box, int out_size) {
  int k = 8;
  while (k > 1 && (box.height < k * out_size || box.width < k * out_size)) k /= 2;
  return k;
}

void resize_reduced_crop(const uint8_t* region, int rh, int rw, int r0, int c0, int reduced_h,
                         int reduced_w, int k, const CropBox& box, int S, uint8_t* out) {
  thread_local std::vector<Tap> ys, xs;
  axis_taps(box.top, box.height, k, reduced_h, r0, S, &ys);
  axis_taps(box.left, box.width, k, reduced_w, c0, S, &xs);
  if (box.flip) std::reverse(xs.begin(), xs.end());  // output column x reads column S-1-x
  (void)rh;
  const size_t row = size_t(rw) * 3;
  for (int y = 0; y < S; ++y) {
    const Tap ty = ys[size_t(y)];
    const uint8_t* p0 = region + size_t(ty.i0) * row;
    const uint8_t* p1 = region + size_t(ty.i1) * row;
    uint8_t* o = out + size_t(y) * size_t(S) * 3;
    for (int x = 0; x < S; ++x) {
      const Tap tx = xs[size_t(x)];
      for (int ch = 0; ch < 3; ++ch) {
        // The expression of crop_resize_normalise (augment.cc), then rounded.
        const float a =
            p0[tx.i0 * 3 + ch] + tx.w1 * (float(p0[tx.i1 * 3 + ch]) - p0[tx.i0 * 3 + ch]);
        const float b =
            p1[tx.i0 * 3 + ch] + tx.w1 * (float(p1[tx.i1 * 3 + ch]) - p1[tx.i0 * 3 + ch]);
        o[x * 3 + ch] = uint8_t(a + ty.w1 * (b - a) + 0.5f);
      }
    }
  }
}

absl::Status decode_crop(std::span<const uint8_t> bytes, int height, int width, const CropBox& box,
                         int out_size, uint8_t* out, DecodeScratch* scratch,
                         std::string_view name) {
  if (out_size <= 0 || box.top < 0 || box.left < 0 || box.height <= 0 || box.width <= 0 ||
      // In 64 bits: a box from outside (top and height near INT_MAX) must not wrap into range.
      int64_t{box.top} + box.height > height || int64_t{box.left} + box.width > width)
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(name), ": crop (top ", box.top, ", left ", box.left, ", ", box.height, "x",
        box.width, ") outside the ", height, "x", width, " image, or output size ", out_size));
  const int k = crop_reduction(box, out_size);
  const bool jpeg = bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
  if (jpeg) {
    JpegRegion r;
    JpegError err{};
    if (!decode_jpeg_region(bytes.data(), bytes.size(), k, box, height, width, &scratch->region, &r,
                            &err))
      return absl::DataLossError(absl::StrCat(std::string(name), ": corrupt JPEG: ", err.message));
    if (r.full_h != height || r.full_w != width)
      return absl::DataLossError(absl::StrCat(std::string(name), ": the JPEG is ", r.full_h, "x",
                                              r.full_w, ", the shard records ", height, "x",
                                              width));
    if (r.cmyk)
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(name), ": CMYK JPEG, not supported (tessera pack skips them)"));
    resize_reduced_crop(scratch->region.data(), r.rh, r.rw, r.r0, r.c0, r.reduced_h, r.reduced_w, k,
                        box, out_size, out);
    return absl::OkStatus();
  }
  auto image = decode_image(bytes, name);  // PNG (or an error naming the format)
  if (!image.ok()) return image.status();
  if (image->height != height || image->width != width)
    return absl::DataLossError(absl::StrCat(std::string(name), ": the image is ", image->height,
                                            "x", image->width, ", the shard records ", height, "x",
                                            width));
  if (k == 1) {
    resize_reduced_crop(image->pixels.data(), height, width, 0, 0, height, width, 1, box, out_size,
                        out);
    return absl::OkStatus();
  }
  int rh = 0, rw = 0;
  reduce(*image, k, &scratch->reduced, &rh, &rw);
  resize_reduced_crop(scratch->reduced.data(), rh, rw, 0, 0, rh, rw, k, box, out_size, out);
  return absl::OkStatus();
}

}  // namespace tessera::data
