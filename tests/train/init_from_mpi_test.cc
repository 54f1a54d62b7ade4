// init.* under other layouts (2 ranks): a CLIP trained in one process initialises a ViT
// classifier at TP 2 and at DP 2 with ZeRO-1; each rank reads only its shard
// (checkpoint::load_parameters_from). With lr 0 the one training step changes nothing, so the
// target run's final checkpoint (written by both ranks) holds exactly what they loaded: it must
// equal the source's tensors bitwise.
#include <gtest/gtest.h>

#include <cstring>

#include "tests/distributed/mpi_test_env.h"
#include "tests/train/init_from_support.h"
#include "tests/train/rank_agreement.h"

namespace tessera::train {
namespace {

using namespace testing_support;  // small_clip, small_vit, train_source, stored, run_dir

void expect_loaded_at(int tp, int zero) {
  auto world = distributed::testing::test_world(120);
  ASSERT_EQ(world->size(), 2) << "run on 2 ranks";
  const std::string tag = absl::StrCat("tp", tp, "_zero", zero);
  const std::string src_dir = run_dir("init_mpi_src_" + tag);
  if (world->rank() == 0) train_source(small_clip(), src_dir);
  world->barrier()->wait();
  auto src = checkpoint::open_checkpoint(src_dir);
  EXPECT_TRUE(src.ok()) << src.status();
  // Every rank leaves together or none does (tests/train/rank_agreement.h): the run below and
  // the barriers are collective.
  if (!all_ranks_ok(*world, src.ok())) return;

  config::Config cfg =
      small_vit({"optim.lr=0", "optim.weight_decay=0", "train.steps=1",
                 absl::StrCat("parallel.tensor_parallel=", tp),
                 absl::StrCat("parallel.zero_stage=", zero), "parallel.bucket_bytes=20000"});
  cfg.mutable_init()->set_checkpoint(src_dir);
  cfg.mutable_init()->set_rename("image.->");
  cfg.mutable_init()->set_fresh("head.*");
  const std::string dst_dir = run_dir("init_mpi_dst_" + tag);
  if (world->rank() == 0) std::filesystem::remove_all(dst_dir);
  world->barrier()->wait();
  {
    Trainer t(cfg, dst_dir, true, world.get());
    const int rc = t.run();
    EXPECT_EQ(rc, kExitOk);
    if (!all_ranks_ok(*world, rc == kExitOk)) return;
  }
  world->barrier()->wait();
  if (world->rank() != 0) return;
  auto out = checkpoint::open_checkpoint(dst_dir);
  ASSERT_TRUE(out.ok()) << out.status();
  int compared = 0;
  for (const auto& t : out->metadata.tensors()) {
    if (t.role() != "param" || t.name().rfind("head.", 0) == 0) continue;
    const std::vector<float> got = stored(*out, t.name()), want = stored(*src, "image." + t.name());
    ASSERT_EQ(got.size(), want.size()) << t.name();
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
        << t.name() << " at " << tag;
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

TEST(InitFromLayouts, TensorParallel2) {
  expect_loaded_at(2, 0);
}
TEST(InitFromLayouts, DataParallel2Zero1) {
  expect_loaded_at(1, 1);
}

}  // namespace
}  // namespace tessera::train
