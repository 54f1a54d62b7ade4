#include "data_pipeline/shard_writer.h"

#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tessera::data {
namespace {

// Creates an extendible dataset (0, inner...) chunked as (chunk, inner...) with the shard's
// filter pipeline: optional gzip, then Fletcher32 over the stored (possibly compressed) bytes,
// the same order h5py uses. Object timestamps are off so equal content gives equal files.
hdf5::H5Handle make_dataset(hid_t file, const char* name, hid_t type, std::vector<hsize_t> inner,
                            hsize_t chunk, int gzip_level) {
  std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED}, chunk_dims{chunk};
  for (hsize_t d : inner) {
    dims.push_back(d);
    max_dims.push_back(d);
    chunk_dims.push_back(d);
  }
  hdf5::H5Handle space(
      H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max_dims.data()));
  hdf5::H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (!space.valid() || !dcpl.valid()) return hdf5::H5Handle();
  if (H5Pset_chunk(dcpl.get(), static_cast<int>(chunk_dims.size()), chunk_dims.data()) < 0)
    return hdf5::H5Handle();
  if (gzip_level > 0 && H5Pset_deflate(dcpl.get(), static_cast<unsigned>(gzip_level)) < 0)
    return hdf5::H5Handle();
  if (H5Pset_fletcher32(dcpl.get()) < 0) return hdf5::H5Handle();
  H5Pset_obj_track_times(dcpl.get(), false);
  return hdf5::H5Handle(
      H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
}

// Grows `dset` along axis 0 to start + rows and writes `rows` rows of `data` at `start`.
herr_t append_rows(hid_t dset, hid_t mem_type, hsize_t start, hsize_t rows, const void* data) {
  if (rows == 0) return 0;
  hdf5::H5Handle old_space(H5Dget_space(dset));
  int rank = H5Sget_simple_extent_ndims(old_space.get());
  if (rank < 1) return -1;
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(old_space.get(), dims.data(), nullptr);
  dims[0] = start + rows;
  if (H5Dset_extent(dset, dims.data()) < 0) return -1;
  hdf5::H5Handle file_space(H5Dget_space(dset));
  std::vector<hsize_t> offset(rank, 0), count = dims;
  offset[0] = start;
  count[0] = rows;
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, offset.data(), nullptr, count.data(),
                          nullptr) < 0)
    return -1;
  hdf5::H5Handle mem_space(H5Screate_simple(rank, count.data(), nullptr));
  return H5Dwrite(dset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data);
}

herr_t write_int_attr(hid_t file, const char* name, int64_t value) {
  hdf5::H5Handle space(H5Screate(H5S_SCALAR));
  hdf5::H5Handle attr(H5Acreate2(file, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid()) return -1;
  return H5Awrite(attr.get(), H5T_NATIVE_INT64, &value);
}

// A variable-length UTF-8 string, as h5py writes a Python str attribute.
herr_t write_string_attr(hid_t file, const char* name, const std::string& value) {
  hdf5::H5Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  hdf5::H5Handle space(H5Screate(H5S_SCALAR));
  hdf5::H5Handle attr(H5Acreate2(file, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid()) return -1;
  const char* data = value.c_str();
  return H5Awrite(attr.get(), type.get(), &data);
}

}  // namespace

ShardWriter::ShardWriter(std::string path, ShardWriterOptions options)
    : path_(std::move(path)), tmp_path_(path_ + ".tmp"), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ShardWriter>> ShardWriter::create(
    const std::string& path, const ShardWriterOptions& options) {
  const bool v2 = options.format_version == shard::kEncodedVersion;
  if ((options.format_version != shard::kFormatVersion && !v2) ||
      (v2 ? options.resolution < 0 : options.resolution <= 0) || options.token_length < 0 ||
      options.image_chunk < 0 || options.gzip_level < 0 || options.gzip_level > 9)
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", path, ": bad writer options (format_version ", options.format_version,
        ", resolution ", options.resolution, ", token_length ", options.token_length,
        ", image_chunk ", options.image_chunk, ", gzip_level ", options.gzip_level, ")"));
  ShardWriterOptions resolved = options;
  if (resolved.image_chunk == 0)
    resolved.image_chunk =
        v2 ? shard::kEncodedChunkRows : shard::default_image_chunk(resolved.resolution);
  std::unique_ptr<ShardWriter> writer(new ShardWriter(path, resolved));
  if (absl::Status s = writer->open(); !s.ok()) return s;
  return writer;
}

