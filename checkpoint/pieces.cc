#include "checkpoint/pieces.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/chunks.h"
#include "core/error.h"

namespace tessera::checkpoint::detail {

namespace {

// HDF5's error stack, or only "no space left on device" when that is the cause (the stack then
// repeats the errno text several times among cache-flush details).
std::string write_error() {
  std::string text = hdf5::h5_error_text();
  if (text.find("No space left on device") != std::string::npos) {
    return "no space left on device (disk full)";
  }
  return text;
}

// Chunks of at most ~1M elements (4 MiB): Fletcher32 needs chunked storage, and a reader of a
// small hyperslab then verifies and reads only the chunks it touches. A dimension that must be
// cut is cut into equal parts (rounded up), so a last partial chunk pads little: cutting the
// 8192-row embedding of configs/bench/gpt.pbtxt at the most rows that fit (2730) padded its last
// chunk with 2728 rows of zeros, 7 % of the bytes written and read.
std::vector<hsize_t> chunk_dims(const std::vector<int64_t>& count) {
  constexpr int64_t kMax = int64_t(1) << 20;
  std::vector<hsize_t> chunk(count.begin(), count.end());
  int64_t total = 1;
  for (int64_t c : count) total *= c;
  for (size_t d = 0; d < chunk.size() && total > kMax; ++d) {
    const int64_t rest = total / int64_t(chunk[d]);
    const int64_t keep = std::max<int64_t>(1, kMax / std::max<int64_t>(1, rest));
    if (keep < int64_t(chunk[d])) {
      const int64_t parts = (int64_t(chunk[d]) + keep - 1) / keep;
      chunk[d] = hsize_t((int64_t(chunk[d]) + parts - 1) / parts);
      total = rest * int64_t(chunk[d]);
    }
  }
  return chunk;
}

}  // namespace

PieceWriter::PieceWriter(std::string path) : path_(std::move(path)) {
  hdf5::H5Quiet quiet;
  // The HDF5 1.10 file format (readable by HDF5 >= 1.10, h5py >= 2.7): its chunk indexes (a
  // single-chunk index, fixed arrays) and object headers make opening a dataset and finding
  // its chunks cheaper than the 1.8 format's B-trees; HDF5's metadata was ~18 % of a load's CPU
  // time, and a load of the bench's GPT takes ~12 ms (of ~85 ms, on a loaded machine) less.
  hdf5::H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  TESSERA_CHECK(
      fapl.valid() && H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110) >= 0,
      "checkpoint file ", path_, ": cannot set up HDF5: ", hdf5::h5_error_text());
  file_ = hdf5::H5Handle(H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
  TESSERA_CHECK(file_.valid(), "checkpoint file ", path_,
                ": cannot create: ", hdf5::h5_error_text());
}

PieceWriter::~PieceWriter() = default;

void PieceWriter::write(const std::string& dataset, const std::vector<int64_t>& count, float* data,
                        const float* buffer_end) {
  hdf5::H5Quiet quiet;
  std::vector<hsize_t> dims(count.begin(), count.end());
  hdf5::H5Handle space(H5Screate_simple(int(dims.size()), dims.data(), nullptr));
  hdf5::H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  const std::vector<hsize_t> chunk = chunk_dims(count);
  bool ok = space.valid() && dcpl.valid() &&
            H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data()) >= 0 &&
            H5Pset_fletcher32(dcpl.get()) >= 0;
  hdf5::H5Handle ds;
  if (ok) {
    ds = hdf5::H5Handle(H5Dcreate2(file_.get(), dataset.c_str(), H5T_IEEE_F32LE, space.get(),
                                   H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
    int64_t numel = 1;
    for (int64_t c : count) numel *= c;
    const size_t room_after = size_t(buffer_end - (data + numel)) * sizeof(float);
    ok = ds.valid() &&
         (row_chunks(dims, chunk)
              ? write_chunks(ds.get(), dims, chunk, data, room_after, &scratch_)
              : H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  }
  TESSERA_CHECK(ok, "checkpoint file ", path_, ", dataset ", dataset,
                ": write failed: ", write_error());
}

int64_t PieceWriter::close() {
  hdf5::H5Quiet quiet;
  const bool flushed = H5Fflush(file_.get(), H5F_SCOPE_LOCAL) >= 0;
  const bool closed = H5Fclose(file_.release()) >= 0;
  TESSERA_CHECK(flushed && closed, "checkpoint file ", path_, ": write failed: ", write_error());
  // HDF5 leaves durability to the OS: fsync, so the commit marker never precedes the data.
  const int fd = ::open(path_.c_str(), O_RDONLY);
  TESSERA_CHECK(fd >= 0 && ::fsync(fd) == 0, "checkpoint file ", path_, ": fsync failed");
  ::close(fd);
  return int64_t(std::filesystem::file_size(path_));
}

PieceReader::File::~File() {
  if (fd >= 0) ::close(fd);
}

absl::StatusOr<const PieceReader::File*> PieceReader::file(const std::string& name) {
  auto it = files_.find(name);
  if (it != files_.end()) return &it->second;
  const std::string path = dir_ + "/" + name;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("checkpoint file ", path, " is missing"));
  }
  File f;
  f.h5 = hdf5::H5Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!f.h5.valid()) {
    return absl::DataLossError(
        absl::StrCat("checkpoint file ", path,
                     ": not a readable HDF5 file (truncated?): ", hdf5::h5_error_text()));
  }
  // Chunk addresses are relative to the end of a user block; tessera writes none, and reads
  // through HDF5 alone a file that has one.
  hdf5::H5Handle fcpl(H5Fget_create_plist(f.h5.get()));
  hsize_t userblock = 1;
  if (fcpl.valid() && H5Pget_userblock(fcpl.get(), &userblock) >= 0 && userblock == 0) {
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  return &files_.emplace(name, std::move(f)).first->second;
}

absl::Status PieceReader::read(const checkpoint::Tensor& t, const Box& want, float* dst) {
  absl::Status s = queue(t, want, dst);
  if (!s.ok()) {  // drop what this call queued before the error
    queued_.clear();
    contexts_.clear();
    return s;
  }
  return finish();
}

absl::Status PieceReader::finish() {
  std::vector<int> rc(queued_.size(), 1);
  std::vector<std::string> errors(queued_.size());
  const int64_t n = int64_t(queued_.size());
#pragma omp parallel if (n > 1)
  {
    std::vector<uint8_t> scratch;  // this thread's padding and checksum buffer
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) rc[i] = read_chunk(queued_[i].chunk, &scratch, &errors[i]);
  }
  absl::Status s;
  for (size_t i = 0; i < queued_.size() && s.ok(); ++i) {
    const std::string& context = contexts_[queued_[i].context];
    if (rc[i] == -2) {
      s = absl::DataLossError(absl::StrCat(
          context, ": checksum mismatch (Fletcher32): the data is corrupt, the chunk from row ",
          queued_[i].chunk.first_row));
    } else if (rc[i] != 1) {
      s = absl::DataLossError(absl::StrCat(context, ": read failed: ", errors[i]));
    }
  }
  queued_.clear();
  contexts_.clear();
  return s;
}

