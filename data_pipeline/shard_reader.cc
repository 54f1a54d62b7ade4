#include "data_pipeline/shard_reader.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tessera::data {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::vector<std::string> parts;
  for (int64_t d : shape) parts.push_back(d < 0 ? "any" : absl::StrCat(d));
  return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
}

std::string with_hdf5(std::string message) {
  std::string hdf5 = hdf5::h5_error_text();
  if (!hdf5.empty()) absl::StrAppend(&message, " (HDF5: ", hdf5, ")");
  return message;
}

// Raw-data chunk cache for one dataset: big enough for two chunks, so that consecutive reads
// that split a chunk do not read and checksum it twice. A Fletcher32-filtered chunk that does
// not fit the cache (default 1 MiB) is read whole for every partial access.
constexpr size_t kMinChunkCache = size_t{1} << 20, kMaxChunkCache = size_t{64} << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<ShardReader>> ShardReader::open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return absl::NotFoundError(absl::StrCat("shard ", path, ": no such file"));
  std::unique_ptr<ShardReader> reader(new ShardReader(path));
  if (absl::Status s = reader->load(); !s.ok()) return s;
  return reader;
}

absl::Status ShardReader::load() {
  hdf5::H5Quiet quiet;
  pid_ = getpid();
  if (H5Fis_hdf5(path_.c_str()) <= 0)
    return absl::DataLossError(with_hdf5(absl::StrCat("shard ", path_, ": not an HDF5 file")));
  file_ = hdf5::H5Handle(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file_.valid())
    return absl::DataLossError(
        with_hdf5(absl::StrCat("shard ", path_, ": cannot open (truncated or corrupt file?)")));
  if (absl::Status s = read_attributes(); !s.ok()) return s;
  const int64_t n = num_samples_, r = resolution_;
  absl::Status s;
  if (encoded()) {
    // 'image_sizes' first: its chunk rows are the unit read_chunk reads (tokens match them).
    s = open_dataset(shard::kImageSizes, true, 4, true, {n, 2}, &image_sizes_ds_);
    if (s.ok()) s = open_dataset(shard::kImageBytes, true, 1, false, {-1}, &images_);
    if (s.ok()) s = open_dataset(shard::kImageOffsets, true, 8, true, {n + 1}, &image_offsets_ds_);
    if (s.ok()) s = open_dataset(shard::kOriginalSizes, true, 4, true, {n, 2}, &original_sizes_ds_);
  } else {
    s = open_dataset(shard::kImages, true, 1, false, {n, r, r, 3}, &images_);
  }
  if (s.ok()) s = open_dataset(shard::kCaptions, true, 1, false, {-1}, &captions_);
  if (s.ok()) s = open_dataset(shard::kCaptionOffsets, true, 8, true, {n + 1}, &offsets_);
  if (s.ok()) s = open_dataset(shard::kTokens, false, 4, true, {n, -1}, &tokens_);
  if (s.ok())
    s = open_dataset(shard::kTokenLengths, tokens_.valid(), 4, true, {n}, &token_lengths_);
  if (s.ok()) s = open_dataset(shard::kLabels, false, 4, true, {n}, &labels_);
  if (!s.ok()) return s;
  if (token_lengths_.valid() && !tokens_.valid())
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", path_, ": dataset 'token_lengths' is present without 'tokens'"));
  if (tokens_.valid()) {
    hdf5::H5Handle space(H5Dget_space(tokens_.get()));
    hsize_t dims[2];
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    token_length_ = static_cast<int64_t>(dims[1]);
  }
  if (absl::Status st = load_caption_offsets(); !st.ok()) return st;
  return encoded() ? load_image_index() : absl::OkStatus();
}

