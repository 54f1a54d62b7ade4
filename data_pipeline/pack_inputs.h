#pragma once
// Internal to pack_images: reading its inputs (a JSONL index or webdataset tars) into records and
// resolving label ids. Every rank of a parallel pack reads all of them, so all agree on labels.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data_pipeline/pack.h"

namespace tessera::data {

// One index line that parsed, or one sample of a webdataset tar.
struct Record {
  int64_t line = 0;
  std::string path;  // as written in the index (the split key); tar: "TAR:KEY"
  std::string caption;
  std::optional<int64_t> label;
  std::string label_name;
  std::vector<uint8_t> image_bytes;  // tar: the encoded image (no file to read)
  std::string problem;               // tar: why the sample is incomplete ("" = complete)
};

// Tar samples in tar order, then member order; `line` counts samples from 1.
absl::StatusOr<std::vector<Record>> read_tars(const std::vector<std::string>& tars);

// The index's records in line order; a malformed line is an error naming path:line.
absl::StatusOr<std::vector<Record>> read_index(const std::string& path);

// Resolves every record's label id and the label names. Returns whether the shards have labels
// (any record names one). A record whose label cannot be resolved gets label = nullopt and is
// later skipped.
absl::StatusOr<bool> resolve_labels(const PackOptions& options, std::vector<Record>& records,
                                    std::vector<std::string>& names);

}  // namespace tessera::data
