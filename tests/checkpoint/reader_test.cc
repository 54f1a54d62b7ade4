// PieceReader::queue/finish (checkpoint/pieces.h): pieces written by PieceWriter come back
// exactly through the queued direct chunk reads (run on several OpenMP threads), whole tensors
// and sub-boxes that cut chunks and pieces in rows and columns (the resharding case, checked
// element by element against the values written); a sub-box reads only the chunks it touches
// (a corrupt chunk outside it goes unnoticed, one inside it fails); a corrupt chunk is reported by
// finish() naming the file, dataset, tensor and the chunk's first row, and with two corrupt
// pieces the first one in queue order is the one reported, whatever thread found it.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <omp.h>

#include <filesystem>
#include <random>

#include "checkpoint/pieces.h"
#include "tests/support/files.h"
#include "tests/support/hdf5_chunks.h"

namespace tessera::checkpoint::detail {
namespace {

struct Stored {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<int64_t> split_rows;  // rows where the stored pieces start (one piece: {0})
};

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

class CheckpointReader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ckpt_reader";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // A: 2 chunks of 1500 rows (> 2^20 elements: cut in equal parts); B, C: one chunk each;
    // D: stored as two pieces, so a whole read of it goes through hyperslab reads.
    tensors_ = {
        {"A", {3000, 400}, {0}}, {"B", {50, 7}, {0}}, {"C", {1000}, {0}}, {"D", {10, 6}, {0, 4}}};
    std::mt19937 rng(11);
    std::normal_distribution<float> normal;
    int64_t total = 0;
    for (const Stored& s : tensors_) total += numel(s.shape);
    values_.resize(size_t(total));
    for (float& x : values_) x = normal(rng);
    PieceWriter writer(dir_ + "/rank_00000.h5");
    std::vector<float> copy = values_;  // write() uses the bytes after a piece as scratch
    int64_t offset = 0;
    for (const Stored& s : tensors_) {
      checkpoint::Tensor t;
      t.set_name(s.name);
      t.set_role("param");
      for (int64_t d : s.shape) t.add_shape(d);
      const int64_t row = numel(s.shape) / s.shape[0];
      for (size_t p = 0; p < s.split_rows.size(); ++p) {
        const int64_t begin = s.split_rows[p];
        const int64_t end = p + 1 < s.split_rows.size() ? s.split_rows[p + 1] : s.shape[0];
        std::vector<int64_t> count = s.shape;
        count[0] = end - begin;
        checkpoint::Piece* piece = t.add_pieces();
        piece->set_file("rank_00000.h5");
        piece->set_dataset("param:" + s.name + ":" + std::to_string(p));
        for (size_t d = 0; d < s.shape.size(); ++d) {
          piece->add_start(d == 0 ? begin : 0);
          piece->add_count(count[d]);
        }
        writer.write(piece->dataset(), count, copy.data() + offset + begin * row,
                     copy.data() + copy.size());
      }
      metadata_.push_back(t);
      offset += numel(s.shape);
    }
    writer.close();
    EXPECT_EQ(copy, values_) << "PieceWriter::write changed its input";
  }

  // Queues every tensor whole into one flat buffer, then finish().
  absl::Status load(std::vector<float>* out) {
    out->assign(values_.size(), 0.0f);
    PieceReader reader(dir_);
    int64_t offset = 0;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      Box whole{std::vector<int64_t>(tensors_[i].shape.size(), 0), tensors_[i].shape};
      absl::Status s = reader.queue(metadata_[i], whole, out->data() + offset);
      if (!s.ok()) return s;
      offset += numel(tensors_[i].shape);
    }
    return reader.finish();
  }

  // Flips a byte of chunk `chunk` of `dataset`.
  void flip(const std::string& dataset, hsize_t chunk) {
    const std::string path = dir_ + "/rank_00000.h5";
    const auto stored = testing::stored_chunk(path, dataset, chunk);
    ASSERT_TRUE(stored.has_value()) << dataset << " chunk " << chunk;
    testing::flip_byte(path, stored->address + 40, 0x04);
  }

  std::string dir_;
  std::vector<Stored> tensors_;
  std::vector<checkpoint::Tensor> metadata_;
  std::vector<float> values_;
};

TEST_F(CheckpointReader, QueuedReadsOnSeveralThreadsReturnEveryValue) {
  omp_set_num_threads(3);
  std::vector<float> back;
  absl::Status s = load(&back);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(back, values_);
}

