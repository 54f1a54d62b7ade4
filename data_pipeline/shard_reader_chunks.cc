// ShardReader::read_chunk: whole 'images' chunks read raw (H5Dread_chunk) and checked and
// inflated outside libhdf5's global lock (shard_reader.h says why).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "data_pipeline/shard_reader.h"

namespace tessera::data {

ShardReader::~ShardReader() = default;

absl::StatusOr<const uint8_t*> ShardReader::window_rows(const hdf5::H5Handle& dset,
                                                        const char* name, hid_t mem_type,
                                                        size_t elem_size, int64_t first,
                                                        int64_t count, Window* w) {
  if (first >= w->first && first + count <= w->first + w->count)
    return w->bytes.data() + size_t(first - w->first) * elem_size;
  hsize_t chunk = 1, size = 0;
  {
    hdf5::H5Handle dcpl(H5Dget_create_plist(dset.get()));
    H5Pget_chunk(dcpl.get(), 1, &chunk);  // open_dataset checked: chunked, 1-D
    hdf5::H5Handle space(H5Dget_space(dset.get()));
    H5Sget_simple_extent_dims(space.get(), &size, nullptr);
  }
  const int64_t c = std::max<int64_t>(1, int64_t(chunk));
  const int64_t a = first / c * c,
                b = std::min<int64_t>(int64_t(size), (first + count + c - 1) / c * c);
  // The samples that own elements [a, b): the rows themselves, or for caption bytes the samples
  // whose captions overlap them.
  const auto [s0, s1] = samples_of(name, a, b);
  w->count = 0;  // invalid until the read succeeds
  w->bytes.resize(size_t(b - a) * elem_size);
  if (absl::Status st = read_rows(dset, name, mem_type, a, b - a, w->bytes.data(), s0, s1 - s0);
      !st.ok())
    return st;
  w->first = a;
  w->count = b - a;
  return w->bytes.data() + size_t(first - a) * elem_size;
}

absl::StatusOr<ShardSamples> ShardReader::read_chunk_rows(int64_t first, int64_t count, bool map) {
  if (getpid() != pid_) return read_samples(first, count, /*with_images=*/false);  // its error
  hdf5::H5Quiet quiet;
  ShardSamples out;
  out.first = first;
  out.count = count;
  const int64_t byte_first = caption_offsets_[first];
  auto bytes = window_rows(captions_, shard::kCaptions, H5T_NATIVE_UINT8, 1, byte_first,
                           caption_offsets_[first + count] - byte_first, &captions_window_);
  if (!bytes.ok()) return bytes.status();
  out.captions.reserve(count);
  for (int64_t i = first; i < first + count; ++i)
    out.captions.emplace_back(
        reinterpret_cast<const char*>(*bytes) + (caption_offsets_[i] - byte_first),
        caption_offsets_[i + 1] - caption_offsets_[i]);
  if (tokens_.valid()) {
    auto raw = map ? map_tokens(first, count, &out.tokens) : absl::StatusOr<bool>(false);
    if (!raw.ok()) return raw.status();
    out.tokens.resize(size_t(count * token_length_));
    if (!*raw)
      if (absl::Status s = read_rows(tokens_, shard::kTokens, H5T_NATIVE_INT32, first, count,
                                     out.tokens.data(), first, count);
          !s.ok())
        return s;
    auto lengths = window_rows(token_lengths_, shard::kTokenLengths, H5T_NATIVE_INT32, 4, first,
                               count, &token_lengths_window_);
    if (!lengths.ok()) return lengths.status();
    out.token_lengths.resize(count);
    std::memcpy(out.token_lengths.data(), *lengths, size_t(count) * 4);
    for (int64_t i = 0; i < count; ++i)
      if (out.token_lengths[i] < 0 || out.token_lengths[i] > token_length_)
        return absl::DataLossError(
            absl::StrCat("shard ", path_, ": dataset 'token_lengths', sample ", first + i,
                         ": length ", out.token_lengths[i], " outside [0, ", token_length_, "]"));
  }
  if (labels_.valid()) {
    auto labels =
        window_rows(labels_, shard::kLabels, H5T_NATIVE_INT32, 4, first, count, &labels_window_);
    if (!labels.ok()) return labels.status();
    out.labels.resize(count);
    std::memcpy(out.labels.data(), *labels, size_t(count) * 4);
  }
  return out;
}

absl::StatusOr<ShardSamples> ShardReader::read_chunk(int64_t chunk, ByteBuffer reuse, bool map) {
  const int64_t first = chunk * image_chunk_rows_;
  if (chunk < 0 || first >= num_samples_)
    return absl::OutOfRangeError(
        absl::StrCat("shard ", path_, ": chunk ", chunk, " outside [0, ",
                     (num_samples_ + image_chunk_rows_ - 1) / image_chunk_rows_, ")"));
  const int64_t count = std::min(image_chunk_rows_, num_samples_ - first);
  if (encoded()) {
    // The group's encoded bytes through a window of whole 'image_bytes' chunks (copied: decoding
    // them costs ~100x the copy), sizes from the index read at open.
    auto out = read_chunk_rows(first, count, map);
    if (!out.ok()) return out;
    const int64_t b0 = image_offsets_[first], b1 = image_offsets_[first + count];
    hdf5::H5Quiet quiet;
    auto bytes =
        window_rows(images_, shard::kImageBytes, H5T_NATIVE_UINT8, 1, b0, b1 - b0, &images_window_);
    if (!bytes.ok()) return bytes.status();
    out->images = std::move(reuse);
    out->images.assign(*bytes, *bytes + (b1 - b0));
    out->image_offsets.resize(size_t(count) + 1);
    for (int64_t i = 0; i <= count; ++i) out->image_offsets[i] = image_offsets_[first + i] - b0;
    out->image_sizes.assign(image_sizes_.begin() + 2 * first,
                            image_sizes_.begin() + 2 * (first + count));
    return out;
  }
  if (!images_direct_) return read(first, count);
  auto out = read_chunk_rows(first, count, map);
  if (!out.ok()) return out;
  out->images = std::move(reuse);  // read_images_raw reads into its memory
  if (map && !images_deflate_ && count == image_chunk_rows_) {
    auto mapped = map_images(first, &*out);
    if (!mapped.ok()) return mapped.status();
    if (*mapped) {
      out->images.clear();  // keeps its capacity: the caller may recycle it
      return out;
    }
  }
  if (absl::Status s = read_images_raw(first, count, &out->images); !s.ok()) return s;
  return out;
}

absl::Status ShardReader::read_images_raw(int64_t first, int64_t count, ByteBuffer* out) {
  const std::string where = absl::StrCat("shard ", path_, ": dataset 'images', samples [", first,
                                         ", ", first + count, ")");
  const size_t sample_bytes = size_t(resolution_ * resolution_ * 3);
  const size_t chunk_bytes = size_t(image_chunk_rows_) * sample_bytes;  // chunks are stored whole
  hsize_t offset[4] = {hsize_t(first), 0, 0, 0};
  hsize_t stored = 0;
  uint32_t mask = 0;
  ByteBuffer raw = std::move(*out);  // a recycled buffer keeps its (already touched) pages
  *out = ByteBuffer();
  {
    hdf5::H5Quiet quiet;
    if (H5Dget_chunk_storage_size(images_.get(), offset, &stored) < 0 || stored < 4) {
      const std::string hdf5 = hdf5::h5_error_text();
      return absl::DataLossError(absl::StrCat(where, ": cannot locate the chunk (", stored,
                                              " bytes stored)",
                                              hdf5.empty() ? "" : "; HDF5: ", hdf5));
    }
    raw.resize(stored);
    if (H5Dread_chunk(images_.get(), H5P_DEFAULT, offset, &mask, raw.data()) < 0)
      return absl::DataLossError(
          absl::StrCat(where, ": read failed (HDF5: ", hdf5::h5_error_text(), ")"));
  }
  // A set mask bit means HDF5 skipped that filter for this chunk (e.g. gzip that did not pay):
  // rare; let HDF5 decode it.
  if (mask != 0) {
    out->resize(size_t(count) * sample_bytes);
    hdf5::H5Quiet quiet;
    auto again = read(first, count);
    if (!again.ok()) return again.status();
    *out = std::move(again->images);
    return absl::OkStatus();
  }
  const size_t payload = size_t(stored) - 4;
  if (hdf5::fletcher32(raw.data(), payload) != hdf5::stored_checksum(raw.data() + payload))
    return absl::DataLossError(absl::StrCat(
        where, ": checksum mismatch (corrupt chunk; Fletcher32 checked on a raw read)"));
  if (images_deflate_) {
    out->resize(chunk_bytes);
    uLongf size = chunk_bytes;
    const int rc = uncompress(out->data(), &size, raw.data(), payload);
    if (rc != Z_OK || size != chunk_bytes)
      return absl::DataLossError(absl::StrCat(where, ": gzip chunk does not inflate to ",
                                              chunk_bytes, " bytes (zlib status ", rc, ")"));
  } else {
    if (payload != chunk_bytes)
      return absl::DataLossError(
          absl::StrCat(where, ": chunk holds ", payload, " bytes, expected ", chunk_bytes));
    raw.resize(chunk_bytes);
    *out = std::move(raw);
  }
  out->resize(size_t(count) * sample_bytes);
  return absl::OkStatus();
}

absl::StatusOr<bool> ShardReader::map_file(const std::string& where) {
  if (!file_map_ && !map_failed_) {
    // Chunk addresses count from the HDF5 base address: equal to the file offset only
    // without a user block.
    hdf5::H5Handle fcpl(H5Fget_create_plist(file_.get()));
    hsize_t userblock = 1;
    if (!fcpl.valid() || H5Pget_userblock(fcpl.get(), &userblock) < 0 || userblock != 0) {
      map_failed_ = true;
      return false;
    }
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      if (fd >= 0) ::close(fd);
      return absl::DataLossError(
          absl::StrCat(where, ": cannot open the file to map it: ", std::strerror(errno)));
    }
    // The whole file, once per reader. Mapping each chunk on its own (with MAP_POPULATE) cost an
    // mmap, an munmap and a TLB shootdown of the other worker threads per chunk, ~10 % of the
    // loader's time (perf on bench_loader), again whenever an evicted chunk was read again.
    // Page tables fill by page faults (the kernel maps 16 pages around each): no MAP_POPULATE
    // or MADV_POPULATE_READ, which walk every page again on each call and measured slower
    // (madvise per chunk: 12 % of the run; paired runs, steady 1 thread per CPU second: 0.67-0.70
    // -> 0.89-1.00 of raw without it).
    void* m = st.st_size > 0 ? ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_SHARED, fd, 0)
                             : MAP_FAILED;
    ::close(fd);
    if (m == MAP_FAILED) {  // e.g. a file system without mmap: read chunks instead
      map_failed_ = true;
      return false;
    }
    const size_t length = size_t(st.st_size);
    file_map_ = std::shared_ptr<const uint8_t>(
        static_cast<const uint8_t*>(m),
        [length](const uint8_t* p) { ::munmap(const_cast<uint8_t*>(p), length); });
    file_bytes_ = int64_t(st.st_size);
  }
  return file_map_ != nullptr;
}

