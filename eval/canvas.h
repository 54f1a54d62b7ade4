#pragma once
// An RGB raster for charts and image grids, with the few drawing primitives they need (pixels,
// rectangles, lines, text in eval/font.h) and PNG output through libpng.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace tessera::eval {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

class Canvas {
 public:
  Canvas(int width, int height, Rgb background = {255, 255, 255});

  int width() const { return width_; }
  int height() const { return height_; }
  Rgb at(int x, int y) const;
  const std::vector<uint8_t>& pixels() const { return rgb_; }  // (height, width, 3)

  void set(int x, int y, Rgb c);                          // outside the canvas: ignored
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c);  // inclusive corners
  // A line of `thickness` pixels (a square pen), from (x0, y0) to (x1, y1) inclusive.
  void line(int x0, int y0, int x1, int y1, Rgb c, int thickness = 1);
  // Text with its top-left corner at (x, y); `scale` magnifies each font pixel.
  void text(int x, int y, std::string_view s, Rgb c, int scale = 1);
  // Text rotated 90 degrees counter-clockwise (reads bottom to top), top-left at (x, y).
  void text_vertical(int x, int y, std::string_view s, Rgb c, int scale = 1);

 private:
  int width_, height_;
  std::vector<uint8_t> rgb_;
};

// Writes an 8-bit RGB PNG; the error names the path.
absl::Status write_png(const std::string& path, const Canvas& canvas);

}  // namespace tessera::eval
