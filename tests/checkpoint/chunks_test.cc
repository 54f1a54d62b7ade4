// The direct chunk paths (checkpoint/chunks.h) against HDF5's own Fletcher32 filter: data
// written by the library's filter pipeline reads back through read_chunks (our checksum accepts
// the library's), data written by write_chunks reads back through the library's filter (the
// library accepts ours), for shapes with one chunk, several chunks, chunks larger than a read
// block and a padded last chunk; a flipped byte (in the data, or in the padding of a partial
// last chunk) is caught by both; read_chunks writes nothing outside the dataset's elements;
// write_chunks leaves the caller's buffer as it was. The incremental Fletcher32 equals libhdf5's
// own however the bytes are split.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "checkpoint/chunks.h"
#include "hdf5/hdf5_util.h"
#include "tests/support/files.h"

// libhdf5's own implementation (exported by Debian's libhdf5, declared in its private headers).
extern "C" uint32_t H5_checksum_fletcher32(const void* data, size_t len);

namespace tessera::checkpoint::detail {
namespace {

// read_chunks on `name` of the file at `path` into out (sized to the dataset, with guard
// elements after it that must stay untouched); returns its result code.
int read_direct(const std::string& path, hid_t ds, const std::vector<hsize_t>& dims,
                std::vector<float>* out, int64_t* bad) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  size_t n = 1;
  for (hsize_t d : dims) n *= size_t(d);
  out->assign(n + 8, -7.0f);
  std::vector<uint8_t> scratch;
  std::string error;
  const int rc = read_chunks(ds, fd, dims, out->data(), &scratch, bad, &error);
  ::close(fd);
  for (size_t i = n; i < n + 8; ++i) EXPECT_EQ((*out)[i], -7.0f) << "wrote past the dataset";
  out->resize(n);
  EXPECT_TRUE(rc != -1) << error;
  return rc;
}

struct Case {
  std::vector<hsize_t> dims, chunk;
};

hid_t create(hid_t file, const char* name, const Case& c) {
  hid_t space = H5Screate_simple(int(c.dims.size()), c.dims.data(), nullptr);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, int(c.chunk.size()), c.chunk.data());
  H5Pset_fletcher32(dcpl);
  hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(space);
  return ds;
}

