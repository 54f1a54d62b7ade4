// load_manifest (protobuf text of tessera.data.Manifest, then its checks) on any text, next to
// three small shard files (train-00000.h5 ... of 100, 200 and 300 bytes) that a manifest may
// name: an error naming the manifest, or a manifest whose shards exist with the recorded sizes
// and whose sample counts add up. With verify_hashes the content hashes are compared too.
#include <filesystem>

#include "data_pipeline/pack.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  static const bool shards_written = [] {
    for (int i = 0; i < 3; ++i) {
      const std::string bytes(size_t(100 * (i + 1)), char('a' + i));
      tessera::fuzz::write_input("train-0000" + std::to_string(i) + ".h5",
                                 reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    }
    return true;
  }();
  (void)shards_written;
  const std::string path = tessera::fuzz::write_input("train.pbtxt", data, size);
  for (bool verify : {false, true}) {
    auto m = tessera::data::load_manifest(path, verify);
    if (!m.ok()) {
      TESSERA_FUZZ_ASSERT(m.status().message().find(path) != std::string::npos);
      continue;
    }
    int64_t total = 0;
    for (const auto& s : m->shards()) {
      std::error_code ec;
      TESSERA_FUZZ_ASSERT(int64_t(fs::file_size(fs::path(path).parent_path() / s.path(), ec)) ==
                          s.bytes());
      total += s.num_samples();
    }
    TESSERA_FUZZ_ASSERT(total == m->num_samples());
  }
  return 0;
}
