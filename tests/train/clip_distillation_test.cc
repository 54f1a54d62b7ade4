// CLIP / SigLIP knowledge distillation (models/clip_distillation.h, distill.*) under data
// parallelism and GradCache, at the model level and through the Trainer: equal to one process /
// one big batch. Runs under mpirun -np 4 (the checks split the world into the groups they need).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/clip.h"
#include "tests/distributed/mpi_test_env.h"
#include "tests/train/clip_training_checks.h"
#include "train/synthetic_data.h"
#include "train/trainer.h"

namespace tessera::train {
namespace {

// Knowledge distillation (models/clip_distillation.h). Model level: a wider teacher of another
// embed_dim and logit scale (and bias) on every model: the distilled loss over DP 4 and 2 ranks
// equals one process (gradients averaged, 1e-5; the scalars' too), and GradCache with 2 and 4
// micro-batches on 1 and 2 ranks equals one big batch (the teacher's embeddings cached per
// micro-batch; plain accumulation differs).
ModelSetup with_teacher(const config::Config& student, float alpha) {
  return [student, alpha](models::Clip& clip) {
    config::ClipConfig t = student.model().clip();
    t.mutable_image()->mutable_transformer()->set_d_model(48);
    t.mutable_text()->mutable_transformer()->set_d_model(40);
    t.set_embed_dim(24);
    t.set_init_logit_scale(std::log(30.0f));
    t.set_init_logit_bias(-3.0f);
    auto teacher = std::make_unique<models::Clip>(t, false);
    teacher->params().init(77);
    clip.set_teacher(std::move(teacher), alpha, 2.0f);
  };
}

TEST(ClipDistillation, InfoNceGradientEqualsOneProcess) {
  const config::Config cfg = tiny_clip("INFONCE", {});
  expect_gradient_equals_single(cfg, with_teacher(cfg, 0.3f));
}

TEST(ClipDistillation, SigLipGradientEqualsOneProcess) {
  const config::Config cfg = tiny_clip("SIGLIP", {});
  expect_gradient_equals_single(cfg, with_teacher(cfg, 0.3f));
}

TEST(ClipDistillation, GradCacheEqualsOneBigBatch) {
  for (const char* loss : {"INFONCE", "SIGLIP"}) {
    const config::Config cfg = tiny_clip(loss, {"data.global_batch_size=16"});
    for (int ranks : {1, 2}) {
      for (int64_t M : {2, 4}) {
        expect_grad_cache_gradient_equals_big_batch(cfg, ranks, M, with_teacher(cfg, 0.3f));
      }
    }
    // alpha = 0: the soft term alone.
    expect_grad_cache_gradient_equals_big_batch(cfg, 2, 2, with_teacher(cfg, 0.0f));
  }
}

// Trainer level: a teacher checkpoint (a wider CLIP or SigLIP, trained here first) loaded by
// distill.teacher; DP 2 and DP 4 equal one process, GradCache M = 2 equals M = 1 under DP 2 and
// TP 2, and the teacher changes the loss.
std::string train_teacher(const std::string& loss) {
  auto world = distributed::testing::test_world();
  // Only rank 0 clears and writes the directory; the others read it after the barrier.
  const std::string name = "clip_teacher_" + loss;
  const std::string dir = world->rank() == 0
                              ? run_dir(name)
                              : (std::filesystem::path(::testing::TempDir()) / name).string();
  if (world->rank() == 0) {
    Trainer t(
        tiny_clip(loss, {"train.steps=2", "model.clip.image.transformer.d_model=48",
                         "model.clip.text.transformer.d_model=40", "model.clip.embed_dim=24"}),
        dir, true);
    EXPECT_EQ(t.run(), kExitOk);
  }
  world->barrier()->wait();
  return dir;
}

std::vector<std::string> distill_sets(const std::string& teacher) {
  return {"distill.teacher=" + teacher, "distill.alpha=0.3", "distill.temperature=2"};
}

TEST(ClipDistillation, TrainerDataParallelEqualsOneProcess) {
  for (const std::string loss : {"INFONCE", "SIGLIP"}) {
    const std::string teacher = train_teacher(loss);
    const config::Config cfg = tiny_clip(loss, distill_sets(teacher));
    expect_dp_equals_single(cfg, 2, "distill_" + loss);
    expect_dp_equals_single(cfg, 4, "distill_" + loss);
    auto world = distributed::testing::test_world();
    if (world->rank() == 0) {
      Trainer with(cfg, run_dir("distill_with_" + loss), true);
      Trainer without(tiny_clip(loss, {}), run_dir("distill_without_" + loss), true);
      SyntheticData data(cfg);
      const models::Batch batch = data.batch(0, 8);
      EXPECT_GT(std::fabs(with.model().forward_backward(batch, 1.0f).loss -
                          without.model().forward_backward(batch, 1.0f).loss),
                1e-4)
          << loss << ": the teacher does not change the loss";
      // A teacher the student cannot use is refused, naming its checkpoint.
      std::vector<std::string> bad = distill_sets(teacher);
      bad.push_back("model.clip.text.vocab_size=100");
      try {
        Trainer t(tiny_clip(loss, bad), run_dir("distill_bad_" + loss), true);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("distill.teacher " + teacher +
                                             ": Clip: a distillation teacher must read the "
                                             "student's text (vocab_size 100"),
                  std::string::npos)
            << e.what();
      }
    }
    world->barrier()->wait();
  }
}

TEST(ClipDistillation, TrainerGradCacheEqualsBigBatch) {
  const std::string infonce = train_teacher("INFONCE");
  expect_accumulated_run_equals_big_batch("INFONCE", 2, 2, distill_sets(infonce),
                                          "gc_distill_infonce_2");
  std::vector<std::string> tp = distill_sets(infonce);
  tp.push_back("parallel.tensor_parallel=2");
  expect_accumulated_run_equals_big_batch("INFONCE", 2, 2, tp, "gc_distill_infonce_tp");
  const std::string siglip = train_teacher("SIGLIP");
  std::vector<std::string> tpdp = distill_sets(siglip);
  tpdp.push_back("parallel.tensor_parallel=2");
  expect_accumulated_run_equals_big_batch("SIGLIP", 4, 2, tpdp, "gc_distill_siglip_tpdp");
}

}  // namespace
}  // namespace tessera::train
