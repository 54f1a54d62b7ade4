#include "checkpoint/chunks.h"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

#include "hdf5/hdf5_util.h"

// Where a load's time goes (perf, bench_checkpoint's GPT, 166.7 MB per rank from the page cache,
// one thread): the kernel's copy out of the page cache about 60 %, as for a plain read(2) of the
// file; the Fletcher32 sums 15-19 % (AVX2, on 1 MiB blocks just read, so from cache); HDF5's
// metadata about 18 % with files in the 1.8 format and about 16 % in the 1.10 format written now
// (H5Dopen2 over half of it; with 1.8's B-trees the chunk addresses were most of the rest); the
// remainder small. Before these paths, a temporary chunk buffer (allocated, zero-filled, copied
// from) cost more than the read itself.

namespace tessera::checkpoint::detail {

bool row_chunks(const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk) {
  if (dims.empty() || dims.size() != chunk.size()) return false;
  for (size_t d = 1; d < dims.size(); ++d) {
    if (chunk[d] != dims[d]) return false;
  }
  return chunk[0] > 0;
}

namespace {

size_t row_bytes(const std::vector<hsize_t>& dims) {
  size_t n = sizeof(float);
  for (size_t d = 1; d < dims.size(); ++d) n *= size_t(dims[d]);
  return n;
}

// The checksum as the filter stores it: little-endian, after the chunk's bytes.
void put_checksum(uint8_t* at, uint32_t c) {
  for (int i = 0; i < 4; ++i) at[i] = uint8_t(c >> (8 * i));
}

}  // namespace

bool write_chunks(hid_t ds, const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk,
                  float* data, size_t room_after, std::vector<uint8_t>* scratch) {
  const size_t row = row_bytes(dims), chunk_bytes = row * size_t(chunk[0]);
  uint8_t* bytes = reinterpret_cast<uint8_t*>(data);
  std::vector<hsize_t> offset(dims.size(), 0);
  for (hsize_t r = 0; r < dims[0]; r += chunk[0]) {
    offset[0] = r;
    uint8_t* at = bytes + size_t(r) * row;
    const size_t valid = size_t(std::min<hsize_t>(chunk[0], dims[0] - r)) * row;
    // In place, the checksum over the 4 bytes after the chunk (restored after the write), unless
    // this is the last chunk and it is padded (zeros, the fill value) or the caller's buffer
    // ends right after it: then via `scratch`.
    const bool last = r + chunk[0] >= dims[0];
    uint8_t* buf = at;
    if (last && (valid < chunk_bytes || room_after < 4)) {
      if (scratch->size() < chunk_bytes + 4) scratch->resize(chunk_bytes + 4);
      buf = scratch->data();
      std::memcpy(buf, at, valid);
      std::memset(buf + valid, 0, chunk_bytes - valid);
    }
    uint8_t saved[4];
    std::memcpy(saved, buf + chunk_bytes, 4);
    put_checksum(buf + chunk_bytes, hdf5::fletcher32(buf, chunk_bytes));
    const herr_t rc = H5Dwrite_chunk(ds, H5P_DEFAULT, 0, offset.data(), chunk_bytes + 4, buf);
    std::memcpy(buf + chunk_bytes, saved, 4);
    if (rc < 0) return false;
  }
  return true;
}

namespace {

// Reads exactly n bytes at `at` into the iovecs (preadv until done). False with *error set on an
// I/O error or the end of the file (a truncated file).
bool read_fully(int fd, iovec* iov, int iovcnt, off_t at, std::string* error) {
  while (iovcnt > 0) {
    const ssize_t got = ::preadv(fd, iov, iovcnt, at);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      *error = got < 0 ? absl::StrCat("read failed: ", std::strerror(errno))
                       : absl::StrCat("the file ends at byte ", at, " inside a chunk (truncated?)");
      return false;
    }
    at += got;
    for (size_t left = size_t(got); left > 0;) {
      const size_t take = std::min(left, iov->iov_len);
      iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + take;
      iov->iov_len -= take;
      left -= take;
      if (iov->iov_len == 0) ++iov, --iovcnt;
    }
  }
  return true;
}

}  // namespace

