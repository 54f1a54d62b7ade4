// encode_jpeg (image_decode.h): the packer's re-encoding of images above --max-side.
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/jpeg_error.h"

namespace tessera::data {
namespace {

// C-style, as the decoder: nothing with a destructor lives in this frame across setjmp.
bool encode_into(const RgbImage& image, int quality, unsigned char** mem, unsigned long* size,
                 JpegError* err) {
  jpeg_compress_struct cinfo;
  cinfo.err = jpeg_error_manager(err, /*silent=*/false);
  if (setjmp(err->jump)) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, mem, size);
  cinfo.image_width = JDIMENSION(image.width);
  cinfo.image_height = JDIMENSION(image.height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);  // 4:2:0, baseline, Huffman tables optimised below
  jpeg_set_quality(&cinfo, quality, TRUE);
  cinfo.optimize_coding = TRUE;  // ~5-10 % smaller files for one more pass over the coefficients
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.at(int(cinfo.next_scanline), 0));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> encode_jpeg(const RgbImage& image, int quality) {
  if (quality < 1 || quality > 100 || image.height <= 0 || image.width <= 0 ||
      image.pixels.size() != size_t(image.height) * image.width * 3)
    return absl::InvalidArgumentError(absl::StrCat("encode_jpeg: bad input (", image.height, "x",
                                                   image.width, ", quality ", quality, ")"));
  unsigned char* mem = nullptr;
  unsigned long size = 0;
  JpegError err{};
  const bool ok = encode_into(image, quality, &mem, &size, &err);
  std::vector<uint8_t> out;
  if (ok) out.assign(mem, mem + size);
  std::free(mem);
  if (!ok) return absl::InternalError(absl::StrCat("encode_jpeg: ", err.message));
  return out;
}

}  // namespace tessera::data
