// TFRecord framing (train/tfrecord.h; TensorBoard event files). tessera writes records and does
// not read them back (tests read event files with TensorBoard itself), so the harness checks the
// writer against an independent reading of any payload: length, masked CRC32C of the length,
// payload, masked CRC32C of the payload, with CRC32C computed here bit by bit (polynomial
// 0x82F63B78, reflected) rather than by tessera's table.
#include <cstring>
#include <string_view>

#include "tests/fuzz/fuzz_support.h"
#include "train/tfrecord.h"

namespace {

uint32_t crc32c_bitwise(std::string_view s) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : s) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t masked(uint32_t c) {
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

template <typename T>
T load_le(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= T(uint8_t(p[i])) << (8 * i);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  TESSERA_FUZZ_ASSERT(tessera::train::crc32c(payload) == crc32c_bitwise(payload));
  TESSERA_FUZZ_ASSERT(tessera::train::masked_crc32c(payload) == masked(crc32c_bitwise(payload)));
  const std::string frame = tessera::train::tfrecord_frame(payload);
  TESSERA_FUZZ_ASSERT(frame.size() == 8 + 4 + size + 4);
  TESSERA_FUZZ_ASSERT(load_le<uint64_t>(frame.data()) == size);
  TESSERA_FUZZ_ASSERT(load_le<uint32_t>(frame.data() + 8) ==
                      masked(crc32c_bitwise(std::string_view(frame.data(), 8))));
  TESSERA_FUZZ_ASSERT(std::string_view(frame.data() + 12, size) == payload);
  TESSERA_FUZZ_ASSERT(load_le<uint32_t>(frame.data() + 12 + size) ==
                      masked(crc32c_bitwise(payload)));
  return 0;
}
