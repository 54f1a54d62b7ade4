// A checkpoint step directory from any bytes: the input is split into metadata.pb (binary
// tessera.checkpoint.Metadata), the COMMITTED marker and rank_00000.pieces.pb (binary
// FileManifest), each preceded by its 4-byte little-endian length (the rest is the last part).
// open_checkpoint, verify_commit_marker, scan and resolve of the checkpoints/ directory,
// merge_manifests of the pieces manifest, and TensorReader::read of the first tensors (there is
// no rank file: every read must fail cleanly) must end in a result or an error naming a file,
// never a crash or an unbounded allocation.
#include <cstring>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "checkpoint/commit.h"
#include "checkpoint/write.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

std::string take(const uint8_t*& data, size_t& size, bool last) {
  size_t n = size;
  if (!last) {
    uint32_t len = 0;
    if (size >= 4) {
      std::memcpy(&len, data, 4);
      data += 4;
      size -= 4;
    } else {
      size = 0;
    }
    n = std::min<size_t>(len, size);
  }
  std::string out(reinterpret_cast<const char*>(data), n);
  data += n;
  size -= n;
  return out;
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace ck = tessera::checkpoint;
  const std::string root = tessera::fuzz::scratch_dir() + "/checkpoints";
  const std::string step = root + "/step_00000001";
  std::filesystem::create_directories(step);
  write(step + "/metadata.pb", take(data, size, false));
  write(step + "/COMMITTED", take(data, size, false));
  write(step + "/rank_00000.pieces.pb", take(data, size, true));
  write(root + "/latest", "step_00000001\n");

  (void)ck::detail::scan(root);
  (void)ck::detail::resolve(root);
  ck::Metadata merged;
  (void)ck::detail::merge_manifests(step, 1, &merged);
  auto info = ck::open_checkpoint(step);
  if (!info.ok()) {
    TESSERA_FUZZ_ASSERT(info.status().message().find(step) != std::string::npos);
    return 0;
  }
  (void)ck::verify_commit_marker(*info);
  ck::TensorReader reader(*info);
  int tried = 0;
  for (const auto& t : info->metadata.tensors()) {
    if (++tried > 4) break;
    // The harness allocates the destination only for plausible shapes; the reader must refuse
    // the tensor (no rank file) whatever its shape says.
    uint64_t numel = 1;
    bool small = true;
    for (int64_t d : t.shape()) {
      if (d < 0 || d > 4096 || (numel *= uint64_t(d)) > 4096) small = false;
      if (!small) break;
    }
    if (!small) continue;
    std::vector<float> dst(numel + 1);
    TESSERA_FUZZ_ASSERT(!reader.read(t, dst.data()).ok() || numel == 0);
  }
  return 0;
}
