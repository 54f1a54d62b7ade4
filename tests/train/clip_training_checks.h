#pragma once
// What the multi-rank CLIP training tests share (clip_data_parallel_test.cc,
// clip_distillation_test.cc): a tiny CLIP config, fresh run directories, and the equivalence
// checks of data-parallel and GradCache training against one process / one big batch, at the
// model level and through the Trainer. Every check runs on distributed::testing::test_world()
// (the ranks of mpirun) and reports through gtest's EXPECT/ASSERT.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/clip.h"
#include "proto/config.pb.h"

namespace tessera::train {

// A CLIP small enough for a few steps per second on one thread per rank: configs/clip_tiny.pbtxt
// with `loss` (INFONCE or SIGLIP), smaller towers, 3 steps of batch 8, and `more` --set values.
config::Config tiny_clip(const std::string& loss, const std::vector<std::string>& more);

// A fresh run directory under gtest's TempDir (metrics.jsonl appends: a previous run's records
// must not count).
std::string run_dir(const std::string& name);

// One step's gradient, model level: each rank of the world runs Clip::forward_backward on its
// slice of a global batch with the loss over the world, then the flat gradients are AVERAGED
// (what GradSync does); this must equal one process's gradient on the whole batch. Adam hides a
// wrong overall gradient scale (it is scale invariant), so this is the check of the scaling.
// `setup` (optional) runs on every model made here (a distillation teacher).
using ModelSetup = std::function<void(models::Clip&)>;
void expect_gradient_equals_single(const config::Config& cfg, const ModelSetup& setup = {});

// Trains `cfg` data-parallel over groups of `dp` ranks (the world split into world/dp groups,
// each training the same run on its own) and alone on world rank 0; checks that the ranks of a
// group agree bitwise and that group 0 equals the single process: every logged loss, eval loss
// and gradient norm to 1e-5 relative at step 1 (1e-4 later; the norm is of the AVERAGED gradient,
// so a wrong scale shows there even though Adam's update would hide it), the parameters after the
// run to 1e-5.
void expect_dp_equals_single(const config::Config& cfg, int dp, const std::string& name);

// GradCache (models/clip.h, train/grad_cache.h): accumulation over micro-batches keeps the whole
// batch's negatives. Model level: on a data-parallel group of R ranks, each rank embeds its
// slices of M micro-batches (the trainer's order: micro-batch mb, rank r holds global rows
// [mb*G/M + r*G/(M R), ...)), scores all of them together and backpropagates each micro-batch;
// the gradients averaged over the group equal one process's forward_backward on the whole batch.
void expect_grad_cache_gradient_equals_big_batch(const config::Config& cfg, int group_size,
                                                 int64_t M, const ModelSetup& setup = {});

// Trainer level, per layout: the same run with train.micro_batches = M and with 1 reaches the
// same parameters (each rank's own shards, to 1e-5 of their scale) through the same losses and
// gradient norms (1e-5 at step 1, 1e-4 later). The world is split into groups of `group_size`
// ranks, each group training both runs on its own layout (`sets`: TP, ZeRO-1).
void expect_accumulated_run_equals_big_batch(const std::string& loss, int group_size, int64_t M,
                                             const std::vector<std::string>& sets,
                                             const std::string& name);

}  // namespace tessera::train
