#pragma once
// Writes one shard in the format of data_pipeline/FORMAT.md. Samples are appended one at a time
// and flushed to HDF5 a chunk at a time (memory stays at one image chunk); finish() closes the
// file written at PATH.tmp and renames it to PATH, so a shard is either complete or absent.
// A writer destroyed without finish() removes PATH.tmp.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data_pipeline/shard_format.h"
#include "hdf5/hdf5_util.h"

namespace tessera::data {

struct ShardWriterOptions {
  // 1: decoded pixels (`images`); 2: encoded files (`image_bytes` + `image_offsets`, FORMAT.md).
  int64_t format_version = shard::kFormatVersion;
  // Version 1: H == W, required. Version 2: the longest side the packer limited images to (0:
  // stored as they came); recorded, not enforced.
  int64_t resolution = 0;
  int64_t token_length = 0;  // L; 0 = the shard has no tokens
  bool labels = false;       // the shard has labels
  std::string tokenizer;     // identity of the tokenizer (e.g. "sentencepiece:<sha256>")
  // Samples per chunk of 'images' (version 1) or of 'image_sizes' and 'tokens' (version 2: the
  // loader's unit of reading); 0 = shard::default_image_chunk() or kEncodedChunkRows.
  int64_t image_chunk = 0;
  int gzip_level = 0;  // 0 = uncompressed (the default: see FORMAT.md for why), 1..9 = gzip
};

// One sample. Version 1: `image` is resolution*resolution*3 bytes (H, W, RGB). Version 2:
// `encoded` holds a JPEG or PNG file of `height` x `width` pixels, made from an input of
// `original_height` x `original_width` (the same when stored as it came). `tokens` has at most
// token_length entries (stored zero-padded, with its length); `label` is used when the shard
// has labels.
struct SampleToWrite {
  std::span<const uint8_t> image;
  std::string_view caption;
  std::span<const int32_t> tokens;
  int32_t label = 0;
  std::span<const uint8_t> encoded = {};
  int32_t height = 0, width = 0, original_height = 0, original_width = 0;
};

class ShardWriter {
 public:
  // Creates PATH.tmp (replacing a stale one) with the shard's datasets and attributes.
  static absl::StatusOr<std::unique_ptr<ShardWriter>> create(const std::string& path,
                                                             const ShardWriterOptions& options);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  absl::Status append(const SampleToWrite& sample);
  // Flushes, writes num_samples, closes and renames PATH.tmp to PATH.
  absl::Status finish();

  int64_t num_samples() const { return written_ + pending_; }
  const std::string& path() const { return path_; }

 private:
  ShardWriter(std::string path, ShardWriterOptions options);
  absl::Status open();
  absl::Status flush();
  absl::Status fail(absl::Status status);  // records the first error; later calls return it
  absl::Status error(const std::string& what) const;  // names the file, adds the HDF5 stack

  std::string path_, tmp_path_;
  ShardWriterOptions options_;
  bool encoded() const { return options_.format_version == shard::kEncodedVersion; }

  hdf5::H5Handle file_, images_, captions_, offsets_, tokens_, token_lengths_, labels_;
  hdf5::H5Handle image_offsets_, image_sizes_, original_sizes_;  // version 2 (images_: bytes)
  absl::Status status_;
  bool finished_ = false;

  int64_t written_ = 0;        // samples already in the file
  int64_t caption_bytes_ = 0;  // caption bytes already in the file
  int64_t image_bytes_ = 0;    // version 2: encoded bytes already in the file
  int64_t pending_ = 0;        // samples buffered below
  std::vector<uint8_t> image_buf_, caption_buf_;
  std::vector<int64_t> offset_buf_;               // end offsets of buffered captions
  std::vector<int64_t> image_offset_buf_;         // version 2: end offsets of buffered images
  std::vector<int32_t> size_buf_, original_buf_;  // version 2: (H, W) pairs
  std::vector<int32_t> token_buf_, length_buf_, label_buf_;
};

}  // namespace tessera::data
