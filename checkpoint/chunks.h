#pragma once
// Fast paths for checkpoint I/O: chunks go to the file with H5Dwrite_chunk and come back with
// preadv at the addresses HDF5 gives (H5Dget_chunk_info_by_coord), bypassing HDF5's filter
// pipeline, with the Fletcher32 checksum computed here. Why not the library's filter: it sums
// the data two bytes at a time inside HDF5's global lock, and measured at a third of the speed
// of writing the same bytes (the bench in bench/checkpoint); the block form vectorises. The
// files are the same: HDF5 (and h5py) read them through the standard Fletcher32 filter, which
// verifies every chunk (tests/train/checkpoint/compare_checkpoints.py does exactly that).
//
// Applies to datasets chunked as (rows, whole trailing dimensions), i.e. every chunk a contiguous
// run of the row-major data; callers fall back to the filter pipeline otherwise.
//
// Reads are planned first (HDF5 calls, main thread) and run after (file reads and checksums, any
// number of threads: PieceReader::finish). Where a load's time goes: chunks.cc.

#include <hdf5.h>

#include <sys/types.h>
#include <cstddef>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera::checkpoint::detail {

// True when `chunk` (the dataset's chunk dimensions) covers whole trailing dimensions of `dims`.
bool row_chunks(const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk);

// Writes all chunks of dataset `ds` (shape dims, chunk dims `chunk`, Fletcher32 its only filter)
// from `data` (row-major, the whole dataset). `data` is used as scratch: the 4 bytes after each
// chunk hold the checksum during the call and are restored; for the last chunk only when
// `room_after` (writable bytes after the dataset's end in the caller's buffer) is at least 4 and
// the chunk is not padded, else the chunk goes through `scratch` (kept by the caller to reuse).
// Returns false with HDF5's error stack left for the caller on failure.
bool write_chunks(hid_t ds, const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk,
                  float* data, size_t room_after, std::vector<uint8_t>* scratch);

// Bytes a chunk is read in: each block is checksummed right after its read, while it is in the
// cache (a whole 4 MiB chunk would be summed from memory again).
constexpr size_t kReadBlock = size_t(1) << 20;

// When only part of a chunk is needed: the box [start, start + count) of the chunk (chunk
// coordinates; the chunk is row-major over chunk_dims), copied to dst with element strides
// dst_strides per dimension.
struct ChunkPart {
  std::vector<int64_t> chunk_dims, start, count, dst_strides;
  float* dst = nullptr;
};

// One chunk to read: its bytes at file_offset in fd, `valid` of them into dst (or, with `part`,
// into the reader's scratch, to copy out the part), then `pad` bytes of padding (a partial last
// chunk) and the 4-byte Fletcher32 checksum.
struct ChunkRead {
  int fd = -1;
  int64_t file_offset = 0;
  uint8_t* dst = nullptr;
  size_t valid = 0, pad = 0;
  int64_t first_row = 0;  // of the dataset, for error messages
  std::optional<ChunkPart> part;
};

// Plans reading the box [start, start + count) of dataset `ds` (shape dims) into dst, a
// row-major buffer of shape dst_dims where the box's first element lies at dst_start, if the
// dataset is chunked as above with Fletcher32 its only filter and every chunk stored as this
// writer stores it. Only the chunks the box touches are read, each whole (the checksum covers
// the whole chunk): a chunk the box covers with whole rows straight into dst, others into
// scratch and the needed part copied out. The chunks' addresses come from HDF5 (calls into
// HDF5 happen here only); read_chunk then reads their bytes from `fd` (the same file, opened
// with open(2); < 0: not applicable). Appends to *reads and returns 1; 0 when not applicable
// (use HDF5's hyperslab read and filter pipeline), -1 on an HDF5 error (*error says which).
int plan_box_reads(hid_t ds, int fd, const std::vector<hsize_t>& dims,
                   const std::vector<int64_t>& start, const std::vector<int64_t>& count, float* dst,
                   const std::vector<int64_t>& dst_dims, const std::vector<int64_t>& dst_start,
                   std::vector<ChunkRead>* reads, std::string* error);

// The whole dataset into dst (row-major, its shape).
int plan_chunk_reads(hid_t ds, int fd, const std::vector<hsize_t>& dims, float* dst,
                     std::vector<ChunkRead>* reads, std::string* error);

// Reads one planned chunk into place and verifies its checksum: 1, -1 on an I/O error or a file
// that ends inside the chunk (*error), -2 on a checksum mismatch. No HDF5 calls: safe to run
// for different chunks on several threads at once (each with its own scratch, which holds the
// padding and the checksum).
int read_chunk(const ChunkRead& c, std::vector<uint8_t>* scratch, std::string* error);

// plan_chunk_reads, then read_chunk for each chunk in turn: 1, 0, -1 as above, or -2 on a
// checksum mismatch (*bad_chunk: the chunk's first row). dst may have been written when not 1.
int read_chunks(hid_t ds, int fd, const std::vector<hsize_t>& dims, float* dst,
                std::vector<uint8_t>* scratch, int64_t* bad_chunk, std::string* error);

}  // namespace tessera::checkpoint::detail
