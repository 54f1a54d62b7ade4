// A padded vocabulary through the trainer and its checkpoints (one process): the padded rows
// start at zero and stay exactly zero through AdamW steps with weight decay (their gradient is
// exactly 0), the checkpoint holds the padded shape and loads back, and loading it into a model
// with another padding fails with the shape-mismatch error naming the tensor.
#include <gtest/gtest.h>

#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "models/factory.h"
#include "tests/train/train_test_support.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;
using testing_support::load;
using testing_support::run_dir;

// gpt_tiny with 500 real ids padded to 512 (the tied table), weight decay on embeddings too.
config::Config padded(std::vector<std::string> more = {}) {
  std::vector<std::string> sets = {
      "model.gpt.vocab_size=500", "model.gpt.vocab_pad_multiple=64", "train.steps=3",
      "data.global_batch_size=4", "optim.decay_embeddings=true",     "checkpoint.every_steps=3"};
  sets.insert(sets.end(), more.begin(), more.end());
  return load("configs/gpt_tiny.pbtxt", sets);
}

// Elements [row0 * C, rows * C) of a (rows, C) parameter, on the host.
void expect_rows_zero(const models::ParamStore& store, const std::string& name, int64_t row0,
                      const std::string& what) {
  const models::ParamId id = store.find(name);
  ASSERT_GE(id, 0) << name;
  const Tensor p = to_device(store.param(id), Device::cpu());
  const int64_t C = p.dim(1);
  ASSERT_EQ(p.dim(0), 512) << name;
  int64_t nonzero = 0;
  for (int64_t i = row0 * C; i < p.numel(); ++i) nonzero += p.data<float>()[i] != 0.0f;
  EXPECT_EQ(nonzero, 0) << what << ": padded rows of " << name;
  int64_t real_nonzero = 0;
  for (int64_t i = 0; i < row0 * C; ++i) real_nonzero += p.data<float>()[i] != 0.0f;
  EXPECT_GT(real_nonzero, 0) << what << ": the real rows of " << name << " are trained values";
}

TEST(VocabPadding, PaddedRowsStayZeroAndCheckpointKeepsThePaddedShape) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const std::string dir = run_dir(tied ? "vocab_pad_tied" : "vocab_pad_untied");
    fs::remove_all(dir);
    const config::Config cfg =
        padded({std::string("model.gpt.tie_embedding=") + (tied ? "true" : "false")});
    Trainer t(cfg, dir, true);
    ASSERT_EQ(t.run(), kExitOk);
    expect_rows_zero(t.model().params(), "tok_emb.weight", 500, "after 3 AdamW steps");
    if (!tied) expect_rows_zero(t.model().params(), "head.weight", 500, "after 3 AdamW steps");

    absl::StatusOr<checkpoint::CheckpointInfo> info = checkpoint::open_checkpoint(dir);
    ASSERT_TRUE(info.ok()) << info.status();
    // The same padding loads and gives the trained parameters back.
    auto same = models::make_model(cfg.model());
    ASSERT_TRUE(checkpoint::load_model_parameters(*info, same->params()).ok());
    const Tensor want = to_device(t.model().params().params(), Device::cpu());
    const Tensor got = to_device(same->params().params(), Device::cpu());
    ASSERT_EQ(want.numel(), got.numel());
    for (int64_t i = 0; i < want.numel(); ++i)
      ASSERT_EQ(got.data<float>()[i], want.data<float>()[i]) << i;
    // Another padding (none): the error names the tensor and both shapes.
    config::ModelConfig other = cfg.model();
    other.mutable_gpt()->set_vocab_pad_multiple(0);
    auto unpadded = models::make_model(other);
    const absl::Status s = checkpoint::load_model_parameters(*info, unpadded->params());
    ASSERT_FALSE(s.ok());
    EXPECT_NE(std::string(s.message())
                  .find("tensor tok_emb.weight has shape (512, 64), the model's is (500, 64)"),
              std::string::npos)
        << s.message();
  }
}

}  // namespace
}  // namespace tessera::train
