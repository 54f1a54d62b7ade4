#pragma once
// Reads one shard (data_pipeline/FORMAT.md). open() validates the whole schema up front (dtypes,
// shapes, attributes, counts, caption offsets), so read() only fails on I/O or corruption: a
// chunk whose Fletcher32 checksum does not match surfaces as absl::DataLossError naming the
// file, the dataset and the sample range read.
//
// One HDF5 file handle per reader. Open the reader in the process that reads: HDF5 handles
// inherited across fork() corrupt data (pytorch#11929), so read() refuses to run in a process
// other than the one that opened the reader. A reader is not meant to be shared between threads
// (Debian's libhdf5 serialises all calls behind one global lock anyway).

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data_pipeline/buffer.h"
#include "data_pipeline/shard_format.h"
#include "hdf5/hdf5_util.h"

namespace tessera::data {

// Samples [first, first + count) of a shard, row-major.
struct ShardSamples {
  int64_t first = 0, count = 0;
  // Version 1: (count, H, W, 3) pixels. Version 2: the encoded files, concatenated; sample k is
  // images[image_offsets[k], image_offsets[k + 1]), an image_sizes[2k] x image_sizes[2k + 1]
  // (H x W) JPEG or PNG.
  ByteBuffer images;
  std::vector<int64_t> image_offsets;   // version 2: (count + 1,), image_offsets[0] = 0
  std::vector<int32_t> image_sizes;     // version 2: (count, 2) stored (H, W)
  std::vector<int32_t> original_sizes;  // version 2, read() only: (count, 2) input (H, W)
  std::vector<std::string> captions;    // count UTF-8 strings
  std::vector<int32_t> tokens;          // (count, L), zero-padded; empty without tokens
  std::vector<int32_t> token_lengths;   // (count,); empty without tokens
  std::vector<int32_t> labels;          // (count,); empty without labels
  // Set only by read_chunk(..., map = true) on an uncompressed chunk: the images are the shard
  // file's own bytes, mapped read-only (checksummed, never copied); `images` is then empty.
  std::shared_ptr<const uint8_t> mapped_images;
  const uint8_t* image_data() const { return mapped_images ? mapped_images.get() : images.data(); }
  // Version 2: the encoded file of sample first + k.
  std::span<const uint8_t> encoded(int64_t k) const {
    return {images.data() + image_offsets[size_t(k)],
            size_t(image_offsets[size_t(k) + 1] - image_offsets[size_t(k)])};
  }
};

class ShardReader {
 public:
  static absl::StatusOr<std::unique_ptr<ShardReader>> open(const std::string& path);
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  absl::StatusOr<ShardSamples> read(int64_t first, int64_t count);

  // Chunk c of 'images' (samples [c*R, min((c+1)*R, N)), R = image_chunk_rows()) with the same
  // rows of every other dataset (captions, token_lengths and labels through windows of whole
  // chunks kept for the next call; with map, tokens as images below). The images come through
  // H5Dread_chunk: raw stored bytes, taken under libhdf5's global lock, then checked (Fletcher32)
  // and inflated (gzip) by this thread outside it, so several threads reading chunks scale (the
  // speed-up measured with two threads: H5Dread 0.98x, H5Dread_chunk + own decompression 1.95x).
  // Other filter pipelines fall back to read(). Errors are read()'s. `reuse`: a buffer (a recycled
  // chunk's images) whose memory the raw chunk is read into, so a loader in steady state touches no
  // fresh pages. map: an uncompressed chunk is taken from the reader's mapping of the whole file
  // (mapped once, on first use) at its address (H5Dget_chunk_info_by_coord) instead, and
  // checksummed there (see mapped_images): no copy at all, where a read copies page cache -> buffer
  // (bench_loader: the loader's largest cost). The shard must not change while mapped (shards are
  // written once, under a temporary name). Reading the chunk with pread into a recycled buffer
  // instead, 256 KiB at a time, each block checksummed while in cache (as checkpoint/chunks
  // does), measured slower: the kernel's copy costs what read() itself costs, and the batch copy
  // still follows (paired bench_loader runs, MB per CPU second of raw: steady 1 thread 0.42-0.48
  // against 0.69-0.91 mapped, cold 0.29-0.33 against 0.48-0.54).
  absl::StatusOr<ShardSamples> read_chunk(int64_t chunk, ByteBuffer reuse = {}, bool map = false);
  ~ShardReader();