absl::Status ShardReader::read_attributes() {
  auto missing = [&](const char* name) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", path_, ": missing file attribute '", name, "'"));
  };
  auto read_int = [&](const char* name, int64_t* out) -> absl::Status {
    if (H5Aexists(file_.get(), name) <= 0) return missing(name);
    hdf5::H5Handle attr(H5Aopen(file_.get(), name, H5P_DEFAULT));
    hdf5::H5Handle type(H5Aget_type(attr.get()));
    hdf5::H5Handle space(H5Aget_space(attr.get()));
    if (H5Tget_class(type.get()) != H5T_INTEGER || H5Sget_simple_extent_npoints(space.get()) != 1)
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", path_, ": file attribute '", name, "' has type ",
                       hdf5::describe_type(type.get()), ", expected one integer"));
    if (H5Aread(attr.get(), H5T_NATIVE_INT64, out) < 0)
      return absl::DataLossError(
          with_hdf5(absl::StrCat("shard ", path_, ": cannot read attribute '", name, "'")));
    return absl::OkStatus();
  };
  absl::Status s = read_int(shard::kAttrFormatVersion, &format_version_);
  if (s.ok() && format_version_ != shard::kFormatVersion &&
      format_version_ != shard::kEncodedVersion)
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", path_, ": format_version ", format_version_, ", this build reads versions ",
        shard::kFormatVersion, " and ", shard::kEncodedVersion));
  if (s.ok()) s = read_int(shard::kAttrResolution, &resolution_);
  if (s.ok()) s = read_int(shard::kAttrNumSamples, &num_samples_);
  if (!s.ok()) return s;
  if (resolution_ < (encoded() ? 0 : 1) || num_samples_ < 0)
    return absl::FailedPreconditionError(absl::StrCat("shard ", path_, ": resolution ", resolution_,
                                                      ", num_samples ", num_samples_,
                                                      " are not valid"));
  if (resolution_ > 0 && resolution_ > shard::kMaxImagePixels / resolution_)
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", path_, ": file attribute 'resolution' ", resolution_,
                     " exceeds the limit of ", shard::kMaxImagePixels, " pixels per image"));
  if (num_samples_ > shard::kMaxSamples)
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", path_, ": file attribute 'num_samples' ", num_samples_,
                     " exceeds the limit of ", shard::kMaxSamples, " samples per shard"));

  // The tokenizer identity: h5py writes str as variable-length UTF-8, numpy bytes as fixed
  // length; both are accepted.
  const char* name = shard::kAttrTokenizer;
  if (H5Aexists(file_.get(), name) <= 0) return missing(name);
  hdf5::H5Handle attr(H5Aopen(file_.get(), name, H5P_DEFAULT));
  hdf5::H5Handle type(H5Aget_type(attr.get()));
  if (H5Tget_class(type.get()) != H5T_STRING)
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", path_, ": file attribute 'tokenizer' has type ",
                     hdf5::describe_type(type.get()), ", expected a string"));
  if (H5Tis_variable_str(type.get()) > 0) {
    hdf5::H5Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* value = nullptr;
    if (H5Aread(attr.get(), mem.get(), &value) < 0)
      return absl::DataLossError(
          with_hdf5(absl::StrCat("shard ", path_, ": cannot read 'tokenizer'")));
    tokenizer_ = value != nullptr ? value : "";
    H5free_memory(value);
  } else {
    std::string value(H5Tget_size(type.get()), '\0');
    hdf5::H5Handle mem(H5Tcopy(type.get()));
    if (H5Aread(attr.get(), mem.get(), value.data()) < 0)
      return absl::DataLossError(
          with_hdf5(absl::StrCat("shard ", path_, ": cannot read 'tokenizer'")));
    tokenizer_ = value.substr(0, value.find('\0'));
  }
  return absl::OkStatus();
}