TEST_F(CheckpointReader, SubBoxesAcrossChunksAndPieces) {
  omp_set_num_threads(2);
  struct Want {
    size_t tensor;
    Box box;
  };
  const std::vector<Want> wants = {
      {0, {{1000, 17}, {1100, 373}}},  // A: rows across its two chunks, a column range
      {0, {{1500, 0}, {1500, 400}}},   // A: exactly its second chunk
      {0, {{2999, 399}, {1, 1}}},      // A: its last element
      {2, {{100}, {800}}},             // C: 1-D, inside its one chunk
      {3, {{2, 1}, {7, 4}}},           // D: across its two pieces, a column range
      {3, {{0, 0}, {10, 6}}}};         // D: whole, from two pieces
  PieceReader reader(dir_);
  std::vector<std::vector<float>> got(wants.size());
  for (size_t w = 0; w < wants.size(); ++w) {
    got[w].assign(size_t(wants[w].box.numel()), -1.0f);
    absl::Status s = reader.queue(metadata_[wants[w].tensor], wants[w].box, got[w].data());
    ASSERT_TRUE(s.ok()) << s;
  }
  absl::Status s = reader.finish();
  ASSERT_TRUE(s.ok()) << s;
  for (size_t w = 0; w < wants.size(); ++w) {
    const Stored& t = tensors_[wants[w].tensor];
    int64_t base = 0;
    for (size_t i = 0; i < wants[w].tensor; ++i) base += numel(tensors_[i].shape);
    const Box& b = wants[w].box;
    const int64_t cols = t.shape.size() > 1 ? t.shape[1] : 1;
    const int64_t bcols = b.count.size() > 1 ? b.count[1] : 1;
    const int64_t c0 = b.start.size() > 1 ? b.start[1] : 0;
    for (int64_t r = 0; r < b.count[0]; ++r) {
      for (int64_t c = 0; c < bcols; ++c) {
        const float want = values_[size_t(base + (b.start[0] + r) * cols + c0 + c)];
        ASSERT_EQ(got[w][size_t(r * bcols + c)], want)
            << "want " << w << " " << describe(b) << " at row " << r << ", column " << c;
      }
    }
  }
}

TEST_F(CheckpointReader, ASubBoxReadsOnlyTheChunksItTouches) {
  flip("param:A:0", 1);  // rows 1500..2999
  std::vector<float> got(1500 * 200);
  PieceReader reader(dir_);
  absl::Status s = reader.read(metadata_[0], {{0, 100}, {1500, 200}}, got.data());
  EXPECT_TRUE(s.ok()) << "the corrupt chunk is not needed: " << s;
  s = reader.read(metadata_[0], {{1499, 100}, {2, 200}}, got.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("checksum mismatch"), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("the chunk from row 1500"), std::string::npos) << s;
}

TEST_F(CheckpointReader, FinishReportsTheFirstCorruptChunkInQueueOrder) {
  omp_set_num_threads(3);
  flip("param:C:0", 0);
  std::vector<float> back;
  absl::Status s = load(&back);
  ASSERT_FALSE(s.ok());
  const std::string e(s.message());
  EXPECT_NE(e.find("checksum mismatch"), std::string::npos) << e;
  EXPECT_NE(e.find(dir_ + "/rank_00000.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("dataset param:C:0"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor C (param)"), std::string::npos) << e;
  flip("param:A:0", 1);  // now A's second chunk too: A is queued first
  s = load(&back);
  ASSERT_FALSE(s.ok());
  const std::string e2(s.message());
  EXPECT_NE(e2.find("dataset param:A:0"), std::string::npos) << e2;
  EXPECT_NE(e2.find("the chunk from row 1500"), std::string::npos) << e2;
}

}  // namespace
}  // namespace tessera::checkpoint::detail

namespace tessera::checkpoint::detail {
namespace {

// A rank file another tool wrote with the same filter and row chunks but big-endian f32: the
// values come back converted (through HDF5), not as raw bytes read straight into floats.
TEST(CheckpointReaderForeign, BigEndianFloatsAreConvertedNotCopied) {
  const std::string dir = ::testing::TempDir() + "/ckpt_reader_be";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<float> values(64 * 3);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.25f * float(i) - 7.0f;
  {
    hid_t f = H5Fcreate((dir + "/rank_00000.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {64, 3}, chunk[2] = {16, 3};
    hid_t space = H5Screate_simple(2, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_fletcher32(dcpl);
    hid_t ds = H5Dcreate2(f, "param:W:0", H5T_IEEE_F32BE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(f);
  }
  checkpoint::Tensor t;
  t.set_name("W");
  t.set_role("param");
  t.add_shape(64);
  t.add_shape(3);
  checkpoint::Piece* piece = t.add_pieces();
  piece->set_file("rank_00000.h5");
  piece->set_dataset("param:W:0");
  piece->add_start(0);
  piece->add_start(0);
  piece->add_count(64);
  piece->add_count(3);
  std::vector<float> out(values.size(), 0.0f);
  PieceReader reader(dir);
  ASSERT_TRUE(reader.queue(t, Box{{0, 0}, {64, 3}}, out.data()).ok());
  ASSERT_TRUE(reader.finish().ok());
  EXPECT_EQ(out, values);
}

}  // namespace
}  // namespace tessera::checkpoint::detail
