#include "train/checkpoint_chunks.h"

#include <algorithm>
#include <cstring>

#include "data_pipeline/hdf5_util.h"

namespace tessera::train::ckpt {

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
                  float* data) {
  const size_t row = row_bytes(dims), chunk_bytes = row * size_t(chunk[0]);
  uint8_t* bytes = reinterpret_cast<uint8_t*>(data);
  std::vector<hsize_t> offset(dims.size(), 0);
  std::vector<uint8_t> last;
  for (hsize_t r = 0; r < dims[0]; r += chunk[0]) {
    offset[0] = r;
    uint8_t* at = bytes + size_t(r) * row;
    const bool final = r + chunk[0] >= dims[0];
    uint8_t* buf = at;
    if (final) {  // the last chunk: padded to full chunk size with zeros (the fill value)
      last.assign(chunk_bytes + 4, 0);
      std::memcpy(last.data(), at, size_t(dims[0] - r) * row);
      buf = last.data();
    }
    uint8_t saved[4];
    std::memcpy(saved, buf + chunk_bytes, 4);
    put_checksum(buf + chunk_bytes, data::fletcher32(buf, chunk_bytes));
    const herr_t rc = H5Dwrite_chunk(ds, H5P_DEFAULT, 0, offset.data(), chunk_bytes + 4, buf);
    if (!final) std::memcpy(buf + chunk_bytes, saved, 4);
    if (rc < 0) return false;
  }
  return true;
}

int read_chunks(hid_t ds, const std::vector<hsize_t>& dims, float* dst, int64_t* bad_chunk) {
  const hid_t dcpl = H5Dget_create_plist(ds);
  if (dcpl < 0) return -1;
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
  if (!ok) return 0;
  const size_t row = row_bytes(dims), chunk_bytes = row * size_t(chunk[0]);
  uint8_t* bytes = reinterpret_cast<uint8_t*>(dst);
  std::vector<hsize_t> offset(dims.size(), 0);
  std::vector<uint8_t> last;
  for (hsize_t r = 0; r < dims[0]; r += chunk[0]) {
    offset[0] = r;
    hsize_t stored = 0;
    if (H5Dget_chunk_storage_size(ds, offset.data(), &stored) < 0) return -1;
    if (stored != chunk_bytes + 4) return 0;  // not what this writer stores: the general path
    const bool final = r + chunk[0] >= dims[0];
    // Straight into place; the checksum lands on the next chunk's first 4 bytes, which that
    // chunk's read overwrites. The last chunk (padded, and nothing after it) goes via a buffer.
    uint8_t* buf = bytes + size_t(r) * row;
    if (final) {
      last.resize(chunk_bytes + 4);
      buf = last.data();
    }
    uint32_t mask = 0;
    if (H5Dread_chunk(ds, H5P_DEFAULT, offset.data(), &mask, buf) < 0) return -1;
    if (mask != 0) return 0;
    if (data::stored_checksum(buf + chunk_bytes) != data::fletcher32(buf, chunk_bytes)) {
      *bad_chunk = int64_t(r);
      return -2;
    }
    if (final) std::memcpy(bytes + size_t(r) * row, buf, size_t(dims[0] - r) * row);
  }
  return 1;
}

}  // namespace tessera::train::ckpt
