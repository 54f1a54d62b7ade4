#include "data_pipeline/text_shard.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "data_pipeline/shard_format.h"

namespace tessera::data {
namespace {

herr_t write_int_attr(hid_t file, const char* name, int64_t value) {
  hdf5::H5Handle space(H5Screate(H5S_SCALAR));
  hdf5::H5Handle attr(H5Acreate2(file, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  return attr.valid() ? H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) : -1;
}

herr_t write_string_attr(hid_t file, const char* name, const std::string& value) {
  hdf5::H5Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), std::max<size_t>(1, value.size()));
  hdf5::H5Handle space(H5Screate(H5S_SCALAR));
  hdf5::H5Handle attr(H5Acreate2(file, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  return attr.valid() ? H5Awrite(attr.get(), type.get(), padded.data()) : -1;
}

}  // namespace

absl::Status write_text_shard(const std::string& path, std::span<const int32_t> tokens,
                              const std::string& tokenizer, int32_t eot_id) {
  hdf5::H5Quiet quiet;
  const std::string tmp = path + ".tmp";
  auto fail = [&](const std::string& what) {
    std::filesystem::remove(tmp);
    return absl::InternalError(
        absl::StrCat("text shard ", path, ": ", what, " (HDF5: ", hdf5::h5_error_text(), ")"));
  };
  {
    hdf5::H5Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    if (!file.valid()) return fail("cannot create");
    const hsize_t n = tokens.size();
    const hsize_t chunk = std::max<hsize_t>(1, std::min<hsize_t>(n, kTextChunkTokens));
    hdf5::H5Handle space(H5Screate_simple(1, &n, nullptr));
    hdf5::H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    H5Pset_chunk(dcpl.get(), 1, &chunk);
    H5Pset_fletcher32(dcpl.get());
    H5Pset_obj_track_times(dcpl.get(), false);
    hdf5::H5Handle dset(H5Dcreate2(file.get(), kTextTokens, H5T_STD_I32LE, space.get(), H5P_DEFAULT,
                                   dcpl.get(), H5P_DEFAULT));
    if (!dset.valid()) return fail("cannot create dataset 'text_tokens'");
    if (n > 0 &&
        H5Dwrite(dset.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data()) < 0)
      return fail("cannot write dataset 'text_tokens'");
    if (write_int_attr(file.get(), "format_version", 1) < 0 ||
        write_int_attr(file.get(), "num_tokens", int64_t(n)) < 0 ||
        write_int_attr(file.get(), "eot_id", eot_id) < 0 ||
        write_string_attr(file.get(), "kind", "text") < 0 ||
        write_string_attr(file.get(), "tokenizer", tokenizer) < 0)
      return fail("cannot write the attributes");
    dset.reset();
    if (H5Fclose(file.release()) < 0) return fail("cannot close");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return fail(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TextShardReader>> TextShardReader::open(const std::string& path) {
  if (!std::filesystem::exists(path))
    return absl::NotFoundError(absl::StrCat("text shard ", path, ": no such file"));
  hdf5::H5Quiet quiet;
  std::unique_ptr<TextShardReader> r(new TextShardReader(path));
  auto bad = [&](const std::string& what) {
    const std::string hdf5 = hdf5::h5_error_text();
    return absl::DataLossError(
        absl::StrCat("text shard ", path, ": ", what, hdf5.empty() ? "" : " (HDF5: " + hdf5 + ")"));
  };
  if (H5Fis_hdf5(path.c_str()) <= 0) return bad("not an HDF5 file");
  r->file_ = hdf5::H5Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!r->file_.valid()) return bad("cannot open (truncated or corrupt file?)");
  auto read_int = [&](const char* name, int64_t* out) -> absl::Status {
    if (H5Aexists(r->file_.get(), name) <= 0)
      return bad(absl::StrCat("missing file attribute '", name, "'"));
    hdf5::H5Handle attr(H5Aopen(r->file_.get(), name, H5P_DEFAULT));
    if (H5Aread(attr.get(), H5T_NATIVE_INT64, out) < 0)
      return bad(absl::StrCat("file attribute '", name, "' is not an integer"));
    return absl::OkStatus();
  };
  int64_t version = 0, eot = -1;
  if (auto s = read_int("format_version", &version); !s.ok()) return s;
  if (version != 1) return bad(absl::StrCat("format_version ", version, ", this build reads 1"));
  if (auto s = read_int("num_tokens", &r->num_tokens_); !s.ok()) return s;
  if (auto s = read_int("eot_id", &eot); !s.ok()) return s;
  r->eot_id_ = int32_t(eot);
  if (H5Lexists(r->file_.get(), kTextTokens, H5P_DEFAULT) <= 0)
    return bad("no dataset 'text_tokens' (not a text shard? image shards hold 'images')");
  r->tokens_ = hdf5::H5Handle(H5Dopen2(r->file_.get(), kTextTokens, H5P_DEFAULT));
  hdf5::H5Handle type(H5Dget_type(r->tokens_.get()));
  hdf5::H5Handle space(H5Dget_space(r->tokens_.get()));
  hsize_t dims[2] = {0, 0};
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank == 1) H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  if (!hdf5::is_integer_type(type.get(), 4, true) || rank != 1)
    return bad(absl::StrCat("dataset 'text_tokens' has dtype ", hdf5::describe_type(type.get()),
                            " and rank ", rank, ", expected int32 and rank 1"));
  if (int64_t(dims[0]) != r->num_tokens_)
    return bad(absl::StrCat("dataset 'text_tokens' holds ", dims[0], " tokens, num_tokens says ",
                            r->num_tokens_));
  hdf5::H5Handle dcpl(H5Dget_create_plist(r->tokens_.get()));
  unsigned flags = 0;
  size_t n_values = 0;
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED ||
      H5Pget_filter_by_id2(dcpl.get(), H5Z_FILTER_FLETCHER32, &flags, &n_values, nullptr, 0,
                           nullptr, nullptr) < 0)
    return bad("dataset 'text_tokens' is not chunked with the Fletcher32 checksum filter");
  hsize_t chunk = 1;
  H5Pget_chunk(dcpl.get(), 1, &chunk);
  r->chunk_tokens_ = std::max<int64_t>(1, int64_t(chunk));
  if (r->chunk_tokens_ > shard::kMaxChunkBytes / 4)  // a read inflates whole chunks
    return bad(absl::StrCat("dataset 'text_tokens' has chunks of ", r->chunk_tokens_,
                            " tokens, over the limit of ", shard::kMaxChunkBytes / 4));
  return r;
}

int64_t TextShardReader::verify(const std::function<void(const absl::Status&)>& on_bad,
                                int64_t* bad) const {
  int64_t chunks = 0;
  for (int64_t a = 0; a < num_tokens_; a += chunk_tokens_, ++chunks) {
    auto tokens = read(a, std::min(chunk_tokens_, num_tokens_ - a));
    if (!tokens.ok()) {
      ++*bad;
      on_bad(tokens.status());
    }
  }
  return chunks;
}

absl::StatusOr<std::vector<int32_t>> TextShardReader::read(int64_t first, int64_t count) const {
  const std::string where = absl::StrCat("text shard ", path_, ": dataset 'text_tokens', tokens [",
                                         first, ", ", first + count, ")");
  if (first < 0 || count < 0 || first + count > num_tokens_)
    return absl::OutOfRangeError(absl::StrCat(where, " outside [0, ", num_tokens_, ")"));
  std::vector<int32_t> out(count);
  if (count == 0) return out;
  hdf5::H5Quiet quiet;
  hdf5::H5Handle file_space(H5Dget_space(tokens_.get()));
  const hsize_t start = hsize_t(first), n = hsize_t(count);
  hdf5::H5Handle mem_space(H5Screate_simple(1, &n, nullptr));
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr) < 0 ||
      H5Dread(tokens_.get(), H5T_NATIVE_INT32, mem_space.get(), file_space.get(), H5P_DEFAULT,
              out.data()) < 0) {
    const bool checksum = hdf5::h5_error_is_checksum();
    return absl::DataLossError(absl::StrCat(
        where, checksum ? ": checksum mismatch (corrupt chunk, Fletcher32)" : ": read failed",
        " (HDF5: ", hdf5::h5_error_text(), ")"));
  }
  return out;
}

}  // namespace tessera::data
