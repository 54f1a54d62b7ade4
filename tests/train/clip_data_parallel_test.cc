// Contrastive losses over a data-parallel group (models/distributed_contrastive_loss.h) equal the
// single-process loss on the concatenated batch, and CLIP / SigLIP trained data-parallel equal one
// process. Runs under mpirun -np 4: the loss tests on all 4 ranks and on two groups of 2 (the
// ring with left == right); the training tests on 2 and on 4 data-parallel ranks.
// The model- and trainer-level checks live in clip_training_checks.h (shared with
// clip_distillation_test.cc, the distillation variants of these tests).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "models/clip.h"
#include "models/contrastive_loss.h"
#include "models/distributed_contrastive_loss.h"
#include "ops/contrastive.h"
#include "tests/distributed/mpi_test_env.h"
#include "tests/support/compare.h"
#include "tests/support/inputs.h"
#include "tests/train/clip_training_checks.h"

namespace tessera::models {
namespace {

using config::ClipConfig;

constexpr int64_t kLocal = 3, kEmbed = 8;  // rows per rank, embedding width
constexpr float kScale = 4.5f, kBias = -1.25f, kDloss = 0.75f;

// (B, E) rows of unit length; the same on every rank (keyed by stream only).
Tensor unit_rows(int64_t B, uint64_t stream) {
  Tensor x = testing::normal({B, kEmbed}, stream);
  Tensor y = Tensor::empty({B, kEmbed}, DType::f32), norm = Tensor::empty({B}, DType::f32);
  ops::l2_normalize_forward(x, y, norm);
  return y;
}

Tensor rows_copy(const Tensor& all, int64_t begin, int64_t end) {
  Tensor out = Tensor::empty({end - begin, all.dim(1)}, DType::f32);
  std::memcpy(out.data<float>(), all.slice(begin, end).data<float>(), out.nbytes());
  return out;
}

// Every rank of `group` computes the distributed loss on its rows of one global batch; group rank
// 0 checks the group's averages (loss, dt, dbias) and its gradients divided by the group size
// against contrastive_loss() on the whole batch (see the header: outputs are R times the global
// loss's gradient, so that GradSync's average is exact).
void expect_equals_single(distributed::Communicator& group, ClipConfig::Loss kind, float dloss) {
  const int R = group.size(), r = group.rank();
  const int64_t B = R * kLocal;
  const Tensor img_all = unit_rows(B, 11), txt_all = unit_rows(B, 12);
  const Tensor img = rows_copy(img_all, r * kLocal, (r + 1) * kLocal);
  const Tensor txt = rows_copy(txt_all, r * kLocal, (r + 1) * kLocal);
  Tensor dimg = Tensor::empty({kLocal, kEmbed}, DType::f32);
  Tensor dtxt = Tensor::empty({kLocal, kEmbed}, DType::f32);
  ContrastiveResult mine =
      dloss == 0
          ? distributed_contrastive_loss(kind, group, img, txt, kScale, kBias, 0.0f, Tensor(),
                                         Tensor())
          : distributed_contrastive_loss(kind, group, img, txt, kScale, kBias, dloss, dimg, dtxt);

  Tensor scalars = Tensor::empty({3}, DType::f32);
  scalars.data<float>()[0] = float(mine.loss);
  scalars.data<float>()[1] = float(mine.dt);
  scalars.data<float>()[2] = float(mine.dbias);
  Tensor all_scalars = Tensor::empty({3 * R}, DType::f32);
  Tensor all_dimg = Tensor::empty({B, kEmbed}, DType::f32);
  Tensor all_dtxt = Tensor::empty({B, kEmbed}, DType::f32);
  group.all_gather(scalars, all_scalars)->wait();
  if (dloss != 0) {
    group.all_gather(dimg.view({kLocal * kEmbed}), all_dimg.view({B * kEmbed}))->wait();
    group.all_gather(dtxt.view({kLocal * kEmbed}), all_dtxt.view({B * kEmbed}))->wait();
  }
  if (r != 0) return;

  Tensor ref_dimg = Tensor::empty({B, kEmbed}, DType::f32);
  Tensor ref_dtxt = Tensor::empty({B, kEmbed}, DType::f32);
  ContrastiveResult ref =
      contrastive_loss(kind, img_all, txt_all, 0, kScale, kBias, dloss, ref_dimg, ref_dtxt);
  double loss = 0, dt = 0, dbias = 0;
  for (int q = 0; q < R; ++q) {
    loss += all_scalars.data<float>()[3 * q] / double(R);
    dt += all_scalars.data<float>()[3 * q + 1] / double(R);
    dbias += all_scalars.data<float>()[3 * q + 2] / double(R);
  }
  const std::string what = absl::StrCat(kind == ClipConfig::INFONCE ? "infonce" : "siglip", " on ",
                                        R, " ranks, dloss ", dloss);
  EXPECT_NEAR(loss, ref.loss, 2e-6 * std::fabs(ref.loss)) << what;
  if (dloss == 0) return;
  EXPECT_NEAR(dt, ref.dt, 1e-5 * std::fabs(ref.dt)) << what;
  EXPECT_NEAR(dbias, ref.dbias, 1e-5 * std::fabs(ref.dbias) + 1e-9) << what;
  if (kind == ClipConfig::SIGLIP) {
    EXPECT_GT(std::fabs(ref.dbias), 1e-3) << "bias gradient unused";
  }
  for (int64_t i = 0; i < B * kEmbed; ++i) {
    all_dimg.data<float>()[i] /= float(R);
    all_dtxt.data<float>()[i] /= float(R);
  }
  EXPECT_TRUE(testing::all_close(all_dimg, ref_dimg, 1e-5, what + " dimg"));
  EXPECT_TRUE(testing::all_close(all_dtxt, ref_dtxt, 1e-5, what + " dtxt"));
}

// The world, and the world split into halves of 2 ranks (each half checks itself).
void expect_equals_single_on_groups(ClipConfig::Loss kind, float dloss) {
  auto world = distributed::testing::test_world();
  expect_equals_single(*world, kind, dloss);
  if (world->size() % 2 == 0 && world->size() > 2) {
    auto half = world->split(world->rank() / 2, world->rank(), "half");
    expect_equals_single(*half, kind, dloss);
  }
  world->barrier()->wait();
}

TEST(DistributedContrastiveLoss, GatheredInfoNceEqualsOneProcess) {
  expect_equals_single_on_groups(ClipConfig::INFONCE, kDloss);
}

TEST(DistributedContrastiveLoss, GatheredInfoNceForwardOnly) {
  expect_equals_single_on_groups(ClipConfig::INFONCE, 0.0f);
}

TEST(DistributedContrastiveLoss, RingSigLipEqualsOneProcess) {
  expect_equals_single_on_groups(ClipConfig::SIGLIP, kDloss);
}

TEST(DistributedContrastiveLoss, RingSigLipForwardOnly) {
  expect_equals_single_on_groups(ClipConfig::SIGLIP, 0.0f);
}

}  // namespace
}  // namespace tessera::models

