#pragma once
// A 5x7 bitmap font for chart labels and image captions (printable ASCII 32..126; anything else
// draws as '?'). Hand-written because no installed library rasterises text without a font file
// and a font service (FreeType needs a .ttf; none is guaranteed on a minimal Debian).
// Each glyph cell is 6x8 pixels (one column and one row of spacing) times the scale.

#include <cstdint>
#include <string_view>

namespace tessera::eval {

inline constexpr int kGlyphWidth = 5, kGlyphHeight = 7;
inline constexpr int kCellWidth = 6, kCellHeight = 8;

// Row r (0 = top) of character c: bit 4 is the leftmost column.
uint8_t glyph_row(char c, int r);

inline int text_width(std::string_view s, int scale = 1) {
  return s.empty() ? 0 : (int(s.size()) * kCellWidth - 1) * scale;
}
inline int text_height(int scale = 1) {
  return kGlyphHeight * scale;
}

}  // namespace tessera::eval
