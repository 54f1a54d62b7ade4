// ShardReader::verify: every chunk of every dataset read once (tessera inspect --verify), through
// the reader's own chunk paths (mapped_chunk, read_rows), so verification checks exactly what a
// training read would check; for version 2 also every encoded image decoded whole (decode_image).
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/shard_reader.h"

namespace tessera::data {

std::pair<int64_t, int64_t> ShardReader::samples_of(const char* name, int64_t a, int64_t b) const {
  const bool captions = std::string_view(name) == shard::kCaptions;
  if (captions || std::string_view(name) == shard::kImageBytes) {
    // Byte datasets: the samples whose bytes overlap [a, b).
    const std::vector<int64_t>& offsets = captions ? caption_offsets_ : image_offsets_;
    int64_t s0 = std::upper_bound(offsets.begin(), offsets.end(), a) - offsets.begin() - 1;
    int64_t s1 = std::lower_bound(offsets.begin(), offsets.end(), b) - offsets.begin();
    s0 = std::clamp<int64_t>(s0, 0, num_samples_);
    return {s0, std::clamp<int64_t>(s1, s0, num_samples_)};
  }
  // caption_offsets and image_offsets hold N + 1 entries: the last belongs to the last sample.
  return {std::min(a, num_samples_), std::min(b, num_samples_)};
}

ShardReader::VerifyCounts ShardReader::verify(
    const std::function<void(const absl::Status&)>& on_bad, bool map) {
  VerifyCounts counts;
  if (getpid() != pid_) {
    ++counts.bad;
    on_bad(read_samples(0, 0, false).status());  // the cross-fork error
    return counts;
  }
  hdf5::H5Quiet quiet;
  const bool encoded = format_version_ >= 2;  // images_ is then 'image_bytes'
  const int64_t bad_before_images = counts.bad;
  verify_dataset(images_, encoded ? shard::kImageBytes : shard::kImages, map, &counts, on_bad);
  const bool image_bytes_intact = counts.bad == bad_before_images;
  for (const auto& [dset, name] :
       {std::pair<const hdf5::H5Handle*, const char*>{&captions_, shard::kCaptions},
        {&offsets_, shard::kCaptionOffsets},
        {&image_offsets_ds_, shard::kImageOffsets},
        {&image_sizes_ds_, shard::kImageSizes},
        {&original_sizes_ds_, shard::kOriginalSizes},
        {&tokens_, shard::kTokens},
        {&token_lengths_, shard::kTokenLengths},
        {&labels_, shard::kLabels}})
    if (dset->valid()) verify_dataset(*dset, name, map, &counts, on_bad);
  // Version 2: every file must also decode, at the size the shard records. A checksum only says
  // the bytes are those that were written; a truncated or mangled upload was written that way.
  // Decoding at 1/8 scale (DCT-domain for JPEG) still reads each file's whole entropy stream.
  if (encoded && image_bytes_intact) verify_decodes(&counts, on_bad);
  return counts;
}

void ShardReader::verify_decodes(VerifyCounts* counts,
                                 const std::function<void(const absl::Status&)>& on_bad) {
  constexpr int64_t kSamplesPerRead = 256;
  for (int64_t first = 0; first < num_samples_; first += kSamplesPerRead) {
    const int64_t count = std::min(kSamplesPerRead, num_samples_ - first);
    absl::StatusOr<ShardSamples> samples = read(first, count);
    if (!samples.ok()) {
      ++counts->bad;
      on_bad(samples.status());
      continue;
    }
    for (int64_t k = 0; k < count; ++k) {
      const int height = samples->image_sizes[size_t(2 * k)];
      const int width = samples->image_sizes[size_t(2 * k + 1)];
      const std::string name =
          absl::StrCat("shard ", path_, ": dataset '", shard::kImageBytes, "', sample ", first + k);
      ++counts->images;
      // The whole file, as the packer decoded it: a warning (truncated or corrupt data) is an
      // error here, where the training path (decode_crop) stops reading below its crop.
      absl::StatusOr<RgbImage> image = decode_image(samples->encoded(k), name);
      if (!image.ok()) {
        ++counts->bad;
        on_bad(image.status());
      } else if (image->height != height || image->width != width) {
        ++counts->bad;
        on_bad(absl::DataLossError(absl::StrCat(name, ": decodes to ", image->height, " x ",
                                                image->width, ", 'image_sizes' records ", height,
                                                " x ", width)));
      }
    }
  }
}

void ShardReader::verify_dataset(const hdf5::H5Handle& dset, const char* name, bool map,
                                 VerifyCounts* counts,
                                 const std::function<void(const absl::Status&)>& on_bad) {
  hdf5::H5Handle space(H5Dget_space(dset.get()));
  hdf5::H5Handle dcpl(H5Dget_create_plist(dset.get()));
  hdf5::H5Handle file_type(H5Dget_type(dset.get()));
  // Read without conversion: the bytes only need to pass the filters (token_lengths are also
  // range-checked, through a native copy of the type).
  hdf5::H5Handle mem_type(H5Tget_native_type(file_type.get(), H5T_DIR_ASCEND));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(std::max(rank, 1)), chunk(std::max(rank, 1));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  H5Pget_chunk(dcpl.get(), rank, chunk.data());  // open_dataset checked: chunked
  const size_t elem = H5Tget_size(file_type.get());
  // A chunk is mappable when it spans whole rows (every other axis entire) and Fletcher32 is the
  // only filter: then it is chunk_bytes of data followed by the checksum.
  bool whole_rows = true;
  size_t row_bytes = elem;
  for (int i = 1; i < rank; ++i) {
    whole_rows = whole_rows && chunk[i] == dims[i];
    row_bytes *= dims[i];
  }
  const int64_t rows = int64_t(dims[0]), chunk_rows = std::max<int64_t>(1, int64_t(chunk[0]));
  const size_t chunk_bytes = size_t(chunk_rows) * row_bytes;
  const bool mappable = map && whole_rows && H5Pget_nfilters(dcpl.get()) == 1;
  const bool lengths = std::string_view(name) == shard::kTokenLengths;
  const bool native_int32 = H5Tequal(file_type.get(), H5T_NATIVE_INT32) > 0;
  std::vector<uint8_t> scratch;
  std::vector<hsize_t> offset(std::max(rank, 1), 0);
  for (int64_t a = 0; a < rows; a += chunk_rows) {
    const int64_t b = std::min(rows, a + chunk_rows);
    const auto [s0, s1] = samples_of(name, a, b);
    const std::string where =
        absl::StrCat("shard ", path_, ": dataset '", name, "', samples [", s0, ", ", s1, ")");
    ++counts->chunks;
    counts->bytes += int64_t(chunk_bytes);
    const uint8_t* data = nullptr;
    if (mappable) {
      offset[0] = hsize_t(a);
      auto mapped = mapped_chunk(dset.get(), offset.data(), chunk_bytes, where, /*strict=*/false);
      if (!mapped.ok()) {
        ++counts->bad;
        on_bad(mapped.status());
        continue;
      }
      data = *mapped;
    }
    bool native = data == nullptr || native_int32;
    if (data == nullptr) {  // not mapped: through HDF5's filter pipeline
      scratch.resize(size_t(b - a) * row_bytes);
      if (absl::Status s =
              read_rows(dset, name, mem_type.get(), a, b - a, scratch.data(), s0, s1 - s0);
          !s.ok()) {
        ++counts->bad;
        on_bad(s);
        continue;
      }
      data = scratch.data();
    }
    if (lengths && native && elem == 4) {
      for (int64_t i = 0; i < b - a; ++i) {
        int32_t n;
        std::memcpy(&n, data + 4 * i, 4);
        if (n < 0 || n > token_length_) {
          ++counts->bad;
          on_bad(absl::DataLossError(
              absl::StrCat("shard ", path_, ": dataset 'token_lengths', sample ", a + i,
                           ": length ", n, " outside [0, ", token_length_, "]")));
          break;  // one report per chunk
        }
      }
    }
  }
}

}  // namespace tessera::data