absl::Status ShardWriter::open() {
  hdf5::H5Quiet quiet;
  file_ = hdf5::H5Handle(H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!file_.valid()) return error("cannot create the file");
  const hsize_t r = options_.resolution;
  const int gz = options_.gzip_level;
  if (encoded()) {
    images_ =
        make_dataset(file_.get(), shard::kImageBytes, H5T_STD_U8LE, {}, shard::kImageByteChunk, gz);
    image_offsets_ = make_dataset(file_.get(), shard::kImageOffsets, H5T_STD_I64LE, {},
                                  shard::kDefaultPerSampleChunk, gz);
    // Sizes are chunked like tokens: the rows one read of the loader takes.
    image_sizes_ =
        make_dataset(file_.get(), shard::kImageSizes, H5T_STD_I32LE, {2}, options_.image_chunk, gz);
    original_sizes_ = make_dataset(file_.get(), shard::kOriginalSizes, H5T_STD_I32LE, {2},
                                   shard::kDefaultPerSampleChunk, gz);
    const int64_t zero = 0;
    if (!image_offsets_.valid() || !image_sizes_.valid() || !original_sizes_.valid() ||
        append_rows(image_offsets_.get(), H5T_NATIVE_INT64, 0, 1, &zero) < 0)
      return error("cannot create the image datasets");
  } else {
    images_ = make_dataset(file_.get(), shard::kImages, H5T_STD_U8LE, {r, r, 3},
                           options_.image_chunk, gz);
  }
  captions_ = make_dataset(file_.get(), shard::kCaptions, H5T_STD_U8LE, {},
                           shard::kDefaultCaptionChunk, gz);
  offsets_ = make_dataset(file_.get(), shard::kCaptionOffsets, H5T_STD_I64LE, {},
                          shard::kDefaultPerSampleChunk, gz);
  if (!images_.valid() || !captions_.valid() || !offsets_.valid())
    return error("cannot create the datasets");
  if (options_.token_length > 0) {
    // Token rows are chunked like images so that one sample touches one chunk of each.
    tokens_ = make_dataset(file_.get(), shard::kTokens, H5T_STD_I32LE,
                           {static_cast<hsize_t>(options_.token_length)}, options_.image_chunk, gz);
    token_lengths_ = make_dataset(file_.get(), shard::kTokenLengths, H5T_STD_I32LE, {},
                                  shard::kDefaultPerSampleChunk, gz);
    if (!tokens_.valid() || !token_lengths_.valid()) return error("cannot create the tokens");
  }
  if (options_.labels) {
    labels_ = make_dataset(file_.get(), shard::kLabels, H5T_STD_I32LE, {},
                           shard::kDefaultPerSampleChunk, gz);
    if (!labels_.valid()) return error("cannot create the labels");
  }
  const int64_t zero = 0;
  if (append_rows(offsets_.get(), H5T_NATIVE_INT64, 0, 1, &zero) < 0 ||
      write_int_attr(file_.get(), shard::kAttrFormatVersion, options_.format_version) < 0 ||
      write_int_attr(file_.get(), shard::kAttrResolution, options_.resolution) < 0 ||
      write_string_attr(file_.get(), shard::kAttrTokenizer, options_.tokenizer) < 0)
    return error("cannot write the attributes");
  return absl::OkStatus();
}

ShardWriter::~ShardWriter() {
  if (finished_) return;
  hdf5::H5Quiet quiet;
  images_.reset(), captions_.reset(), offsets_.reset(), tokens_.reset();
  token_lengths_.reset(), labels_.reset(), image_offsets_.reset(), image_sizes_.reset();
  original_sizes_.reset(), file_.reset();
  std::error_code ignored;
  std::filesystem::remove(tmp_path_, ignored);
}

absl::Status ShardWriter::error(const std::string& what) const {
  std::string hdf5 = hdf5::h5_error_text();
  return absl::InternalError(absl::StrCat(
      "shard ", path_, ": ", what, hdf5.empty() ? "" : " (HDF5: ", hdf5, hdf5.empty() ? "" : ")"));
}

absl::Status ShardWriter::fail(absl::Status status) {
  if (status_.ok()) status_ = status;
  return status;
}