absl::Status ShardReader::open_dataset(const char* name, bool required, size_t elem_size,
                                       bool is_signed, const std::vector<int64_t>& shape,
                                       hdf5::H5Handle* out) {
  if (H5Lexists(file_.get(), name, H5P_DEFAULT) <= 0) {
    if (!required) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", path_, ": missing dataset '", name, "'"));
  }
  auto bad = [&](const std::string& what) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", path_, ": dataset '", name, "' ", what));
  };
  hdf5::H5Handle dset(H5Dopen2(file_.get(), name, H5P_DEFAULT));
  if (!dset.valid())
    return absl::DataLossError(
        with_hdf5(absl::StrCat("shard ", path_, ": cannot open dataset '", name, "'")));
  hdf5::H5Handle type(H5Dget_type(dset.get()));
  if (!hdf5::is_integer_type(type.get(), elem_size, is_signed))
    return bad(absl::StrCat("has dtype ", hdf5::describe_type(type.get()), ", expected ",
                            is_signed ? "int" : "uint", elem_size * 8));
  hdf5::H5Handle space(H5Dget_space(dset.get()));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(std::max(rank, 0));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  std::vector<int64_t> got(dims.begin(), dims.end());
  bool shape_ok = rank == static_cast<int>(shape.size());
  for (size_t i = 0; shape_ok && i < shape.size(); ++i)
    shape_ok = shape[i] < 0 || shape[i] == got[i];
  if (!shape_ok)
    return bad(absl::StrCat("has shape ", shape_text(got), ", expected ", shape_text(shape),
                            " (num_samples ", num_samples_, ", resolution ", resolution_, ")"));

  // Corruption must be caught by the library: every dataset is chunked with Fletcher32.
  hdf5::H5Handle dcpl(H5Dget_create_plist(dset.get()));
  unsigned flags = 0;
  size_t n_values = 0;
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED ||
      H5Pget_filter_by_id2(dcpl.get(), H5Z_FILTER_FLETCHER32, &flags, &n_values, nullptr, 0,
                           nullptr, nullptr) < 0) {
    hdf5::h5_error_text();  // the failed filter lookup left an error on the stack
    return bad("is not chunked with the Fletcher32 checksum filter (FORMAT.md requires it)");
  }
  std::vector<hsize_t> chunk(rank);
  H5Pget_chunk(dcpl.get(), rank, chunk.data());
  {
    // Reads allocate whole chunks (and inflate gzip ones to their declared size).
    double bytes = double(elem_size);
    for (hsize_t c : chunk) bytes *= double(c);
    if (bytes > double(shard::kMaxChunkBytes))
      return bad(absl::StrCat("has chunks of ", bytes, " bytes, over the limit of ",
                              shard::kMaxChunkBytes));
  }
  if (std::string(name) == shard::kTokens && rank == 2 && int64_t(dims[1]) > shard::kMaxTokenLength)
    return bad(
        absl::StrCat("has token length ", dims[1], ", over the limit of ", shard::kMaxTokenLength));
  if (std::string(name) == shard::kImageSizes) image_chunk_rows_ = std::max<int64_t>(1, chunk[0]);
  if (std::string(name) == shard::kImages) {
    image_chunk_rows_ = std::max<int64_t>(1, chunk[0]);
    // read_chunk() reads 'images' chunks raw when the pipeline is one it can undo itself.
    std::vector<H5Z_filter_t> ids;
    for (int i = 0; i < H5Pget_nfilters(dcpl.get()); ++i) {
      unsigned filter_flags = 0;
      size_t n_values = 0;
      ids.push_back(H5Pget_filter2(dcpl.get(), unsigned(i), &filter_flags, &n_values, nullptr, 0,
                                   nullptr, nullptr));
    }
    images_deflate_ = ids == std::vector<H5Z_filter_t>{H5Z_FILTER_DEFLATE, H5Z_FILTER_FLETCHER32};
    images_direct_ = images_deflate_ || ids == std::vector<H5Z_filter_t>{H5Z_FILTER_FLETCHER32};
  }
  if (std::string(name) == shard::kTokens && rank == 2) {
    tokens_direct_ = std::endian::native == std::endian::little &&
                     H5Tequal(type.get(), H5T_STD_I32LE) > 0 && H5Pget_nfilters(dcpl.get()) == 1 &&
                     int64_t(chunk[0]) == image_chunk_rows_ && chunk[1] == dims[1];
  }
  size_t chunk_bytes = elem_size;
  for (hsize_t c : chunk) chunk_bytes *= c;
  if (2 * chunk_bytes > kMinChunkCache) {
    hdf5::H5Handle dapl(H5Pcreate(H5P_DATASET_ACCESS));
    H5Pset_chunk_cache(dapl.get(), 521, std::min(2 * chunk_bytes, kMaxChunkCache), 1.0);
    dset = hdf5::H5Handle(H5Dopen2(file_.get(), name, dapl.get()));
    if (!dset.valid())
      return absl::DataLossError(
          with_hdf5(absl::StrCat("shard ", path_, ": cannot open dataset '", name, "'")));
  }
  *out = std::move(dset);
  return absl::OkStatus();
}

absl::Status ShardReader::load_caption_offsets() {
  hdf5::H5Handle space(H5Dget_space(captions_.get()));
  hsize_t bytes = 0;
  H5Sget_simple_extent_dims(space.get(), &bytes, nullptr);
  caption_bytes_ = static_cast<int64_t>(bytes);
  caption_offsets_.resize(num_samples_ + 1);
  if (absl::Status s = read_rows(offsets_, shard::kCaptionOffsets, H5T_NATIVE_INT64, 0,
                                 num_samples_ + 1, caption_offsets_.data(), 0, num_samples_);
      !s.ok())
    return s;
  auto bad = [&](const std::string& what) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", path_, ": dataset 'caption_offsets' ", what));
  };
  if (caption_offsets_[0] != 0)
    return bad(absl::StrCat("starts at ", caption_offsets_[0], ", expected 0"));
  for (int64_t i = 1; i <= num_samples_; ++i)
    if (caption_offsets_[i] < caption_offsets_[i - 1])
      return bad(absl::StrCat("decreases at sample ", i - 1, " (", caption_offsets_[i - 1],
                              " then ", caption_offsets_[i], ")"));
  for (int64_t i = 0; i < num_samples_; ++i)
    if (caption_offsets_[i + 1] - caption_offsets_[i] > shard::kMaxCaptionBytes)
      return bad(absl::StrCat("gives sample ", i, " a caption of ",
                              caption_offsets_[i + 1] - caption_offsets_[i],
                              " bytes, over the limit of ", shard::kMaxCaptionBytes));
  if (caption_offsets_[num_samples_] != caption_bytes_)
    return bad(absl::StrCat("ends at ", caption_offsets_[num_samples_], " but 'captions' holds ",
                            caption_bytes_, " bytes"));
  return absl::OkStatus();
}