int plan_box_reads(hid_t ds, int fd, const std::vector<hsize_t>& dims,
                   const std::vector<int64_t>& start, const std::vector<int64_t>& count, float* dst,
                   const std::vector<int64_t>& dst_dims, const std::vector<int64_t>& dst_start,
                   std::vector<ChunkRead>* reads, std::string* error) {
  const hid_t dcpl = H5Dget_create_plist(ds);
  if (dcpl < 0) {
    *error = hdf5::h5_error_text();
    return -1;
  }
  std::vector<hsize_t> chunk(dims.size());
  unsigned flags = 0;
  size_t nvalues = 0;
  const bool ok = H5Pget_layout(dcpl) == H5D_CHUNKED &&
                  H5Pget_chunk(dcpl, int(chunk.size()), chunk.data()) == int(chunk.size()) &&
                  H5Pget_nfilters(dcpl) == 1 &&
                  H5Pget_filter2(dcpl, 0, &flags, &nvalues, nullptr, 0, nullptr, nullptr) ==
                      H5Z_FILTER_FLETCHER32 &&
                  row_chunks(dims, chunk);
  H5Pclose(dcpl);
  // Raw bytes go straight into float buffers: only little-endian f32 as tessera writes it (an
  // h5py file of >f4 or int32 with the same filter and chunking goes through HDF5, which converts).
  const hid_t type = ok ? H5Dget_type(ds) : H5I_INVALID_HID;
  const bool f32le = type >= 0 && H5Tequal(type, H5T_IEEE_F32LE) > 0;
  if (type >= 0) H5Tclose(type);
  if (!ok || !f32le || fd < 0) return 0;
  const size_t n = dims.size();
  const size_t row = row_bytes(dims), chunk_bytes = row * size_t(chunk[0]);
  std::vector<int64_t> dst_strides(n, 1);
  for (size_t d = n - 1; d > 0; --d) dst_strides[d - 1] = dst_strides[d] * dst_dims[d];
  // Whole rows in the file and in dst: a chunk needed whole is read straight into place.
  bool whole_rows = true;
  for (size_t d = 1; d < n; ++d) {
    whole_rows = whole_rows && start[d] == 0 && count[d] == int64_t(dims[d]) &&
                 dst_dims[d] == int64_t(dims[d]) && dst_start[d] == 0;
  }
  float* box_dst = dst;  // where the box's first element goes
  for (size_t d = 0; d < n; ++d) box_dst += dst_start[d] * dst_strides[d];
  const int64_t r0 = start[0], r1 = start[0] + count[0], rows = int64_t(chunk[0]);
  std::vector<hsize_t> offset(n, 0);
  const size_t first = reads->size();
  for (int64_t r = r0 / rows * rows; r < r1; r += rows) {
    offset[0] = hsize_t(r);
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t stored = 0;
    if (H5Dget_chunk_info_by_coord(ds, offset.data(), &mask, &addr, &stored) < 0) {
      *error = hdf5::h5_error_text();
      reads->resize(first);
      return -1;
    }
    // Anything but what the writer stores (unfiltered chunk, other size): the general path.
    if (addr == HADDR_UNDEF || mask != 0 || stored != chunk_bytes + 4) {
      reads->resize(first);
      return 0;
    }
    const int64_t in_chunk = std::min<int64_t>(rows, int64_t(dims[0]) - r);
    const int64_t lo = std::max(r, r0), hi = std::min(r + in_chunk, r1);
    ChunkRead c{
        fd, int64_t(addr), nullptr, size_t(in_chunk) * row, chunk_bytes - size_t(in_chunk) * row, r,
        {}};
    if (whole_rows && lo == r && hi == r + in_chunk) {
      c.dst = reinterpret_cast<uint8_t*>(box_dst + (r - r0) * dst_strides[0]);
    } else {
      ChunkPart& part = c.part.emplace();
      part.chunk_dims.assign(dims.begin(), dims.end());
      part.chunk_dims[0] = in_chunk;
      part.start = start;
      part.start[0] = lo - r;
      part.count = count;
      part.count[0] = hi - lo;
      part.dst = box_dst + (lo - r0) * dst_strides[0];
      part.dst_strides = dst_strides;
    }
    reads->push_back(std::move(c));
  }
  return 1;
}