namespace tessera::train {
namespace {

TEST(ClipDataParallel, InfoNceGradientEqualsOneProcess) {
  expect_gradient_equals_single(tiny_clip("INFONCE", {}));
}

TEST(ClipDataParallel, SigLipGradientEqualsOneProcess) {
  expect_gradient_equals_single(tiny_clip("SIGLIP", {}));
}

// GradCache, model level (expect_grad_cache_gradient_equals_big_batch).
TEST(ClipGradCache, InfoNceGradientEqualsOneBigBatch) {
  for (int ranks : {1, 2}) {
    for (int64_t M : {2, 4}) {
      expect_grad_cache_gradient_equals_big_batch(
          tiny_clip("INFONCE", {"data.global_batch_size=16"}), ranks, M);
    }
  }
}

TEST(ClipGradCache, SigLipGradientEqualsOneBigBatch) {
  for (int ranks : {1, 2}) {
    for (int64_t M : {2, 4}) {
      expect_grad_cache_gradient_equals_big_batch(
          tiny_clip("SIGLIP", {"data.global_batch_size=16"}), ranks, M);
    }
  }
}

// GradCache, trainer level (expect_accumulated_run_equals_big_batch).
// One rank (every world rank alone), 4 micro-batches.
TEST(ClipGradCache, InfoNceTrainerOneRank) {
  expect_accumulated_run_equals_big_batch("INFONCE", 1, 4, {}, "gc_infonce_1");
}
TEST(ClipGradCache, SigLipTrainerOneRank) {
  expect_accumulated_run_equals_big_batch("SIGLIP", 1, 4, {}, "gc_siglip_1");
}
// Two data-parallel ranks, plain and ZeRO-1.
TEST(ClipGradCache, InfoNceTrainerTwoRanks) {
  expect_accumulated_run_equals_big_batch("INFONCE", 2, 2, {}, "gc_infonce_2");
}
TEST(ClipGradCache, SigLipTrainerTwoRanksZero1) {
  expect_accumulated_run_equals_big_batch("SIGLIP", 2, 2, {"parallel.zero_stage=1"},
                                          "gc_siglip_2z");
}
// With dropout and drop-path: the recomputed forward draws the embedding pass's masks (keyed by
// position), 1 rank and DP 2.
TEST(ClipGradCache, InfoNceTrainerWithDropout) {
  expect_accumulated_run_equals_big_batch(
      "INFONCE", 1, 2, {"model.dropout=0.1", "model.drop_path=0.2"}, "gc_infonce_drop_1");
  expect_accumulated_run_equals_big_batch(
      "INFONCE", 2, 2, {"model.dropout=0.1", "model.drop_path=0.2"}, "gc_infonce_drop_2");
}
// Tensor parallel 2 (one DP rank), and TP 2 x DP 2.
TEST(ClipGradCache, InfoNceTrainerTensorParallel) {
  expect_accumulated_run_equals_big_batch("INFONCE", 2, 2, {"parallel.tensor_parallel=2"},
                                          "gc_infonce_tp");
}
TEST(ClipGradCache, SigLipTrainerTensorParallelTimesDataParallel) {
  expect_accumulated_run_equals_big_batch("SIGLIP", 4, 2, {"parallel.tensor_parallel=2"},
                                          "gc_siglip_tpdp");
}

TEST(ClipDataParallel, InfoNceOnTwoRanksEqualsOneProcess) {
  expect_dp_equals_single(tiny_clip("INFONCE", {"eval.every_steps=3", "eval.batches=1"}), 2,
                          "infonce");
}

TEST(ClipDataParallel, SigLipOnTwoRanksEqualsOneProcess) {
  expect_dp_equals_single(tiny_clip("SIGLIP", {"eval.every_steps=3", "eval.batches=1"}), 2,
                          "siglip");
}

TEST(ClipDataParallel, InfoNceOnFourRanksWithAccumulationEqualsOneProcess) {
  expect_dp_equals_single(
      tiny_clip("INFONCE", {"train.micro_batches=2", "data.global_batch_size=16"}), 4,
      "infonce_acc");
}

TEST(ClipDataParallel, SigLipOnFourRanksWithAccumulationEqualsOneProcess) {
  expect_dp_equals_single(
      tiny_clip("SIGLIP", {"train.micro_batches=2", "data.global_batch_size=16"}), 4, "siglip_acc");
}

}  // namespace
}  // namespace tessera::train
