// Checkpoint reading against bad input (one process): a flipped byte in a tensor chunk, a
// truncated rank file, a missing rank file, a corrupt metadata file, a checkpoint of another
// model or vocabulary, torn (uncommitted) directories. Each is an error naming the file and the
// tensor, and nothing in the checkpoint directory is touched by the failed load.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/commit.h"
#include "models/factory.h"
#include "tests/support/files.h"
#include "tests/support/hdf5_chunks.h"
#include "tests/train/train_test_support.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;
using testing_support::load;
using testing_support::run_dir;

constexpr char kConfig[] = "configs/gpt_tiny.pbtxt";

config::Config tiny() {
  return load(kConfig, {"train.steps=2", "train.peak_flops=1e9", "data.global_batch_size=4"});
}

// A trained run with committed checkpoints of steps 1 and 2; returns the trainer's parameters.
Tensor train_run(const std::string& dir) {
  config::Config cfg = tiny();
  cfg.mutable_checkpoint()->set_every_steps(1);
  Trainer t(cfg, dir, true);
  EXPECT_EQ(t.run(), kExitOk);
  Tensor out = Tensor::empty(t.model().params().params().shape(), DType::f32);
  copy(t.model().params().params(), out);
  return out;
}

// A copy of `dir`'s step-2 checkpoint to damage; returns the copy's path.
std::string damaged_copy(const std::string& run, const std::string& name) {
  const std::string dst = run_dir(name);
  fs::remove_all(dst);
  fs::copy(run + "/checkpoints/step_00000002", dst);
  return dst;
}

// The byte offset in the file of dataset `name`'s first chunk.
haddr_t chunk_address(const std::string& file, const std::string& name) {
  const auto chunk = testing::stored_chunk(file, name, 0);
  TESSERA_CHECK(chunk.has_value(), file, ": no stored chunk of ", name);
  return chunk->address;
}

std::string load_error(const std::string& path, const config::Config& cfg = tiny()) {
  absl::StatusOr<checkpoint::CheckpointInfo> info = checkpoint::open_checkpoint(path);
  if (!info.ok()) return std::string(info.status().message());
  auto model = models::make_model(cfg.model());
  absl::Status s = checkpoint::load_model_parameters(*info, model->params());
  return s.ok() ? "" : std::string(s.message());
}

// The message with which a trainer of `cfg` refuses to resume from `checkpoint` (run directory
// `dir`), or "" when it trained.
std::string resume_error(const config::Config& cfg, const std::string& dir,
                         const std::string& checkpoint) {
  Trainer t(cfg, dir, true);
  t.set_resume(checkpoint);
  try {
    t.run();
  } catch (const Error& err) {
    return err.what();
  }
  return "";
}

class CheckpointErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    run_ = new std::string(run_dir("ckpt_errors_run"));
    fs::remove_all(*run_);
    params_ = new Tensor(train_run(*run_));
  }
  static std::string* run_;
  static Tensor* params_;
};
std::string* CheckpointErrors::run_ = nullptr;
Tensor* CheckpointErrors::params_ = nullptr;

TEST_F(CheckpointErrors, IntactCheckpointLoadsTheTrainedParameters) {
  absl::StatusOr<checkpoint::CheckpointInfo> info =
      checkpoint::open_checkpoint(*run_);  // a run directory
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->step, 2);
  EXPECT_EQ(info->config.train().steps(), 2);
  auto model = models::make_model(tiny().model());
  ASSERT_TRUE(checkpoint::load_model_parameters(*info, model->params()).ok());
  EXPECT_EQ(0, std::memcmp(model->params().params().data<float>(), params_->data<float>(),
                           params_->nbytes()));
}

TEST_F(CheckpointErrors, FlippedByteInATensorChunk) {
  const std::string dir = damaged_copy(*run_, "ckpt_flipped");
  const std::string file = dir + "/rank_00000.h5";
  const haddr_t at = chunk_address(file, "param:blocks.0.attn.qkv.weight");
  ASSERT_NE(at, HADDR_UNDEF);
  testing::flip_byte(file, at + 100, 0x10);
  const std::string e = load_error(dir);
  EXPECT_NE(e.find("checksum"), std::string::npos) << e;
  EXPECT_NE(e.find(file), std::string::npos) << e;
  EXPECT_NE(e.find("blocks.0.attn.qkv.weight"), std::string::npos) << e;
}