absl::Status ShardWriter::append(const SampleToWrite& sample) {
  if (!status_.ok()) return status_;
  if (finished_) return absl::FailedPreconditionError(absl::StrCat("shard ", path_, ": finished"));
  const int64_t index = num_samples();
  const size_t image_bytes = static_cast<size_t>(options_.resolution * options_.resolution * 3);
  if (encoded()) {
    if (sample.encoded.empty() || sample.height <= 0 || sample.width <= 0 ||
        sample.original_height <= 0 || sample.original_width <= 0)
      return absl::InvalidArgumentError(absl::StrCat(
          "shard ", path_, ": sample ", index, " has ", sample.encoded.size(),
          " encoded bytes and sizes ", sample.height, "x", sample.width, " (original ",
          sample.original_height, "x", sample.original_width, "); all must be positive"));
  } else if (sample.image.size() != image_bytes)
    return absl::InvalidArgumentError(absl::StrCat("shard ", path_, ": sample ", index, " has ",
                                                   sample.image.size(), " image bytes, expected ",
                                                   image_bytes, " (", options_.resolution, "x",
                                                   options_.resolution, "x3)"));
  if (sample.tokens.size() > static_cast<size_t>(options_.token_length))
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", path_, ": sample ", index, " has ", sample.tokens.size(),
                     " tokens, the shard holds at most ", options_.token_length));
  if (encoded()) {
    image_buf_.insert(image_buf_.end(), sample.encoded.begin(), sample.encoded.end());
    image_offset_buf_.push_back(image_bytes_ + static_cast<int64_t>(image_buf_.size()));
    size_buf_.insert(size_buf_.end(), {sample.height, sample.width});
    original_buf_.insert(original_buf_.end(), {sample.original_height, sample.original_width});
  } else {
    image_buf_.insert(image_buf_.end(), sample.image.begin(), sample.image.end());
  }
  caption_buf_.insert(caption_buf_.end(), sample.caption.begin(), sample.caption.end());
  offset_buf_.push_back(caption_bytes_ + static_cast<int64_t>(caption_buf_.size()));
  if (options_.token_length > 0) {
    token_buf_.insert(token_buf_.end(), sample.tokens.begin(), sample.tokens.end());
    token_buf_.resize(token_buf_.size() + options_.token_length - sample.tokens.size(), 0);
    length_buf_.push_back(static_cast<int32_t>(sample.tokens.size()));
  }
  if (options_.labels) label_buf_.push_back(sample.label);
  ++pending_;
  // Flushing whole image chunks means each chunk is written (and checksummed) once.
  if (pending_ == options_.image_chunk) return flush();
  return absl::OkStatus();
}

absl::Status ShardWriter::flush() {
  if (pending_ == 0) return absl::OkStatus();
  hdf5::H5Quiet quiet;
  const hsize_t start = written_, rows = pending_;
  bool ok = encoded()
                ? append_rows(images_.get(), H5T_NATIVE_UINT8, image_bytes_, image_buf_.size(),
                              image_buf_.data()) >= 0 &&
                      append_rows(image_offsets_.get(), H5T_NATIVE_INT64, start + 1, rows,
                                  image_offset_buf_.data()) >= 0 &&
                      append_rows(image_sizes_.get(), H5T_NATIVE_INT32, start, rows,
                                  size_buf_.data()) >= 0 &&
                      append_rows(original_sizes_.get(), H5T_NATIVE_INT32, start, rows,
                                  original_buf_.data()) >= 0
                : append_rows(images_.get(), H5T_NATIVE_UINT8, start, rows, image_buf_.data()) >= 0;
  ok = ok &&
       append_rows(captions_.get(), H5T_NATIVE_UINT8, caption_bytes_, caption_buf_.size(),
                   caption_buf_.data()) >= 0 &&
       append_rows(offsets_.get(), H5T_NATIVE_INT64, start + 1, rows, offset_buf_.data()) >= 0;
  if (ok && tokens_.valid())
    ok = append_rows(tokens_.get(), H5T_NATIVE_INT32, start, rows, token_buf_.data()) >= 0 &&
         append_rows(token_lengths_.get(), H5T_NATIVE_INT32, start, rows, length_buf_.data()) >= 0;
  if (ok && labels_.valid())
    ok = append_rows(labels_.get(), H5T_NATIVE_INT32, start, rows, label_buf_.data()) >= 0;
  if (!ok)
    return fail(
        error(absl::StrCat("cannot write samples [", written_, ", ", written_ + pending_, ")")));
  written_ += pending_;
  caption_bytes_ += static_cast<int64_t>(caption_buf_.size());
  if (encoded()) image_bytes_ += static_cast<int64_t>(image_buf_.size());
  pending_ = 0;
  image_buf_.clear(), caption_buf_.clear(), offset_buf_.clear();
  image_offset_buf_.clear(), size_buf_.clear(), original_buf_.clear();
  token_buf_.clear(), length_buf_.clear(), label_buf_.clear();
  return absl::OkStatus();
}

absl::Status ShardWriter::finish() {
  if (!status_.ok()) return status_;
  if (finished_) return absl::OkStatus();
  if (absl::Status s = flush(); !s.ok()) return s;
  hdf5::H5Quiet quiet;
  if (write_int_attr(file_.get(), shard::kAttrNumSamples, written_) < 0)
    return fail(error("cannot write num_samples"));
  images_.reset(), captions_.reset(), offsets_.reset(), tokens_.reset();
  token_lengths_.reset(), labels_.reset(), image_offsets_.reset(), image_sizes_.reset();
  original_sizes_.reset();
  // H5Fclose (rather than dropping the reference) reports a failed final flush.
  if (H5Fclose(file_.release()) < 0) return fail(error("cannot close the file"));
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec)
    return fail(absl::InternalError(
        absl::StrCat("shard ", path_, ": cannot rename ", tmp_path_, ": ", ec.message())));
  finished_ = true;
  return absl::OkStatus();
}

}  // namespace tessera::data
