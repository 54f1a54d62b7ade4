#include "data_pipeline/contact_sheet.h"

#include <png.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera::data {

RgbImage contact_sheet(const uint8_t* images, int64_t count, int size, int columns, int gap) {
  TESSERA_CHECK(count >= 1 && size >= 1 && columns >= 1 && gap >= 0,
                "contact_sheet: bad layout (count ", count, ", size ", size, ", columns ", columns,
                ", gap ", gap, ")");
  const int cols = int(std::min<int64_t>(columns, count));
  const int rows = int((count + cols - 1) / cols);
  RgbImage sheet;
  sheet.width = gap + cols * (size + gap);
  sheet.height = gap + rows * (size + gap);
  sheet.pixels.assign(size_t(sheet.width) * sheet.height * 3, 255);
  const size_t row_bytes = size_t(size) * 3;
  for (int64_t i = 0; i < count; ++i) {
    const int top = gap + int(i / cols) * (size + gap), left = gap + int(i % cols) * (size + gap);
    for (int y = 0; y < size; ++y)
      std::memcpy(sheet.pixels.data() + (size_t(top + y) * sheet.width + left) * 3,
                  images + (size_t(i) * size + y) * row_bytes, row_bytes);
  }
  return sheet;
}

absl::Status write_png(const std::string& path, const RgbImage& image) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot create"));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr || setjmp(png_jmpbuf(png))) {  // libpng reports errors by longjmp
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    std::filesystem::remove(tmp);
    return absl::InternalError(absl::StrCat(path, ": libpng failed to write the image"));
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y)
    png_write_row(png, image.pixels.data() + size_t(y) * image.width * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fclose(f) != 0) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": cannot rename: ", ec.message()));
  return absl::OkStatus();
}

}  // namespace tessera::data