TEST_F(CheckpointErrors, TruncatedRankFile) {
  const std::string dir = damaged_copy(*run_, "ckpt_truncated");
  const std::string file = dir + "/rank_00000.h5";
  fs::resize_file(file, fs::file_size(file) / 2);
  const std::string e = load_error(dir);
  EXPECT_NE(e.find(file), std::string::npos) << e;
  EXPECT_NE(e.find("tensor "), std::string::npos) << e;
}

TEST_F(CheckpointErrors, MissingRankFile) {
  const std::string dir = damaged_copy(*run_, "ckpt_missing");
  fs::remove(dir + "/rank_00000.h5");
  const std::string e = load_error(dir);
  EXPECT_NE(e.find("rank_00000.h5 is missing"), std::string::npos) << e;
  EXPECT_NE(e.find("tensor "), std::string::npos) << e;
}

TEST_F(CheckpointErrors, CorruptMetadataIsCaughtByTheMarker) {
  const std::string dir = damaged_copy(*run_, "ckpt_metadata");
  {
    std::fstream f(dir + "/metadata.pb", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.write("\x7f", 1);
  }
  const std::string e = load_error(dir);
  EXPECT_NE(e.find("metadata.pb"), std::string::npos) << e;
  EXPECT_NE(e.find("CRC-32"), std::string::npos) << e;
}

TEST_F(CheckpointErrors, AnotherModelOrVocabulary) {
  const std::string e = load_error(*run_, load("configs/vit_tiny.pbtxt"));
  EXPECT_NE(e.find("metadata.pb: no param tensor"), std::string::npos) << e;
  EXPECT_NE(e.find("gpt run"), std::string::npos) << e;
  const std::string v = load_error(*run_, load(kConfig, {"model.gpt.vocab_size=256"}));
  EXPECT_NE(v.find("tensor tok_emb.weight has shape (512, 64), the model's is (256, 64)"),
            std::string::npos)
      << v;
  // Resuming a run of another model stops before touching anything.
  const std::string r = resume_error(load(kConfig, {"model.gpt.vocab_size=256", "train.steps=3"}),
                                     run_dir("ckpt_other_model"), *run_);
  EXPECT_NE(r.find("another model"), std::string::npos) << (r.empty() ? "no error" : r);
}

// Same shapes, another architecture (more heads): the model config comparison catches it.
TEST_F(CheckpointErrors, SameShapesAnotherArchitecture) {
  const std::string r = resume_error(load(kConfig, {"model.gpt.transformer.n_heads=8",
                                                    "train.steps=3", "data.global_batch_size=4"}),
                                     run_dir("ckpt_other_heads"), *run_);
  EXPECT_NE(r.find("n_heads: 4 -> 8"), std::string::npos) << (r.empty() ? "no error" : r);
}

TEST_F(CheckpointErrors, TornDirectoriesAreIgnoredWithAMessage) {
  const std::string run = run_dir("ckpt_torn");
  fs::remove_all(run);
  fs::create_directories(run + "/checkpoints");
  fs::copy(*run_ + "/checkpoints/step_00000002", run + "/checkpoints/step_00000002");
  fs::copy(*run_ + "/checkpoints/step_00000002", run + "/checkpoints/step_00000003");
  fs::remove(run + "/checkpoints/step_00000003/COMMITTED");
  fs::copy(*run_ + "/checkpoints/step_00000002", run + "/checkpoints/.tmp-step_00000004");
  const checkpoint::detail::Scan scan = checkpoint::detail::scan(run + "/checkpoints");
  EXPECT_EQ(scan.committed, std::vector<int64_t>{2});
  ASSERT_EQ(scan.notes.size(), 2u);
  absl::StatusOr<checkpoint::CheckpointInfo> info = checkpoint::open_checkpoint(run);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->step, 2);
  const std::string e = load_error(run + "/checkpoints/step_00000003");
  EXPECT_NE(e.find("no COMMITTED marker"), std::string::npos) << e;
  // The next save removes the interrupted save; the step directory that fails its check stays
  // (ignored) for inspection: its marker might only be unreadable for a moment.
  const auto removed = checkpoint::detail::retain(run + "/checkpoints", 3, 0);
  EXPECT_EQ(removed.size(), 1u);
  EXPECT_FALSE(fs::exists(run + "/checkpoints/.tmp-step_00000004"));
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step_00000003"));
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step_00000002/COMMITTED"));
}

