#pragma once
// Packing: a JSONL image index -> HDF5 shards (FORMAT.md) plus one manifest per split
// (proto/data.proto, DIR/SPLIT.pbtxt). `tessera pack` is a thin front end over pack_images.
//
// Index lines are JSON objects {"path", "caption", "label", "label_name"} (what
// scripts/make_demo_data writes); label and label_name are optional. A relative path is taken
// relative to the index's directory. Inputs that cannot become a sample (unreadable image, empty
// caption, missing label) are skipped and reported, not fatal: one broken file out of thousands
// of clip-art images should not cost the whole pack. A malformed index line is fatal (the index
// is ours, so a bad line means a bad index, not a bad input).
//
// The train/val split is a function of the path string as written in the index only (FNV-1a 64
// of it, see split_of), so repacking, reordering the index or adding inputs never moves an
// existing image between splits: a val image stays unseen in training.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/data.pb.h"

namespace tessera::data {

// File name of the tokenizer model that pack copies beside the manifests.
inline constexpr const char* kTokenizerModelFile = "tokenizer.model";

struct PackOptions {
  std::string index_path;              // JSONL; or:
  std::vector<std::string> tar_paths;  // webdataset-style tars (data_pipeline/tar_input.h)
  std::string out_dir;  // created if missing; gets SPLIT-00000.h5 ... and SPLIT.pbtxt
  int resolution = 64;  // version 1: samples are resolution x resolution RGB
  // 1: decoded pixels at `resolution` (FORMAT.md version 1); 2: the encoded files (version 2):
  // an input whose longer side is at most max_side (or any input, with max_side 0) is stored as
  // it came, byte for byte; a larger one is shrunk to max_side (area averaging) and re-encoded as
  // a JPEG of `quality`. Every input is decoded once either way, so a file the loader could not
  // decode is skipped here, not met in training.
  int format_version = 1;
  int max_side = 0;
  int quality = 90;
  std::string tokenizer_model;  // SentencePiece .model; "" = the shards have no tokens
  int context = 32;             // tokens per sample (with end-of-text and padding)
  int64_t samples_per_shard = 1024;
  double val_fraction = 0.1;  // in [0, 1]
  // Label names, one per line (line i = label i); "" = taken from the index's label_name
  // fields (a label without an int id gets the next id in order of first appearance).
  std::string labels_path;
  // Called after every input (done, total) with total = index lines; may be empty. With several
  // ranks it is called on rank 0 only, with done = rank 0's own count x ranks (an estimate that
  // costs no communication; the blocks differ in size by at most one input).
  std::function<void(int64_t done, int64_t total)> progress;

  // Parallel packing (several processes, e.g. MPI ranks): rank r of `ranks` packs the r-th
  // contiguous block of the inputs into its own shards (SPLIT-rRRRRR-KKKKK.h5), then rank 0
  // gathers every rank's shard list and skip list and writes the manifests. With ranks == 1 the
  // shards are SPLIT-KKKKK.h5 as before.
  int rank = 0, ranks = 1;
  // Required when ranks > 1: called once by every rank, with this rank's result (an opaque
  // string); returns all ranks' strings in rank order on rank 0 (anything on other ranks).
  // pack_images calls it on every path, errors included (a rank that fails sends its error),
  // so no rank waits for one that has given up.
  std::function<std::vector<std::string>(const std::string& mine)> gather;
};

struct SkippedInput {
  int64_t line = 0;  // 1-based line of the index
  std::string path;
  std::string reason;
};

struct SplitReport {
  std::string split;  // "train" or "val"
  int64_t num_samples = 0;
  std::vector<std::string> shards;  // file names in out_dir
  std::string manifest;             // path of SPLIT.pbtxt; "" when the split is empty
};

struct PackReport {
  int64_t inputs = 0;               // index lines with a record
  std::vector<SplitReport> splits;  // train, then val
  std::vector<SkippedInput> skipped;
  std::vector<std::string> label_names;
  std::string tokenizer;  // identity written to the shards and manifests
  // Ranks > 1: what this rank packed alone (on ranks other than 0, splits and skipped hold only
  // this rank's part and no manifest is written).
};

// "train" or "val" for an index path: val when the FNV-1a 64 hash of `path`, read as a fraction
// in [0, 1), is below val_fraction.
const char* split_of(const std::string& path, double val_fraction);

// "fnv1a64:<16 hex digits>" of a file's bytes (the manifest's content_hash).
absl::StatusOr<std::string> file_content_hash(const std::string& path);

absl::StatusOr<PackReport> pack_images(const PackOptions& options);

// Writes a manifest as protobuf text to PATH (through PATH.tmp and a rename, so a reader never
// sees half a manifest).
absl::Status write_manifest(const Manifest& manifest, const std::string& path);

// Parses DIR/SPLIT.pbtxt and checks it: format_version is the one this build reads, each
// shard exists with the recorded byte size (and, with verify_hashes, content hash), and the
// shards' num_samples add up to the manifest's. Shard paths stay as written (relative to the
// manifest's directory). Errors name the manifest and, where one is at fault, the shard.
absl::StatusOr<Manifest> load_manifest(const std::string& path, bool verify_hashes = false);

}  // namespace tessera::data
