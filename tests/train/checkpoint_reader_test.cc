// PieceReader::queue/finish (train/checkpoint_h5.h): pieces written by PieceWriter come back
// exactly, whole pieces through the queued direct chunk reads (run on several OpenMP threads)
// mixed with hyperslab reads of a tensor stored in two pieces; a corrupt chunk is reported by
// finish() naming the file, dataset, tensor and the chunk's first row, and with two corrupt
// pieces the first one in queue order is the one reported, whatever thread found it.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <omp.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "train/checkpoint_h5.h"

namespace tessera::train::ckpt {
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
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hsize_t offset[4], size = 0;
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    ASSERT_GE(H5Dget_chunk_info(d, s, chunk, offset, &mask, &addr, &size), 0);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(std::streamoff(addr + 40));
    char b = 0;
    io.read(&b, 1);
    b ^= 0x04;
    io.seekp(std::streamoff(addr + 40));
    io.write(&b, 1);
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
}  // namespace tessera::train::ckpt