  // Reads every chunk of every dataset of the schema once (images or, version 2, image_bytes,
  // image_offsets, image_sizes and original_sizes; captions, caption_offsets, tokens,
  // token_lengths, labels), so that each chunk's Fletcher32 checksum is checked, and checks each
  // token length is in [0, L]. Version 2: when image_bytes is intact, every image is also decoded
  // whole (warnings are errors) and a file that fails, or whose size disagrees with image_sizes,
  // is reported by its sample. Each
  // bad chunk is passed to on_bad as a DataLoss error naming the file, the dataset and the samples
  // it holds; verification goes on over the rest. map: chunks stored with Fletcher32 alone are
  // checksummed in the reader's mapping of the file (mapped_chunk, as read_chunk's), other chunks
  // read through HDF5 (read_rows); false: every chunk through HDF5 (the slower path, kept to
  // compare and to test both).
  // ('caption_offsets' was read whole at open: a corrupt chunk of it fails open() already.)
  struct VerifyCounts {
    int64_t chunks = 0, bytes = 0, bad = 0;  // bytes: the datasets' stored chunk bytes
    int64_t images = 0;                      // version 2: encoded images decoded
  };
  VerifyCounts verify(const std::function<void(const absl::Status&)>& on_bad, bool map = true);

  const std::string& path() const { return path_; }
  int64_t num_samples() const { return num_samples_; }
  // Version 1: H == W of every image. Version 2: the pack's longest-side limit (0: none).
  int64_t resolution() const { return resolution_; }
  // Version 2: images are encoded files of per-sample sizes (FORMAT.md).
  bool encoded() const { return format_version_ == shard::kEncodedVersion; }
  int64_t token_length() const { return token_length_; }  // 0 = no tokens
  bool has_labels() const { return labels_.valid(); }
  const std::string& tokenizer() const { return tokenizer_; }
  int64_t format_version() const { return format_version_; }
  // Samples per chunk of 'images' (the loader reads whole chunks: FORMAT.md measurements); in
  // version 2 the chunk rows of 'image_sizes' (its image bytes are read through a window).
  int64_t image_chunk_rows() const { return image_chunk_rows_; }