absl::StatusOr<const uint8_t*> ShardReader::mapped_chunk(hid_t dset, const hsize_t* offset,
                                                         size_t chunk_bytes,
                                                         const std::string& where, bool strict) {
  unsigned mask = 0;
  haddr_t addr = HADDR_UNDEF;
  hsize_t stored = 0;
  {
    hdf5::H5Quiet quiet;
    auto mapped = map_file(where);
    if (!mapped.ok()) return mapped.status();
    if (!*mapped) return nullptr;
    if (H5Dget_chunk_info_by_coord(dset, offset, &mask, &addr, &stored) < 0 ||
        addr == HADDR_UNDEF) {
      const std::string hdf5 = hdf5::h5_error_text();
      if (!strict) return nullptr;  // HDF5's own read says what is wrong
      return absl::DataLossError(absl::StrCat(where, ": cannot locate the chunk",
                                              hdf5.empty() ? "" : " (HDF5: ", hdf5,
                                              hdf5.empty() ? "" : ")"));
    }
  }
  if (mask != 0) return nullptr;  // a filter was skipped for this chunk: let HDF5 decode it
  if (stored != chunk_bytes + 4) {
    if (!strict) return nullptr;
    return absl::DataLossError(absl::StrCat(
        where, ": chunk holds ", stored, " bytes with its checksum, expected ", chunk_bytes + 4));
  }
  if (int64_t(addr + stored) > file_bytes_) {
    if (!strict) return nullptr;
    return absl::DataLossError(absl::StrCat(where, ": chunk at bytes [", addr, ", ", addr + stored,
                                            ") lies past the end of the file (", file_bytes_,
                                            " bytes): truncated shard"));
  }
  const uint8_t* data = file_map_.get() + addr;
  if (hdf5::fletcher32(data, chunk_bytes) != hdf5::stored_checksum(data + chunk_bytes))
    return absl::DataLossError(absl::StrCat(
        where, ": checksum mismatch (corrupt chunk; Fletcher32 checked on a mapped read)"));
  return data;
}

