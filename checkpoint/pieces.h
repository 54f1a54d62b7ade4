#pragma once
// The HDF5 side of checkpoints: one file per writing rank, one dataset per stored piece, f32,
// chunked with the Fletcher32 filter (every chunk read is verified). Reading takes the overlap
// of each stored piece with the box a rank needs and reads the chunks it touches, each whole and
// verified, into place (checkpoint/chunks.h); files tessera did not write go through
// HDF5's hyperslab selections and its own filter.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "checkpoint/chunks.h"
#include "checkpoint/slices.h"
#include "hdf5/hdf5_util.h"
#include "proto/checkpoint.pb.h"

namespace tessera::checkpoint::detail {

class PieceWriter {
 public:
  // Creates (truncates) `path`; throws tessera::Error naming it on failure.
  explicit PieceWriter(std::string path);
  ~PieceWriter();
  // Writes a dataset of shape `count`, row-major from `data`. Throws naming file and dataset.
  // [data, buffer_end) is scratch space during the call (checkpoint/chunks.h: the
  // checksums go after each chunk's bytes) and unchanged after it; buffer_end >= data + count's
  // product.
  void write(const std::string& dataset, const std::vector<int64_t>& count, float* data,
             const float* buffer_end);
  // Flushes, closes and fsyncs the file; returns its size in bytes. Throws on failure (a full
  // disk shows here at the latest).
  int64_t close();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  hdf5::H5Handle file_;
  std::vector<uint8_t> scratch_;  // a last chunk that cannot be written in place
};

class PieceReader {
 public:
  // dir: the step directory the pieces' file names are relative to.
  explicit PieceReader(std::string dir) : dir_(std::move(dir)) {}
  // Fills dst (contiguous, row-major over want.count) with the part `want` (global coordinates)
  // of tensor `t`, from every stored piece that overlaps it. Errors name the file, dataset and
  // tensor: missing file, missing dataset, wrong shape, checksum failure, or pieces that do not
  // cover `want`. (queue() then finish(); not to be mixed with reads still queued.)
  absl::Status read(const checkpoint::Tensor& t, const Box& want, float* dst);

  // The same, except that the reads of whole pieces stored as tessera writes them (the bulk of
  // a load into the layout that wrote the checkpoint) are only planned here and run in finish(),
  // in parallel over their chunks (OpenMP threads: file reads and checksums, no HDF5 calls).
  // dst is filled only once finish() has returned OK.
  absl::Status queue(const checkpoint::Tensor& t, const Box& want, float* dst);
  // Runs the queued chunk reads; the error (I/O, truncated file, checksum mismatch) of the
  // first failing chunk in queue order, naming file, dataset, tensor and rows.
  absl::Status finish();

 private:
  // A rank file opened twice: by HDF5 (metadata, partial reads) and with open(2) for reading
  // whole chunks directly (checkpoint/chunks.h); fd -1 when that does not apply.
  struct File {
    hdf5::H5Handle h5;
    int fd = -1;
    File() = default;
    File(File&& o) noexcept : h5(std::move(o.h5)), fd(std::exchange(o.fd, -1)) {}
    ~File();
  };
  absl::StatusOr<const File*> file(const std::string& name);
  std::string dir_;
  std::map<std::string, File> files_;
  // Queued chunk reads, and for each the error context of its piece (contexts_[context]).
  struct Queued {
    ChunkRead chunk;
    size_t context = 0;
  };
  std::vector<Queued> queued_;
  std::vector<std::string> contexts_;  // "checkpoint file F, dataset D: ... in tensor T"
};

}  // namespace tessera::checkpoint::detail
