// A Trainer whose run() throws on every rank of several (a rank-agreed error: here a --resume
// path that does not exist) still releases its components when its owner destroys it: run() skips
// release() while an exception unwinds on several ranks (so that a rank failing alone never waits
// on its peers, train_rank_failure_test), and ~Trainer releases them in order instead. Afterwards
// the world is usable and a second Trainer on it trains normally.

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "tests/distributed/mpi_test_env.h"
#include "train/config.h"
#include "train/trainer.h"

#include "tests/train/train_test_support.h"

namespace tessera::train {
namespace {

using testing_support::load;
using testing_support::run_dir;

TEST(RankFailure, TrainerThrowingOnEveryRankReleasesWhenDestroyed) {
  auto world = distributed::testing::test_world();
  for (const char* stage : {"0", "2", "3"}) {
    SCOPED_TRACE(std::string("parallel.zero_stage=") + stage);
    const config::Config cfg =
        load("configs/gpt_tiny.pbtxt",
             {"train.steps=2", "data.global_batch_size=8", "checkpoint.every_steps=0",
              "parallel.bucket_bytes=16384", std::string("parallel.zero_stage=") + stage});
    const std::string missing = run_dir(std::string("release_missing_") + stage) + "/no_such";
    {
      Trainer t(cfg, run_dir(std::string("release_bad_") + stage), true, world.get());
      t.set_resume(missing);
      try {
        t.run();
        ADD_FAILURE() << "no error for --resume " << missing;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
      }
    }  // ~Trainer: the GradSync, hooks, checkpointer, ... go here, on every rank
    world->barrier()->wait();
    Trainer good(cfg, run_dir(std::string("release_good_") + stage), true, world.get());
    EXPECT_EQ(good.run(), kExitOk);
    world->barrier()->wait();
  }
}

}  // namespace
}  // namespace tessera::train
