// read_webdataset_tar on any bytes (ustar, GNU long names, pax): an error naming the tar, or
// samples whose images and captions came from the file (so no larger than it).
//
// A mutated header almost never keeps a valid checksum, so the reader would refuse nearly every
// input at its first header. For inputs whose first byte is odd, the harness walks the headers
// as the reader does and rewrites each one's checksum before writing the file, so mutations of
// sizes, types and names reach the code behind the checksum.
#include <cstring>

#include "data_pipeline/tar_input.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void fix_checksums(std::vector<uint8_t>& tar) {
  for (size_t at = 0; at + 512 <= tar.size();) {
    uint8_t* h = tar.data() + at;
    bool zero = true;
    for (size_t i = 0; i < 512 && zero; ++i) zero = h[i] == 0;
    if (zero) break;
    unsigned sum = 0;
    for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : h[i];
    char field[8];
    std::snprintf(field, sizeof field, "%06o", sum & 0777777);
    std::memcpy(h + 148, field, 7);
    h[155] = ' ';
    uint64_t size = 0;
    for (size_t i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; ++i) size = size * 8 + (h[i] - '0');
    if (size > tar.size()) break;
    at += 512 + (size + 511) / 512 * 512;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> tar(data, data + size);
  if (size > 0 && (data[0] & 1)) fix_checksums(tar);
  const std::string path = tessera::fuzz::write_input("in.tar", tar.data(), tar.size());
  auto samples = tessera::data::read_webdataset_tar(path);
  if (samples.ok()) {
    for (const auto& s : *samples) {
      TESSERA_FUZZ_ASSERT(s.image.size() <= size && s.caption.size() <= size);
      TESSERA_FUZZ_ASSERT(!s.key.empty() || !s.problem.empty() || !s.image.empty());
    }
  } else {
    TESSERA_FUZZ_ASSERT(samples.status().message().find(path) != std::string::npos);
  }
  return 0;
}
