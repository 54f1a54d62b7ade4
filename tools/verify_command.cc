#include "tools/verify_command.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_verify.h"
#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"
#include "tools/checkpoint_commands.h"
#include "tools/pack_mpi.h"

namespace tessera::tools {
namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct ShardToVerify {
  std::string path, content_hash;  // hash: from a manifest, "" for a lone shard
};

}  // namespace

int verify_command(const std::vector<std::string>& paths) {
  std::unique_ptr<distributed::MpiEnvironment> mpi;
  int rank = 0, ranks = 1;
  if (distributed::launched_by_mpi()) {
    mpi = std::make_unique<distributed::MpiEnvironment>();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  }
  // Every rank lists the same shards (manifests are small and parsed by each); problems outside
  // the shards (an invalid manifest, a checkpoint) are rank 0's to report.
  int other_errors = 0;
  std::vector<ShardToVerify> shards;
  for (const std::string& path : paths) {
    if (std::filesystem::is_directory(path)) {
      if (rank == 0 && inspect_checkpoint(path) != 0) ++other_errors;
    } else if (ends_with(path, ".pbtxt")) {
      auto m = data::load_manifest(path, /*verify_hashes=*/false);
      if (!m.ok()) {
        if (rank == 0)
          std::printf("BAD  manifest %s: %s\n", path.c_str(),
                      std::string(m.status().message()).c_str());
        ++other_errors;
        continue;
      }
      const std::filesystem::path dir = std::filesystem::path(path).parent_path();
      for (const data::ShardInfo& s : m->shards())
        shards.push_back({(dir / s.path()).string(), s.content_hash()});
    } else if (ends_with(path, ".h5")) {
      shards.push_back({path, ""});
    } else {
      if (rank == 0)
        std::printf(
            "BAD  %s: expected a shard (.h5), a manifest (.pbtxt) or a checkpoint "
            "directory\n",
            path.c_str());
      ++other_errors;
    }
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<data::ShardVerifyResult> results;
  for (size_t i = size_t(rank); i < shards.size(); i += size_t(ranks))
    results.push_back(data::verify_shard(shards[i].path, shards[i].content_hash));
  if (mpi) {
    std::vector<data::ShardVerifyResult> all;
    for (const std::string& part : mpi_gather_to_root(data::encode_verify_results(results))) {
      auto decoded = data::decode_verify_results(part);
      all.insert(all.end(), decoded.begin(), decoded.end());
    }
    results = std::move(all);
  }
  if (rank != 0) return 0;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // In the order given (the gather returns them by rank).
  std::map<std::string, size_t> order;
  for (size_t i = 0; i < shards.size(); ++i) order.emplace(shards[i].path, i);
  std::stable_sort(results.begin(), results.end(),
                   [&](const auto& a, const auto& b) { return order[a.path] < order[b.path]; });
  int64_t chunks = 0, bytes = 0, bad = 0, bad_shards = 0;
  for (const data::ShardVerifyResult& r : results) {
    chunks += r.chunks;
    bytes += r.bytes;
    bad += int64_t(r.bad.size());
    bad_shards += r.ok() ? 0 : 1;
    const std::string decoded =
        r.images > 0 ? absl::StrCat(", ", r.images, " images decoded") : std::string();
    std::printf("%s %s (%s, %lld chunks, %.1f MB%s)\n", r.ok() ? "ok  " : "BAD ", r.path.c_str(),
                r.kind.empty() ? "unreadable" : r.kind.c_str(), (long long)r.chunks,
                double(r.bytes) / 1e6, decoded.c_str());
    for (const std::string& b : r.bad) std::printf("  %s\n", b.c_str());
  }
  if (!shards.empty())
    std::printf(
        "verify: %zu shards, %lld chunks, %.1f MB in %.2f s (%.2f GB/s) on %d rank%s: "
        "%lld problem%s in %lld shard%s\n",
        results.size(), (long long)chunks, double(bytes) / 1e6, seconds,
        seconds > 0 ? double(bytes) / 1e9 / seconds : 0.0, ranks, ranks == 1 ? "" : "s",
        (long long)bad, bad == 1 ? "" : "s", (long long)bad_shards, bad_shards == 1 ? "" : "s");
  if (bad > 0 || other_errors > 0) {
    std::fprintf(stderr, "tessera inspect --verify: FAILED: %lld problem(s) in %lld shard(s)%s\n",
                 (long long)bad, (long long)bad_shards,
                 other_errors > 0 ? ", and the problems listed above" : "");
    return 1;
  }
  return 0;
}

}  // namespace tessera::tools
