// read_safetensors on any bytes: an error or tensors whose bytes lie inside the file; never a
// crash, an uncaught exception or an allocation beyond the file's size.
#include <cstdio>

#include "core/safetensors.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tessera::fuzz::write_input("in.safetensors", data, size);
  auto tensors = tessera::read_safetensors(path);
  if (tensors.ok()) {
    size_t bytes = 0;
    for (const auto& [name, t] : *tensors)
      bytes += size_t(t.numel()) * tessera::dtype_size(t.dtype());
    TESSERA_FUZZ_ASSERT(bytes <= size);
  }
  return 0;
}
