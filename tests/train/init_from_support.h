#pragma once
// Helpers of the init-from-checkpoint suites (train/init_from.h): source checkpoints of the tiny
// models and reading stored tensors back whole.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "tests/train/train_test_support.h"
#include "train/trainer.h"

namespace tessera::train::testing_support {

// CLIP with one block per tower (64x64 images, d 128) and the ViT classifier of the same
// trunk, so that either loads the other's image tower.
inline config::Config small_clip(std::vector<std::string> sets = {}) {
  sets.insert(sets.begin(),
              {"model.clip.image.transformer.n_layers=1", "model.clip.text.transformer.n_layers=1",
               "data.global_batch_size=8", "train.deterministic=true", "train.peak_flops=1e9"});
  return load("configs/clip_tiny.pbtxt", sets);
}
inline config::Config small_vit(std::vector<std::string> sets = {}) {
  sets.insert(sets.begin(),
              {"model.vit.image_size=64", "model.vit.transformer.d_model=128",
               "model.vit.transformer.n_layers=1", "model.vit.transformer.n_heads=4",
               "data.global_batch_size=8", "train.deterministic=true", "train.peak_flops=1e9"});
  return load("configs/vit_tiny.pbtxt", sets);
}

// Trains `cfg` for `steps` steps in one process into `dir`; returns the final checkpoint.
inline checkpoint::CheckpointInfo train_source(config::Config cfg, const std::string& dir,
                                               int steps = 2) {
  cfg.mutable_train()->set_steps(steps);
  std::filesystem::remove_all(dir);
  Trainer t(cfg, dir, true);
  TESSERA_CHECK(t.run() == kExitOk, "source run failed");
  auto ckpt = checkpoint::open_checkpoint(dir);
  TESSERA_CHECK(ckpt.ok(), ckpt.status().ToString());
  return *ckpt;
}

// The stored tensor `name` of `role` ("param", "ema", ...), whole (its global shape, row-major).
inline std::vector<float> stored(const checkpoint::CheckpointInfo& ckpt, const std::string& name,
                                 const std::string& role = "param") {
  for (const auto& t : ckpt.metadata.tensors()) {
    if (t.role() != role || t.name() != name) continue;
    int64_t n = 1;
    for (int64_t d : t.shape()) n *= d;
    std::vector<float> out(n);
    checkpoint::TensorReader reader(ckpt);
    absl::Status s = reader.read(t, out.data());
    TESSERA_CHECK(s.ok(), s.ToString());
    return out;
  }
  throw_error("no stored " + role + " tensor " + name);
}

}  // namespace tessera::train::testing_support
