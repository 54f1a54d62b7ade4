#pragma once
// Where a chunk of an HDF5 dataset lies in its file, for the tests and fuzz harnesses that
// corrupt stored bytes on purpose (flip_byte in tests/support/files.h) and then check that a
// checksum catches it.

#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hdf5/hdf5_util.h"

namespace tessera::testing {

struct StoredChunk {
  uint64_t address = 0;  // file offset of the chunk's first stored byte
  uint64_t bytes = 0;    // stored (filtered) size, the Fletcher32 checksum included
};

namespace detail {
// Opens `path`'s dataset `name` and hands (dataset, dataspace) to `query`; nullopt where the file
// or the dataset is missing or the query finds no stored chunk (a contiguous dataset has none).
template <typename Query>
std::optional<StoredChunk> query_chunk(const std::string& path, const std::string& name,
                                       Query query) {
  hdf5::H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid() || H5Lexists(file.get(), name.c_str(), H5P_DEFAULT) <= 0) return std::nullopt;
  hdf5::H5Handle dset(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT));
  if (!dset.valid()) return std::nullopt;
  hdf5::H5Handle space(H5Dget_space(dset.get()));
  haddr_t address = HADDR_UNDEF;
  hsize_t stored = 0;
  if (query(dset.get(), space.get(), &address, &stored) < 0 || address == HADDR_UNDEF ||
      stored == 0)
    return std::nullopt;
  return StoredChunk{uint64_t(address), uint64_t(stored)};
}
}  // namespace detail

// The number of stored chunks of `path`'s dataset `name` (0 where it has none or is missing).
inline uint64_t stored_chunk_count(const std::string& path, const std::string& name) {
  hsize_t chunks = 0;
  detail::query_chunk(path, name, [&](hid_t dset, hid_t space, haddr_t*, hsize_t*) {
    return H5Dget_num_chunks(dset, space, &chunks);
  });
  return uint64_t(chunks);
}

// The index-th stored chunk (HDF5's storage order) of `path`'s dataset `name`.
inline std::optional<StoredChunk> stored_chunk(const std::string& path, const std::string& name,
                                               uint64_t index) {
  return detail::query_chunk(
      path, name, [&](hid_t dset, hid_t space, haddr_t* address, hsize_t* stored) {
        std::vector<hsize_t> offset(H5S_MAX_RANK);
        unsigned mask = 0;
        return H5Dget_chunk_info(dset, space, index, offset.data(), &mask, address, stored);
      });
}

// The stored chunk of `path`'s dataset `name` whose first element along axis 0 is `row`.
inline std::optional<StoredChunk> stored_chunk_at_row(const std::string& path,
                                                      const std::string& name, uint64_t row) {
  return detail::query_chunk(
      path, name, [&](hid_t dset, hid_t space, haddr_t* address, hsize_t* stored) {
        std::vector<hsize_t> offset(std::max(1, H5Sget_simple_extent_ndims(space)), 0);
        offset[0] = row;
        unsigned mask = 0;
        return H5Dget_chunk_info_by_coord(dset, offset.data(), &mask, address, stored);
      });
}

}  // namespace tessera::testing
