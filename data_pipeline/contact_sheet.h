#pragma once
// `tessera inspect --sheet`: the first images of a shard tiled into one PNG, to see at a glance
// what a pack produced (crops, colours, label order).

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "data_pipeline/image_decode.h"

namespace tessera::data {

// Tiles `count` images of size S x S (`images`: (count, S, S, 3) uint8) in rows of `columns`,
// with a `gap`-pixel white border around and between tiles.
RgbImage contact_sheet(const uint8_t* images, int64_t count, int size, int columns, int gap = 2);

// Writes an 8-bit RGB PNG (libpng) through PATH.tmp and a rename. Errors name the path.
absl::Status write_png(const std::string& path, const RgbImage& image);

}  // namespace tessera::data
