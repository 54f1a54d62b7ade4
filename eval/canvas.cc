#include "eval/canvas.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "eval/font.h"

namespace tessera::eval {

Canvas::Canvas(int width, int height, Rgb bg)
    : width_(width), height_(height), rgb_(size_t(width) * height * 3) {
  for (size_t i = 0; i < rgb_.size(); i += 3) {
    rgb_[i] = bg.r;
    rgb_[i + 1] = bg.g;
    rgb_[i + 2] = bg.b;
  }
}

Rgb Canvas::at(int x, int y) const {
  const uint8_t* p = rgb_.data() + (size_t(y) * width_ + x) * 3;
  return {p[0], p[1], p[2]};
}

void Canvas::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  uint8_t* p = rgb_.data() + (size_t(y) * width_ + x) * 3;
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

void Canvas::fill_rect(int x0, int y0, int x1, int y1, Rgb c) {
  for (int y = std::min(y0, y1); y <= std::max(y0, y1); ++y)
    for (int x = std::min(x0, x1); x <= std::max(x0, x1); ++x) set(x, y, c);
}

void Canvas::line(int x0, int y0, int x1, int y1, Rgb c, int thickness) {
  // Bresenham; each point stamps a thickness x thickness square centred on the line.
  const int lo = -(thickness - 1) / 2, hi = thickness / 2;
  const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  while (true) {
    fill_rect(x0 + lo, y0 + lo, x0 + hi, y0 + hi, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

void Canvas::text(int x, int y, std::string_view s, Rgb c, int scale) {
  for (size_t i = 0; i < s.size(); ++i) {
    const int gx = x + int(i) * kCellWidth * scale;
    for (int r = 0; r < kGlyphHeight; ++r) {
      const uint8_t bits = glyph_row(s[i], r);
      for (int col = 0; col < kGlyphWidth; ++col) {
        if (bits & (0x10 >> col)) {
          fill_rect(gx + col * scale, y + r * scale, gx + col * scale + scale - 1,
                    y + r * scale + scale - 1, c);
        }
      }
    }
  }
}

void Canvas::text_vertical(int x, int y, std::string_view s, Rgb c, int scale) {
  // Glyph pixel (col, row) of character i lands at (x + row, y + len - 1 - (i*cell + col)).
  const int len = text_width(s, 1);
  for (size_t i = 0; i < s.size(); ++i) {
    for (int r = 0; r < kGlyphHeight; ++r) {
      const uint8_t bits = glyph_row(s[i], r);
      for (int col = 0; col < kGlyphWidth; ++col) {
        if (!(bits & (0x10 >> col))) continue;
        const int px = x + r * scale;
        const int py = y + (len - 1 - (int(i) * kCellWidth + col)) * scale;
        fill_rect(px, py, px + scale - 1, py + scale - 1, c);
      }
    }
  }
}

absl::Status write_png(const std::string& path, const Canvas& canvas) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f)
    return absl::NotFoundError(absl::StrCat(path, ": cannot create (", std::strerror(errno), ")"));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, nullptr);
    std::fclose(f);
    return absl::InternalError(absl::StrCat(path, ": libpng could not start"));
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    return absl::DataLossError(absl::StrCat(path, ": libpng write failed"));
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, canvas.width(), canvas.height(), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const uint8_t* base = canvas.pixels().data();
  for (int y = 0; y < canvas.height(); ++y) {
    png_write_row(png, const_cast<png_bytep>(base + size_t(y) * canvas.width() * 3));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fclose(f) != 0) return absl::DataLossError(absl::StrCat(path, ": close failed"));
  return absl::OkStatus();
}

}  // namespace tessera::eval