int plan_chunk_reads(hid_t ds, int fd, const std::vector<hsize_t>& dims, float* dst,
                     std::vector<ChunkRead>* reads, std::string* error) {
  const std::vector<int64_t> whole(dims.begin(), dims.end()), zero(dims.size(), 0);
  return plan_box_reads(ds, fd, dims, zero, whole, dst, whole, zero, reads, error);
}

namespace {

// Copies the box part.count at part.start of the chunk (row-major over part.chunk_dims) to
// part.dst (element strides part.dst_strides), dimension d and on.
void copy_part(const ChunkPart& part, const float* src, float* dst, size_t d,
               const std::vector<int64_t>& src_strides) {
  if (d + 1 == part.count.size()) {
    std::memcpy(dst, src, size_t(part.count[d]) * sizeof(float));
    return;
  }
  for (int64_t i = 0; i < part.count[d]; ++i) {
    copy_part(part, src + i * src_strides[d], dst + i * part.dst_strides[d], d + 1, src_strides);
  }
}

}  // namespace

int read_chunk(const ChunkRead& c, std::vector<uint8_t>* scratch, std::string* error) {
  // The chunk's rows go straight into place (or, when only part of the chunk is needed, to the
  // front of `scratch`), kReadBlock bytes a read, each checksummed while it is in cache; the
  // last read also takes the padding of a partial last chunk (zeros, but covered by the
  // checksum: read and summed) and the stored checksum into `scratch`, after the chunk if any.
  const size_t tail_at = c.part ? c.valid : 0;
  if (scratch->size() < tail_at + c.pad + 4) scratch->resize(tail_at + c.pad + 4);
  uint8_t* to = c.part ? scratch->data() : c.dst;
  uint8_t* tail = scratch->data() + tail_at;
  hdf5::Fletcher32 sum;
  for (size_t done = 0;;) {
    const size_t n = std::min(kReadBlock, c.valid - done);
    const bool last = done + n == c.valid;
    iovec iov[2] = {{to + done, n}, {tail, c.pad + 4}};
    if (!read_fully(c.fd, iov, last ? 2 : 1, off_t(c.file_offset) + off_t(done), error)) {
      return -1;
    }
    sum.update(to + done, n);
    if (last) break;
    done += n;
  }
  sum.update(tail, c.pad);
  if (hdf5::stored_checksum(tail + c.pad) != sum.value()) return -2;
  if (c.part) {
    const ChunkPart& part = *c.part;
    const size_t n = part.chunk_dims.size();
    std::vector<int64_t> src_strides(n, 1);
    for (size_t d = n - 1; d > 0; --d) src_strides[d - 1] = src_strides[d] * part.chunk_dims[d];
    const float* src = reinterpret_cast<const float*>(to);
    for (size_t d = 0; d < n; ++d) src += part.start[d] * src_strides[d];
    copy_part(part, src, part.dst, 0, src_strides);
  }
  return 1;
}

int read_chunks(hid_t ds, int fd, const std::vector<hsize_t>& dims, float* dst,
                std::vector<uint8_t>* scratch, int64_t* bad_chunk, std::string* error) {
  std::vector<ChunkRead> reads;
  const int rc = plan_chunk_reads(ds, fd, dims, dst, &reads, error);
  if (rc != 1) return rc;
  for (const ChunkRead& c : reads) {
    const int r = read_chunk(c, scratch, error);
    if (r == -2) *bad_chunk = c.first_row;
    if (r != 1) return r;
  }
  return 1;
}

}  // namespace tessera::checkpoint::detail