TEST_F(CheckpointErrors, FailedResumeTouchesNothing) {
  const std::string run = run_dir("ckpt_untouched");
  fs::remove_all(run);
  fs::create_directories(run + "/checkpoints");
  const std::string step = run + "/checkpoints/step_00000002";
  fs::copy(*run_ + "/checkpoints/step_00000002", step);
  fs::resize_file(step + "/rank_00000.h5", fs::file_size(step + "/rank_00000.h5") - 1000);
  const auto size = fs::file_size(step + "/rank_00000.h5");
  Trainer t(load(kConfig, {"train.steps=3", "train.peak_flops=1e9", "data.global_batch_size=4"}),
            run, true);
  t.set_resume("auto");
  EXPECT_THROW(t.run(), Error);
  EXPECT_EQ(fs::file_size(step + "/rank_00000.h5"), size);
  EXPECT_EQ(checkpoint::detail::scan(run + "/checkpoints").committed, std::vector<int64_t>{2});
  EXPECT_FALSE(fs::exists(run + "/checkpoints/step_00000003"));
}

// Retention: keep_last 3 and keep_every 4 over commits of steps 1..10 keep 4, 8 (milestones) and
// 8, 9, 10 (newest); `latest` names the newest; commit replaces a directory of the same step.
TEST(CheckpointRetention, KeepLastAndKeepEvery) {
  const std::string root = testing_support::run_dir("ckpt_retention");
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  for (int64_t step = 1; step <= 10; ++step) {
    const std::string tmp = root + "/" + checkpoint::detail::tmp_dir_name(step);
    std::filesystem::create_directories(tmp);
    ASSERT_TRUE(
        checkpoint::detail::write_file_durably(tmp + "/metadata.pb", "m" + std::to_string(step))
            .ok());
    ASSERT_TRUE(checkpoint::detail::commit(root, step, tmp).ok());
    checkpoint::detail::retain(root, 3, 4);
  }
  EXPECT_EQ(checkpoint::detail::scan(root).committed, (std::vector<int64_t>{4, 8, 9, 10}));
  EXPECT_EQ(*checkpoint::detail::read_file(root + "/latest"), "step_00000010\n");
  const std::string tmp = root + "/" + checkpoint::detail::tmp_dir_name(9);
  std::filesystem::create_directories(tmp);
  ASSERT_TRUE(checkpoint::detail::write_file_durably(tmp + "/metadata.pb", "again").ok());
  ASSERT_TRUE(checkpoint::detail::commit(root, 9, tmp).ok());
  EXPECT_EQ(*checkpoint::detail::read_file(root + "/step_00000009/metadata.pb"), "again");
  EXPECT_TRUE(checkpoint::detail::verify_marker(root + "/step_00000009").ok());
}

// Another global batch: allowed, with a warning; training goes on from the saved sample position.
TEST(CheckpointResume, AnotherGlobalBatchContinuesFromTheCursor) {
  const std::string dir = testing_support::run_dir("ckpt_batch");
  std::filesystem::remove_all(dir);
  {
    Trainer t(testing_support::load(
                  kConfig, {"train.steps=2", "data.global_batch_size=4", "train.peak_flops=1e9"}),
              dir, true);
    ASSERT_EQ(t.run(), kExitOk);
  }
  Trainer t(testing_support::load(
                kConfig, {"train.steps=3", "data.global_batch_size=8", "train.peak_flops=1e9"}),
            dir, true);
  t.set_resume("auto");
  ::testing::internal::CaptureStdout();
  ASSERT_EQ(t.run(), kExitOk);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("warning: data.global_batch_size is 8, the checkpoint's run used 4"),
            std::string::npos)
      << out;
  absl::StatusOr<checkpoint::CheckpointInfo> info = checkpoint::open_checkpoint(dir);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->step, 3);
  EXPECT_EQ(info->metadata.data().next_position(), 2 * 4 + 8);
  EXPECT_EQ(info->metadata.optimizer().steps_taken(), 3);
}

}  // namespace
}  // namespace tessera::train
