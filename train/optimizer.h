#pragma once
// The optimizers on the flat parameter buffer (docs/DESIGN.md decision 3), behind one interface so
// the trainer holds one of them and never asks which: AdamW here, ZeroAdamW (AdamW with its state
// sharded over the data-parallel group) in train/zero_optimizer.h.
//
// AdamW: the moments are two more flat buffers of the same layout, the weight-decay rule a u8
// mask built once from the parameter groups. A step clips by the global gradient norm (fused into
// the update as a gradient scale) and refuses non-finite gradients.

#include <cstdint>
#include <memory>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "distributed/layout.h"
#include "distributed/zero_shards.h"
#include "models/param_store.h"
#include "ops/adamw.h"
#include "proto/config.pb.h"
#include "train/freeze.h"

namespace tessera::train {

struct StepStats {
  double grad_norm = 0;  // global L2 norm before clipping
  bool applied = false;  // false when the gradients were not finite (nothing changed)
};

// The fused kernel's settings for one step at `lr`, with global-norm clipping folded in as a
// gradient scale (grad_clip / norm when the norm exceeds optim.grad_clip). Shared by AdamW and
// ZeroAdamW so both clip and update identically.
ops::AdamWConfig adamw_step_config(const config::OptimConfig& optim, double lr, double grad_norm);

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // The data-parallel gradient averaging that feeds step() (dp: the DP group, borrowed; bucket
  // bytes: parallel.bucket_bytes). The optimizer decides where the averages land: the whole
  // gradient buffer, or only the shards this rank updates. ZeroAdamW takes the group it was built
  // with.
  virtual std::unique_ptr<distributed::GradSync> make_grad_sync(distributed::Communicator& dp,
                                                                int64_t bucket_bytes) = 0;

  // One update with learning rate `lr`, after the gradients are final (GradSync::finish());
  // increments steps_taken() only when applied. Collective over the DP group for ZeroAdamW.
  virtual StepStats step(double lr) = 0;
  // Applied updates so far: Adam's bias correction counts them, so a checkpoint restores them.
  int64_t steps_taken() const { return steps_taken_; }
  void set_steps_taken(int64_t n) { steps_taken_ = n; }

  // The Adam moments, for checkpoints, in the optimizer's own layout: (N) like the parameter
  // buffer, or (zero_shards()->shard_numel) for this rank's shards.
  virtual const Tensor& m() const = 0;
  virtual const Tensor& v() const = 0;
  // The layout of the sharded moments; nullptr when they cover the whole buffer.
  virtual const distributed::ZeroShards* zero_shards() const { return nullptr; }

  // Bytes of optimizer state on this rank (m, v, decay mask, or this rank's shards of them).
  virtual int64_t state_bytes() const = 0;
  // Bytes of the communication buffers the optimizer adds beyond its state.
  virtual int64_t buffer_bytes() const { return 0; }
  // The ZeRO stage it implements (0: plain AdamW) and the output bytes of its own collectives
  // (ZeRO's parameter all-gather) since the last call; the trainer reports dp_comm_bytes.
  virtual int zero_stage() const { return 0; }
  virtual int64_t take_comm_bytes() { return 0; }

 protected:
  // Counts an applied update; returns its number, the step of Adam's bias correction.
  int64_t count_step() { return ++steps_taken_; }

 private:
  int64_t steps_taken_ = 0;
};

// ZeroAdamW when parallel.zero_stage is 1 or 2 and there are several data-parallel ranks to shard
// over; AdamW otherwise. store: finalized, borrowed; layout: borrowed.
std::unique_ptr<Optimizer> make_optimizer(models::ParamStore& store, const config::Config& config,
                                          const distributed::ParallelLayout& layout);

class AdamW : public Optimizer {
 public:
  AdamW(models::ParamStore& store, const config::OptimConfig& config);

  std::unique_ptr<distributed::GradSync> make_grad_sync(distributed::Communicator& dp,
                                                        int64_t bucket_bytes) override;
  StepStats step(double lr) override;
  const Tensor& m() const override { return m_; }  // (N) first moments
  const Tensor& v() const override { return v_; }  // (N) second moments
  int64_t state_bytes() const override;            // m, v, mask

 private:
  models::ParamStore& store_;
  config::OptimConfig config_;
  Tensor m_, v_, decay_mask_;
  std::vector<LrRange> lr_ranges_;  // optim.layer_decay's runs of the flat buffer
};

}  // namespace tessera::train
