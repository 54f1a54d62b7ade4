// Resharding on load (runs on 4 ranks): a checkpoint written at (DP 2, TP 2) loads at (1, 1),
// (4, 1), (1, 4), (2, 1) with ZeRO-1, (2, 2) with ZeRO-1, (4, 1) with ZeRO-2 and (2, 2) with
// ZeRO-2, and the next steps' losses equal the original layout's within f32 tolerance; the
// checkpoint each of those layouts writes loads back at (2, 2) (the (4, 1) ZeRO-2 one at (2, 1)
// with ZeRO-1: stage 2 to stage 1 on another DP size) and its next step's loss equals the original
// run's too. ZeRO-3 at (2, 1), (4, 1) and (2, 2) loads the stage-0 checkpoint, and its own
// checkpoints (parameters written as shard ranges by every rank) load at (4, 1) with ZeRO-2, at
// (1, 1) stage 0 and (from (2, 2)) at (2, 2) stage 0. GPT, ViT, CLIP and DiT tiny configs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "checkpoint/checkpoint.h"
#include "tests/distributed/mpi_test_env.h"
#include "tests/train/layout_runs.h"
#include "tests/train/train_test_support.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

using testing_support::Layout;
using testing_support::load;
using testing_support::losses;
using testing_support::run_dir;
using testing_support::train_at;

void expect_reshard(const std::string& model, config::Config cfg) {
  auto world = distributed::testing::test_world(120);
  ASSERT_EQ(world->size(), 4) << "run on 4 ranks";
  cfg.mutable_train()->set_steps(4);
  cfg.mutable_train()->set_deterministic(true);
  cfg.mutable_train()->set_peak_flops(1e9);
  cfg.mutable_checkpoint()->set_every_steps(1);
  cfg.mutable_checkpoint()->set_keep_last(0);  // keep all
  cfg.mutable_log()->set_every_steps(1);
  cfg.mutable_parallel()->set_bucket_bytes(20000);  // several ZeRO buckets
  const Layout original{4, 2, 0};
  const std::string base = run_dir(model + "_" + original.name());
  train_at(*world, cfg, original, base, "");
  const std::string from = base + "/checkpoints/step_00000002";
  const auto want = losses(base);
  const double tol = 2e-5;
  // Where each layout's checkpoint goes back to: (2, 2) stage 0, except ZeRO-2 at (4, 1) to
  // ZeRO-1 at (2, 1), and ZeRO-3 (sharded parameters, written as ranges by every rank) at (2, 1)
  // to ZeRO-2 at (4, 1) and at (4, 1) to one process.
  auto back_layout = [&](const Layout& l) {
    if (l.zero == 2 && l.tp == 1) return Layout{2, 1, 1};
    if (l.zero == 3 && l.tp == 1) return l.ranks == 2 ? Layout{4, 1, 2} : Layout{1, 1, 0};
    return original;
  };
  for (const Layout& l :
       {Layout{1, 1, 0}, Layout{4, 1, 0}, Layout{4, 4, 0}, Layout{2, 1, 1}, Layout{4, 2, 1},
        Layout{4, 1, 2}, Layout{4, 2, 2}, Layout{2, 1, 3}, Layout{4, 1, 3}, Layout{4, 2, 3}}) {
    const std::string dir = run_dir(model + "_" + l.name());
    train_at(*world, cfg, l, dir, from);  // steps 3 and 4 from (2, 2)'s step 2
    const std::string back = run_dir(model + "_" + l.name() + "_back");
    const Layout back_at = back_layout(l);
    train_at(*world, cfg, back_at, back, dir + "/checkpoints/step_00000003");
    // Rank 0's checks in a function of their own: an ASSERT ends the lambda, not the test, and
    // rank 0 still takes part in the next layout's runs (tests/train/rank_agreement.h).
    if (world->rank() == 0)
      [&] {
        const auto got = losses(dir), got_back = losses(back);
        ASSERT_TRUE(got.count(3) && got.count(4) && got_back.count(4)) << model << " " << l.name();
        ASSERT_FALSE(got.count(2)) << "the resumed run trained step 2 again";
        for (int64_t s : {3, 4}) {
          EXPECT_NEAR(got.at(s), want.at(s), tol * std::fabs(want.at(s)))
              << model << ": step " << s << " at " << l.name() << " from " << original.name();
        }
        EXPECT_NEAR(got_back.at(4), want.at(4), tol * std::fabs(want.at(4)))
            << model << ": step 4 at " << back_at.name() << " from " << l.name() << "'s step 3";
        if (l.zero == 3) {
          // The parameters were written by every rank, as pieces of the same global tensors.
          auto ckpt = checkpoint::open_checkpoint(dir + "/checkpoints/step_00000003");
          ASSERT_TRUE(ckpt.ok()) << ckpt.status();
          std::set<std::string> files;
          for (const auto& t : ckpt->metadata.tensors()) {
            if (t.role() != "param") continue;
            for (const auto& piece : t.pieces()) files.insert(piece.file());
          }
          // (Under TP 2 x DP 2: every rank writes its ranges of its TP slices.)
          EXPECT_EQ(int(files.size()), l.ranks) << model << " " << l.name();
        }
      }();
  }
}

TEST(CheckpointReshard, Gpt) {
  expect_reshard("gpt", load("configs/gpt_tiny.pbtxt", {"data.global_batch_size=8"}));
}

TEST(CheckpointReshard, Vit) {
  expect_reshard("vit", load("configs/vit_tiny.pbtxt", {"data.global_batch_size=8"}));
}

TEST(CheckpointReshard, Clip) {
  expect_reshard("clip",
                 load("configs/clip_tiny.pbtxt",
                      {"data.global_batch_size=8", "model.clip.image.transformer.n_layers=1",
                       "model.clip.text.transformer.n_layers=1"}));
}

TEST(CheckpointReshard, Dit) {
  expect_reshard("dit", load("configs/dit_tiny.pbtxt", {"data.global_batch_size=8"}));
}

}  // namespace
}  // namespace tessera::train
