// The direct chunk paths (train/checkpoint_chunks.h) against HDF5's own Fletcher32 filter: data
// written by the library's filter pipeline reads back through read_chunks (our checksum accepts
// the library's), data written by write_chunks reads back through the library's filter (the
// library accepts ours), for shapes with one chunk, several chunks and a padded last chunk; a
// flipped byte is caught by both; and write_chunks leaves the caller's buffer as it was.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "data_pipeline/hdf5_util.h"
#include "train/checkpoint_chunks.h"

namespace tessera::train::ckpt {
namespace {

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
                                   {{9, 2, 5}, {2, 2, 5}},
                                   {{1000, 33}, {129, 33}},
                                   {{5, 1}, {5, 1}}};
  for (const Case& c : cases) {
    size_t n = 1;
    for (hsize_t d : c.dims) n *= size_t(d);
    std::vector<float> data(n), copy, back(n);
    for (float& x : data) x = normal(rng);
    copy = data;
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_TRUE(row_chunks(c.dims, c.chunk));
    hid_t lib = create(f, "lib", c), ours = create(f, "ours", c);
    ASSERT_GE(H5Dwrite(lib, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), 0);
    ASSERT_TRUE(write_chunks(ours, c.dims, c.chunk, data.data()));
    EXPECT_EQ(data, copy) << "write_chunks changed its input";
    int64_t bad = -1;
    EXPECT_EQ(read_chunks(lib, c.dims, back.data(), &bad), 1);
    EXPECT_EQ(back, data);
    std::fill(back.begin(), back.end(), 0.0f);
    ASSERT_GE(H5Dread(ours, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data()), 0)
        << "HDF5's filter rejects our checksum";
    EXPECT_EQ(back, data);
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0, offset[3];
    unsigned mask = 0;
    hid_t space = H5Dget_space(ours);
    ASSERT_GE(H5Dget_chunk_info(ours, space, 0, offset, &mask, &addr, &size), 0);
    H5Sclose(space);
    H5Dclose(lib);
    H5Dclose(ours);
    H5Fclose(f);
    {  // flip a byte of the first chunk of "ours"
      std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
      io.seekg(std::streamoff(addr + 2));
      char b = 0;
      io.read(&b, 1);
      b ^= 0x01;
      io.seekp(std::streamoff(addr + 2));
      io.write(&b, 1);
    }
    f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ours = H5Dopen2(f, "ours", H5P_DEFAULT);
    EXPECT_EQ(read_chunks(ours, c.dims, back.data(), &bad), -2);
    EXPECT_EQ(bad, 0);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    EXPECT_LT(H5Dread(ours, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data()), 0);
    H5Dclose(ours);
    H5Fclose(f);
  }
}

TEST(CheckpointChunks, Fletcher32OfKnownBytes) {
  // Worked by hand from the definition: words 0x0102, 0x0304 -> sum1 = 0x0406,
  // sum2 = 0x0102 + 0x0406 = 0x0508; an odd trailing byte 0x05 adds 0x0500.
  const unsigned char even[] = {1, 2, 3, 4};
  EXPECT_EQ(data::fletcher32(even, 4), 0x05080406u);
  const unsigned char odd[] = {1, 2, 3, 4, 5};
  EXPECT_EQ(data::fletcher32(odd, 5), ((0x0508u + 0x0906u) << 16) | 0x0906u);
}

}  // namespace
}  // namespace tessera::train::ckpt
