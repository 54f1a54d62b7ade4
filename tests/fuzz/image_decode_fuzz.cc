// decode_image (PNG through libpng, JPEG through libjpeg-turbo, WebP through libwebp, picked by
// magic bytes) on any bytes, truncated streams included: an error naming the input, or an image
// of the size its header declares within the pixel limit, which then survives
// resize_and_center_crop. The limit is lowered to 2^20 pixels here so one input cannot take
// seconds; the check is the same code.
#include "data_pipeline/image_decode.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int64_t kPixels = int64_t{1} << 20;
  auto image = tessera::data::decode_image({data, size}, "fuzz-input", kPixels);
  if (!image.ok()) {
    TESSERA_FUZZ_ASSERT(image.status().message().find("fuzz-input") != std::string::npos);
    return 0;
  }
  TESSERA_FUZZ_ASSERT(image->width > 0 && image->height > 0 &&
                      int64_t(image->width) * image->height <= kPixels);
  TESSERA_FUZZ_ASSERT(image->pixels.size() == size_t(image->width) * image->height * 3);
  const auto small = tessera::data::resize_and_center_crop(*image, 8);
  TESSERA_FUZZ_ASSERT(small.width == 8 && small.height == 8 && small.pixels.size() == 8 * 8 * 3);
  return 0;
}