absl::Status PieceReader::queue(const checkpoint::Tensor& t, const Box& want, float* dst) {
  hdf5::H5Quiet quiet;
  const std::string what = absl::StrCat("tensor ", t.name(), " (", t.role(), ")");
  int64_t covered = 0;
  const std::vector<hsize_t> mem_dims(want.count.begin(), want.count.end());
  for (const auto& piece : t.pieces()) {
    Box stored{{piece.start().begin(), piece.start().end()},
               {piece.count().begin(), piece.count().end()}};
    if (stored.start.size() != want.start.size()) {
      return absl::DataLossError(absl::StrCat(what, ": piece in ", piece.file(), " has ",
                                              stored.start.size(), " dimensions, expected ",
                                              want.start.size()));
    }
    Box both;
    if (!intersect(stored, want, &both)) continue;
    absl::StatusOr<const File*> f = file(piece.file());
    if (!f.ok())
      return absl::Status(f.status().code(),
                          absl::StrCat(f.status().message(), " (needed for ", what, ")"));
    const std::string where =
        absl::StrCat("checkpoint file ", dir_, "/", piece.file(), ", dataset ", piece.dataset());
    hdf5::H5Handle ds(H5Dopen2((*f)->h5.get(), piece.dataset().c_str(), H5P_DEFAULT));
    if (!ds.valid()) {
      return absl::DataLossError(
          absl::StrCat(where, ": cannot open (", hdf5::h5_error_text(), ") for ", what));
    }
    hdf5::H5Handle fspace(H5Dget_space(ds.get()));
    std::vector<hsize_t> fdims(stored.start.size());
    if (H5Sget_simple_extent_ndims(fspace.get()) != int(fdims.size()) ||
        H5Sget_simple_extent_dims(fspace.get(), fdims.data(), nullptr) < 0 ||
        !std::equal(fdims.begin(), fdims.end(), stored.count.begin(),
                    [](hsize_t a, int64_t b) { return int64_t(a) == b; })) {
      return absl::DataLossError(absl::StrCat(where, ": shape does not match the metadata of ",
                                              what, " ", describe(stored)));
    }
    // Tessera's own files: the chunks the overlap touches, read directly in finish().
    const size_t n = both.start.size();
    std::vector<int64_t> fstart(n), mstart(n);
    for (size_t d = 0; d < n; ++d) {
      fstart[d] = both.start[d] - stored.start[d];
      mstart[d] = both.start[d] - want.start[d];
    }
    std::vector<ChunkRead> chunks;
    std::string error;
    const int rc = plan_box_reads(ds.get(), (*f)->fd, fdims, fstart, both.count, dst, want.count,
                                  mstart, &chunks, &error);
    if (rc == -1) {
      return absl::DataLossError(absl::StrCat(where, ": read failed in ", what, ": ", error));
    }
    if (rc == 1) {
      contexts_.push_back(absl::StrCat(where, " (", what, ", piece ", describe(stored), ")"));
      for (ChunkRead& c : chunks) queued_.push_back({std::move(c), contexts_.size() - 1});
      covered += both.numel();
      continue;
    }
    // Anything else (a file written by another tool): HDF5's hyperslab read, filter pipeline.
    const std::vector<hsize_t> hfstart(fstart.begin(), fstart.end()),
        hmstart(mstart.begin(), mstart.end()), cnt(both.count.begin(), both.count.end());
    hdf5::H5Handle mspace(H5Screate_simple(int(n), mem_dims.data(), nullptr));
    const bool ok =
        H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, hfstart.data(), nullptr, cnt.data(),
                            nullptr) >= 0 &&
        H5Sselect_hyperslab(mspace.get(), H5S_SELECT_SET, hmstart.data(), nullptr, cnt.data(),
                            nullptr) >= 0 &&
        H5Dread(ds.get(), H5T_NATIVE_FLOAT, mspace.get(), fspace.get(), H5P_DEFAULT, dst) >= 0;
    if (!ok) {
      const bool checksum = hdf5::h5_error_is_checksum();
      return absl::DataLossError(absl::StrCat(
          where, ": ",
          checksum ? "checksum mismatch (Fletcher32): the data is corrupt" : "read failed", " in ",
          what, " ", describe(both), ": ", hdf5::h5_error_text()));
    }
    covered += both.numel();
  }
  if (covered != want.numel()) {
    return absl::DataLossError(absl::StrCat("checkpoint ", dir_, ": ", what, " ", describe(want),
                                            ": the stored pieces cover ", covered, " of ",
                                            want.numel(), " elements"));
  }
  return absl::OkStatus();
}

}  // namespace tessera::checkpoint::detail