TEST(CheckpointChunks, AgreeWithHdf5Fletcher32Filter) {
  const std::string path = ::testing::TempDir() + "/chunks.h5";
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  const std::vector<Case> cases = {{{7}, {7}},
                                   {{10, 3}, {4, 3}},
                                   {{12, 3}, {4, 3}},
                                   {{9, 2, 5}, {2, 2, 5}},
                                   {{1000, 33}, {129, 33}},
                                   {{5, 1}, {5, 1}},
                                   // chunks of 2.5 read blocks, the last one mostly padding
                                   {{5 * kReadBlock / 4 + 7, 1}, {5 * kReadBlock / 8, 1}},
                                   // chunks of exactly one read block
                                   {{3, kReadBlock / 4}, {1, kReadBlock / 4}}};
  for (const Case& c : cases) {
    size_t n = 1;
    for (hsize_t d : c.dims) n *= size_t(d);
    // 8 elements after the dataset: the rest of a caller's buffer (scratch during write_chunks).
    std::vector<float> buffer(n + 8), copy, back(n);
    for (float& x : buffer) x = normal(rng);
    copy = buffer;
    const std::vector<float> data(buffer.begin(), buffer.begin() + ptrdiff_t(n));
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_TRUE(row_chunks(c.dims, c.chunk));
    hid_t lib = create(f, "lib", c), ours = create(f, "ours", c), tight = create(f, "tight", c);
    ASSERT_GE(H5Dwrite(lib, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), 0);
    std::vector<uint8_t> scratch;
    // With room after the data (the last chunk in place unless padded), and with none.
    ASSERT_TRUE(write_chunks(ours, c.dims, c.chunk, buffer.data(), 8 * sizeof(float), &scratch));
    EXPECT_EQ(buffer, copy) << "write_chunks changed its input";
    ASSERT_TRUE(write_chunks(tight, c.dims, c.chunk, buffer.data(), 0, &scratch));
    EXPECT_EQ(buffer, copy) << "write_chunks changed its input";
    ASSERT_GE(H5Dread(tight, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data()), 0)
        << "HDF5's filter rejects our checksum";
    EXPECT_EQ(back, data);
    H5Dclose(tight);
    H5Fflush(f, H5F_SCOPE_LOCAL);
    int64_t bad = -1;
    EXPECT_EQ(read_direct(path, lib, c.dims, &back, &bad), 1);
    EXPECT_EQ(back, data);
    EXPECT_EQ(read_direct(path, ours, c.dims, &back, &bad), 1);
    EXPECT_EQ(back, data);
    std::fill(back.begin(), back.end(), 0.0f);
    ASSERT_GE(H5Dread(ours, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data()), 0)
        << "HDF5's filter rejects our checksum";
    EXPECT_EQ(back, data);
    // Where to corrupt: a byte of the first chunk, a byte deep in the last chunk (past the
    // first read block where the chunk is that large), and one in its padding when it has any.
    hsize_t nchunks = 0;
    hid_t space = H5Dget_space(ours);
    ASSERT_GE(H5Dget_num_chunks(ours, space, &nchunks), 0);
    const hsize_t chunk_bytes = data.size() / c.dims[0] * c.chunk[0] * sizeof(float);
    const hsize_t valid_last =
        (c.dims[0] - (nchunks - 1) * c.chunk[0]) * (data.size() / c.dims[0]) * sizeof(float);
    struct Flip {
      hsize_t chunk, byte;
    };
    std::vector<Flip> flips = {{0, 2}, {nchunks - 1, valid_last - 3}};
    if (valid_last < chunk_bytes) flips.push_back({nchunks - 1, chunk_bytes - 2});
    std::vector<haddr_t> addr(nchunks);
    for (hsize_t i = 0; i < nchunks; ++i) {
      hsize_t size = 0, offset[3];
      unsigned mask = 0;
      ASSERT_GE(H5Dget_chunk_info(ours, space, i, offset, &mask, &addr[i], &size), 0);
      ASSERT_EQ(offset[0], i * c.chunk[0]);  // chunk i is the i-th in row order
    }
    H5Sclose(space);
    H5Dclose(lib);
    H5Dclose(ours);
    H5Fclose(f);
    for (const Flip& flip : flips) {
      const uint64_t at = addr[flip.chunk] + flip.byte;
      testing::flip_byte(path, at, 0x01);
      f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      ours = H5Dopen2(f, "ours", H5P_DEFAULT);
      EXPECT_EQ(read_direct(path, ours, c.dims, &back, &bad), -2) << "byte " << flip.byte;
      EXPECT_EQ(bad, int64_t(flip.chunk * c.chunk[0]));
      H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
      back.assign(data.size(), 0.0f);
      EXPECT_LT(H5Dread(ours, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data()), 0);
      H5Dclose(ours);
      H5Fclose(f);
      testing::flip_byte(path, at, 0x01);  // restore for the next flip
    }
  }
}

TEST(CheckpointChunks, IncrementalFletcher32EqualsHdf5sOwn) {
  std::mt19937 rng(5);
  std::vector<uint8_t> bytes(700001);
  for (auto& b : bytes) b = uint8_t(rng());
  for (size_t n : {size_t(0), size_t(1), size_t(2050), size_t(131073), bytes.size()}) {
    for (int trial = 0; trial < 20; ++trial) {
      // Random even-length pieces, the last one whatever is left (odd when n is).
      hdf5::Fletcher32 sum;
      size_t at = 0;
      while (n - at > 1) {
        const size_t piece = std::min(n - at, 2 * size_t(rng() % 70000)) & ~size_t(1);
        sum.update(bytes.data() + at, piece);
        at += piece;
      }
      sum.update(bytes.data() + at, n - at);
      ASSERT_EQ(sum.value(), H5_checksum_fletcher32(bytes.data(), n)) << n << " trial " << trial;
    }
  }
  // All 0xff: every partial sum a multiple of 65535 at some point.
  std::vector<uint8_t> ones(262144, 0xff);
  hdf5::Fletcher32 sum;
  for (size_t at = 0; at < ones.size(); at += 2048) sum.update(ones.data() + at, 2048);
  EXPECT_EQ(sum.value(), H5_checksum_fletcher32(ones.data(), ones.size()));
}

TEST(CheckpointChunks, Fletcher32OfKnownBytes) {
  // Worked by hand from the definition: words 0x0102, 0x0304 -> sum1 = 0x0406,
  // sum2 = 0x0102 + 0x0406 = 0x0508; an odd trailing byte 0x05 adds 0x0500.
  const unsigned char even[] = {1, 2, 3, 4};
  EXPECT_EQ(hdf5::fletcher32(even, 4), 0x05080406u);
  const unsigned char odd[] = {1, 2, 3, 4, 5};
  EXPECT_EQ(hdf5::fletcher32(odd, 5), ((0x0508u + 0x0906u) << 16) | 0x0906u);
}

}  // namespace
}  // namespace tessera::checkpoint::detail
