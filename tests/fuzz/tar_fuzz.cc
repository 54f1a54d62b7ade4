// read_webdataset_tar on any bytes (ustar, GNU long names, pax): an error naming the tar, or
// samples whose images and captions came from the file (so no larger than it).
#include "data_pipeline/tar_input.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tessera::fuzz::write_input("in.tar", data, size);
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