absl::Status ShardReader::load_image_index() {
  hdf5::H5Handle space(H5Dget_space(images_.get()));
  hsize_t bytes = 0;
  H5Sget_simple_extent_dims(space.get(), &bytes, nullptr);
  image_bytes_ = static_cast<int64_t>(bytes);
  {
    // Every chunk of 'image_bytes' must be stored (the writer writes them all). One never
    // written reads as zeros, past any checksum; and an extent of unwritten chunks costs the
    // file nothing while read() would allocate, and verify() walk, all of it.
    hdf5::H5Handle dcpl(H5Dget_create_plist(images_.get()));
    hsize_t chunk = 1, stored = 0;
    H5Pget_chunk(dcpl.get(), 1, &chunk);  // open_dataset checked: chunked, 1-D
    chunk = std::max<hsize_t>(1, chunk);
    const hsize_t expected = (bytes + chunk - 1) / chunk;
    if (H5Dget_num_chunks(images_.get(), space.get(), &stored) < 0 || stored != expected)
      return absl::DataLossError(with_hdf5(absl::StrCat(
          "shard ", path_, ": dataset '", shard::kImageBytes, "' declares ", bytes, " bytes in ",
          expected, " chunks but stores ", stored, " of them (unfinished or damaged shard)")));
  }
  image_offsets_.resize(num_samples_ + 1);
  image_sizes_.resize(size_t(num_samples_) * 2);
  absl::Status s = read_rows(image_offsets_ds_, shard::kImageOffsets, H5T_NATIVE_INT64, 0,
                             num_samples_ + 1, image_offsets_.data(), 0, num_samples_);
  if (s.ok())
    s = read_rows(image_sizes_ds_, shard::kImageSizes, H5T_NATIVE_INT32, 0, num_samples_,
                  image_sizes_.data(), 0, num_samples_);
  if (!s.ok()) return s;
  auto bad = [&](const char* name, const std::string& what) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", path_, ": dataset '", name, "' ", what));
  };
  if (image_offsets_[0] != 0)
    return bad(shard::kImageOffsets, absl::StrCat("starts at ", image_offsets_[0], ", expected 0"));
  for (int64_t i = 0; i < num_samples_; ++i) {
    // An empty image cannot be decoded: the packer never writes one.
    if (image_offsets_[i + 1] <= image_offsets_[i])
      return bad(shard::kImageOffsets,
                 absl::StrCat("does not increase at sample ", i, " (", image_offsets_[i], " then ",
                              image_offsets_[i + 1], ")"));
    if (image_sizes_[2 * i] <= 0 || image_sizes_[2 * i + 1] <= 0)
      return bad(shard::kImageSizes, absl::StrCat("sample ", i, ": ", image_sizes_[2 * i], "x",
                                                  image_sizes_[2 * i + 1], " is not positive"));
  }
  if (image_offsets_[num_samples_] != image_bytes_)
    return bad(shard::kImageOffsets,
               absl::StrCat("ends at ", image_offsets_[num_samples_], " but 'image_bytes' holds ",
                            image_bytes_, " bytes"));
  return absl::OkStatus();
}

