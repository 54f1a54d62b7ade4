// Manifest files: writing (atomically) and loading with validation (declared in pack.h).
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_format.h"

namespace tessera::data {

namespace fs = std::filesystem;

absl::Status write_manifest(const Manifest& m, const std::string& path) {
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(m, &text))
    return absl::InternalError("pack: cannot print the manifest");
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << "# tessera pack manifest (proto/data.proto tessera.data.Manifest)\n" << text;
    if (!out.flush()) return absl::PermissionDeniedError(absl::StrCat("pack: cannot write ", tmp));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("pack: cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<Manifest> load_manifest(const std::string& path, bool verify_hashes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("manifest ", path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();

  // Parse errors go to a collector so the message carries the line and column.
  struct Collector : google::protobuf::io::ErrorCollector {
    std::string errors;
    void AddError(int line, int column, const std::string& message) override {
      absl::StrAppend(&errors, errors.empty() ? "" : "; ", "line ", line + 1, ":", column + 1, ": ",
                      message);
    }
  } collector;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  Manifest m;
  if (!parser.ParseFromString(text.str(), &m))
    return absl::InvalidArgumentError(absl::StrCat("manifest ", path, ": ", collector.errors));

  auto bad = [&](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat("manifest ", path, ": ", what));
  };
  const bool encoded = m.format_version() == shard::kEncodedVersion && m.kind() != "text";
  if (m.format_version() != shard::kFormatVersion && !encoded)
    return bad(absl::StrCat("format_version ", m.format_version(), ", this build reads ",
                            shard::kFormatVersion, " and (image shards) ", shard::kEncodedVersion));
  if (m.kind() != "" && m.kind() != "images" && m.kind() != "text")
    return bad(absl::StrCat("kind '", m.kind(), "', expected images or text"));
  if (m.kind() != "text" && m.resolution() < (encoded ? 0 : 1))
    return bad(absl::StrCat("resolution ", m.resolution()));
  if (m.shards().empty()) return bad("no shards");
  const fs::path dir = fs::path(path).parent_path();
  int64_t total = 0;
  for (const ShardInfo& s : m.shards()) {
    const std::string file = (dir / s.path()).string();
    auto shard_bad = [&](const std::string& what) {
      return bad(absl::StrCat("shard ", file, ": ", what));
    };
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (ec) return shard_bad(absl::StrCat("missing (", ec.message(), ")"));
    if (int64_t(size) != s.bytes())
      return shard_bad(absl::StrCat("size ", size, " bytes, manifest records ", s.bytes()));
    if (s.num_samples() < 1) return shard_bad(absl::StrCat("num_samples ", s.num_samples()));
    if (verify_hashes) {
      auto h = file_content_hash(file);
      if (!h.ok()) return shard_bad(std::string(h.status().message()));
      if (*h != s.content_hash())
        return shard_bad(
            absl::StrCat("content hash ", *h, ", manifest records ", s.content_hash()));
    }
    total += s.num_samples();
  }
  if (total != m.num_samples())
    return bad(absl::StrCat("shards hold ", total, " samples, num_samples says ", m.num_samples()));
  return m;
}

}  // namespace tessera::data