 private:
  explicit ShardReader(std::string path) : path_(std::move(path)) {}
  absl::Status load();
  absl::Status read_attributes();
  absl::Status open_dataset(const char* name, bool required, size_t elem_size, bool is_signed,
                            const std::vector<int64_t>& shape, hdf5::H5Handle* out);
  absl::Status load_caption_offsets();
  // Version 2: image_offsets and image_sizes, read whole and checked at open.
  absl::Status load_image_index();
  absl::StatusOr<ShardSamples> read_samples(int64_t first, int64_t count, bool with_images);
  absl::Status read_images_raw(int64_t first, int64_t count, ByteBuffer* out);
  // true: mapped into out->mapped_images; false: not mappable here (filter skipped, user block),
  // read it instead.
  absl::StatusOr<bool> map_images(int64_t first, ShardSamples* out);
  // A run of whole chunks of a 1-D dataset (labels, token_lengths, captions) kept after a
  // read_chunk: the next chunks of 'images' mostly fall in the same one (4,096 labels, 64 KiB of
  // captions per chunk against 64 images), so most read_chunk calls need one HDF5 read (tokens)
  // where they needed four (each call into HDF5 costs its dataspaces, lookups and global lock).
  struct Window {
    int64_t first = 0, count = 0;  // elements [first, first + count) of the dataset
    std::vector<uint8_t> bytes;
  };
  // Elements [first, first + count) of 1-D `dset` (elem_size bytes each, chunks of chunk_elems)
  // from *w, re-filled with the whole chunks covering them when they are not there. Errors name
  // the samples whose elements lie in the chunks read (the corrupt chunk's samples).
  absl::StatusOr<const uint8_t*> window_rows(const hdf5::H5Handle& dset, const char* name,
                                             hid_t mem_type, size_t elem_size, int64_t first,
                                             int64_t count, Window* w);
  // read_samples(first, count, false) through the windows: read_chunk's rows of the other
  // datasets.
  // map: the tokens of a full chunk from the file's mapping (map_tokens).
  absl::StatusOr<ShardSamples> read_chunk_rows(int64_t first, int64_t count, bool map);
  // The whole file mapped into file_map_ (once): false when it cannot be (user block, mmap
  // refused). `where` prefixes errors.
  absl::StatusOr<bool> map_file(const std::string& where);
  // The full chunk of `dset` at `offset` (chunk_bytes of data, then its Fletcher32) in the file
  // mapping, checksum verified. nullptr: not applicable (no mapping, a skipped filter; and unless
  // `strict`, a chunk HDF5 cannot locate or of another size or past the end of the file): read
  // it through HDF5. strict: those are DataLoss errors naming `where`.
  absl::StatusOr<const uint8_t*> mapped_chunk(hid_t dset, const hsize_t* offset, size_t chunk_bytes,
                                              const std::string& where, bool strict);
  // The tokens of the full chunk at `first` (rows as in 'images') from the mapping, checksummed
  // here: one HDF5 call (the chunk's address) instead of a read through the filter pipeline,
  // whose Fletcher32 sums two bytes at a time. false: not applicable (see tokens_direct_),
  // read them through HDF5.
  absl::StatusOr<bool> map_tokens(int64_t first, int64_t count, std::vector<int32_t>* out);
  // verify()'s decode of every encoded image (version 2), each failure reported with its sample.
  void verify_decodes(VerifyCounts* counts, const std::function<void(const absl::Status&)>& on_bad);
  // verify()'s walk over one dataset's chunk grid (along its first axis).
  void verify_dataset(const hdf5::H5Handle& dset, const char* name, bool map, VerifyCounts* counts,
                      const std::function<void(const absl::Status&)>& on_bad);
  // The samples whose data lie in elements [a, b) of dataset `name` (for captions: the samples
  // whose caption bytes overlap them).
  std::pair<int64_t, int64_t> samples_of(const char* name, int64_t a, int64_t b) const;
  absl::Status read_rows(const hdf5::H5Handle& dset, const char* name, hid_t mem_type,
                         int64_t first, int64_t count, void* out, int64_t sample_first,
                         int64_t sample_count);

  std::string path_;
  pid_t pid_ = 0;  // the process that opened the file
  // map_images: the whole file, mapped read-only on first use and kept for the reader's life
  // (chunks handed out share it); map_failed_: not mappable (user block, mmap refused).
  std::shared_ptr<const uint8_t> file_map_;
  bool map_failed_ = false;
  int64_t file_bytes_ = 0;
  hdf5::H5Handle file_, images_, captions_, offsets_, tokens_, token_lengths_, labels_;
  // Version 2 (images_ is then 'image_bytes').
  hdf5::H5Handle image_offsets_ds_, image_sizes_ds_, original_sizes_ds_;
  std::vector<int64_t> image_offsets_;  // (N + 1,): 8 bytes per sample, as caption offsets
  std::vector<int32_t> image_sizes_;    // (N, 2)
  int64_t image_bytes_ = 0;
  Window images_window_;
  int64_t format_version_ = 0, num_samples_ = 0, resolution_ = 0, token_length_ = 0;
  int64_t caption_bytes_ = 0;
  int64_t image_chunk_rows_ = 1;
  bool images_direct_ = false;   // 'images' filters: [Fletcher32] or [deflate, Fletcher32]
  bool images_deflate_ = false;  // ... the latter
  // 'tokens' is little-endian int32 (as this machine) with Fletcher32 its only filter, chunked as
  // 'images' by rows and whole along its length: map_tokens applies.
  bool tokens_direct_ = false;
  std::string tokenizer_;
  std::vector<int64_t> caption_offsets_;  // (N + 1,), read once at open: 8 bytes per sample
  Window labels_window_, token_lengths_window_, captions_window_;
};

}  // namespace tessera::data