absl::Status ShardReader::read_rows(const hdf5::H5Handle& dset, const char* name, hid_t mem_type,
                                    int64_t first, int64_t count, void* out, int64_t sample_first,
                                    int64_t sample_count) {
  if (count == 0) return absl::OkStatus();
  hdf5::H5Handle file_space(H5Dget_space(dset.get()));
  const int rank = H5Sget_simple_extent_ndims(file_space.get());
  std::vector<hsize_t> dims(rank), offset(rank, 0);
  H5Sget_simple_extent_dims(file_space.get(), dims.data(), nullptr);
  offset[0] = static_cast<hsize_t>(first);
  dims[0] = static_cast<hsize_t>(count);
  hdf5::H5Handle mem_space(H5Screate_simple(rank, dims.data(), nullptr));
  herr_t rc = H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, offset.data(), nullptr,
                                  dims.data(), nullptr);
  if (rc >= 0)
    rc = H5Dread(dset.get(), mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out);
  if (rc >= 0) return absl::OkStatus();
  const std::string where = absl::StrCat("shard ", path_, ": dataset '", name, "', samples [",
                                         sample_first, ", ", sample_first + sample_count, ")");
  if (hdf5::h5_error_is_checksum())
    return absl::DataLossError(
        with_hdf5(absl::StrCat(where, ": checksum mismatch (corrupt chunk)")));
  return absl::DataLossError(with_hdf5(absl::StrCat(where, ": read failed")));
}

absl::StatusOr<ShardSamples> ShardReader::read(int64_t first, int64_t count) {
  return read_samples(first, count, /*with_images=*/true);
}

absl::StatusOr<ShardSamples> ShardReader::read_samples(int64_t first, int64_t count,
                                                       bool with_images) {
  if (getpid() != pid_)
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", path_, ": reader opened in process ", pid_, " used in process ", getpid(),
        "; HDF5 handles must not cross fork() (open one reader per process)"));
  if (first < 0 || count < 0 || first + count > num_samples_)
    return absl::OutOfRangeError(absl::StrCat("shard ", path_, ": samples [", first, ", ",
                                              first + count, ") outside [0, ", num_samples_, ")"));
  hdf5::H5Quiet quiet;
  ShardSamples out;
  out.first = first;
  out.count = count;
  absl::Status s;
  if (with_images && encoded()) {
    const int64_t b0 = image_offsets_[first], b1 = image_offsets_[first + count];
    out.images.resize(size_t(b1 - b0));
    s = read_rows(images_, shard::kImageBytes, H5T_NATIVE_UINT8, b0, b1 - b0, out.images.data(),
                  first, count);
    for (int64_t i = first; i <= first + count; ++i)
      out.image_offsets.push_back(image_offsets_[i] - b0);
    out.image_sizes.assign(image_sizes_.begin() + 2 * first,
                           image_sizes_.begin() + 2 * (first + count));
    out.original_sizes.resize(size_t(count) * 2);
    if (s.ok())
      s = read_rows(original_sizes_ds_, shard::kOriginalSizes, H5T_NATIVE_INT32, first, count,
                    out.original_sizes.data(), first, count);
  } else if (with_images) {
    out.images.resize(static_cast<size_t>(count * resolution_ * resolution_ * 3));
    s = read_rows(images_, shard::kImages, H5T_NATIVE_UINT8, first, count, out.images.data(), first,
                  count);
  }

  const int64_t byte_first = caption_offsets_[first];
  std::vector<uint8_t> bytes(static_cast<size_t>(caption_offsets_[first + count] - byte_first));
  if (s.ok())
    s = read_rows(captions_, shard::kCaptions, H5T_NATIVE_UINT8, byte_first,
                  static_cast<int64_t>(bytes.size()), bytes.data(), first, count);
  if (s.ok()) {
    out.captions.reserve(count);
    for (int64_t i = first; i < first + count; ++i)
      out.captions.emplace_back(
          reinterpret_cast<const char*>(bytes.data()) + (caption_offsets_[i] - byte_first),
          caption_offsets_[i + 1] - caption_offsets_[i]);
  }
  if (s.ok() && tokens_.valid()) {
    out.tokens.resize(static_cast<size_t>(count * token_length_));
    out.token_lengths.resize(count);
    s = read_rows(tokens_, shard::kTokens, H5T_NATIVE_INT32, first, count, out.tokens.data(), first,
                  count);
    if (s.ok())
      s = read_rows(token_lengths_, shard::kTokenLengths, H5T_NATIVE_INT32, first, count,
                    out.token_lengths.data(), first, count);
    for (int64_t i = 0; s.ok() && i < count; ++i)
      if (out.token_lengths[i] < 0 || out.token_lengths[i] > token_length_)
        s = absl::DataLossError(absl::StrCat("shard ", path_, ": dataset 'token_lengths', sample ",
                                             first + i, ": length ", out.token_lengths[i],
                                             " outside [0, ", token_length_, "]"));
  }
  if (s.ok() && labels_.valid()) {
    out.labels.resize(count);
    s = read_rows(labels_, shard::kLabels, H5T_NATIVE_INT32, first, count, out.labels.data(), first,
                  count);
  }
  if (!s.ok()) return s;
  return out;
}

}  // namespace tessera::data