absl::StatusOr<bool> ShardReader::map_tokens(int64_t first, int64_t count,
                                             std::vector<int32_t>* out) {
  if (!tokens_direct_ || count != image_chunk_rows_ || first % image_chunk_rows_ != 0) return false;
  const std::string where = absl::StrCat("shard ", path_, ": dataset 'tokens', samples [", first,
                                         ", ", first + count, ")");
  const size_t chunk_bytes = size_t(count * token_length_) * 4;
  const hsize_t offset[2] = {hsize_t(first), 0};
  auto data = mapped_chunk(tokens_.get(), offset, chunk_bytes, where, /*strict=*/false);
  if (!data.ok()) return data.status();
  if (!*data) return false;
  out->resize(size_t(count * token_length_));
  std::memcpy(out->data(), *data, chunk_bytes);  // little-endian int32 in the file and here
  return true;
}

absl::StatusOr<bool> ShardReader::map_images(int64_t first, ShardSamples* out) {
  const int64_t count = image_chunk_rows_;
  const std::string where = absl::StrCat("shard ", path_, ": dataset 'images', samples [", first,
                                         ", ", first + count, ")");
  const size_t chunk_bytes = size_t(count * resolution_ * resolution_ * 3);
  const hsize_t offset[4] = {hsize_t(first), 0, 0, 0};
  auto data = mapped_chunk(images_.get(), offset, chunk_bytes, where, /*strict=*/true);
  if (!data.ok()) return data.status();
  if (!*data) return false;
  out->mapped_images = std::shared_ptr<const uint8_t>(file_map_, *data);
  return true;
}

}  // namespace tessera::data
