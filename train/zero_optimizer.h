#pragma once
// ZeroAdamW: AdamW with ZeRO stage 1 (parallel.zero_stage = 1) over the data-parallel group.
//
// What is sharded, precisely. Every rank still holds the full f32 parameter buffer (the model
// computes in it, or in its bf16 shadow) and the full f32 gradient buffer (backward writes every
// parameter's gradient). Sharded 1/dp per rank, in the layout of distributed::ZeroShards (1/dp of
// every gradient bucket):
//   - the Adam moments m and v (f32) and the u8 weight-decay mask: the optimizer state;
//   - the averaged gradients: GradSync reduce-scatters each bucket into this rank's shard_grads()
//     instead of all-reducing the whole buffer (the full gradient buffer keeps the LOCAL grads);
//   - the update: this rank applies AdamW only to the parameters of its shards.
// Not sharded: the f32 parameters. They are both the master copy and (in f32 training) what the
// model computes with, so every rank needs all of them after the step: they are all-gathered.
// (In bf16 training the f32 buffer is only the master copy and could be sharded too, with the bf16
// shadow all-gathered; that needs bf16 collectives and a sharded ParamStore, neither of which
// exists. Not done.)
//
// One step:
//   1. global gradient norm: each rank's sums of squares of its shard (ops::sum_squares, double;
//      TP-split and replicated parameters apart), all-gathered as hi + lo floats (~48 bits) and
//      added in rank order, so every rank gets the same norm bit for bit and takes the same
//      decisions (clip scale, non-finite skip); under TP the split part is then summed over the
//      TP group, the norm one unsplit process would compute (models::tp_grad_l2_norm's rule);
//   2. clip as AdamW does (the scale fused into the update); refuse non-finite gradients;
//   3. AdamW (ops::adamw_step) on each bucket's shard: params[own range], shard grads, m, v, mask;
//   4. the updated shard is copied into shard_grads() (no longer needed: it becomes the
//      all-gather's send buffer) and the bucket's parameters are all-gathered, bucket by bucket,
//      so the gathers run while the next buckets update; then sync_compute_params() (bf16 shadow).
// Results equal plain data-parallel AdamW up to the order of the gradient sums (see the tests).
//
// ZeRO-2 (stage 2) is the same optimizer, the same shards and the same checkpoint layout; only the
// gradient schedule differs: make_grad_sync() returns a GradSync that reduce-scatters on every
// micro-batch and accumulates into shard_grads() (distributed/grad_sync.h). make_grad_sync() also
// switches the store to gradient staging (models::ParamStore::stage_grads()): there is no full
// gradient buffer any more, each parameter's gradient lives from its first write in backward
// until GradSync has copied its bucket into a staging slot for the reduce-scatter.

#include <cstdint>
#include <memory>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "distributed/zero_shards.h"
#include "models/param_store.h"
#include "ops/adamw.h"
#include "proto/config.pb.h"
#include "train/optimizer.h"

namespace tessera::train {

class ZeroAdamW : public Optimizer {
 public:
  // store: finalized, borrowed; dp: the data-parallel group, borrowed; bucket_bytes: the GradSync
  // bucket size (parallel.bucket_bytes), which fixes the shard layout. The optimizer's buffers
  // live on the parameters' device; the gradient norm's partial sums are exchanged as host
  // tensors. So for CUDA parameters dp must take both host and device tensors
  // (distributed::RoutedCommunicator, which make_world_communicator builds for CUDA).
  // stage: 1 or 2 (parallel.zero_stage), which only changes make_grad_sync()'s schedule; 3: the
  // buckets are cut at the store's gather units (ParamStore::unit_bounds()) and the caller shards
  // the parameters in this layout (store.shard_params(&dp, shards())) before the first step,
  // which then updates param_shards() in place and gathers nothing (docs/DISTRIBUTED.md).
  ZeroAdamW(models::ParamStore& store, const config::OptimConfig& config,
            distributed::Communicator& dp, int64_t bucket_bytes, int stage = 1);

  // Reduce-scatter mode (distributed/grad_sync.h) into shard_grads(), in this optimizer's shard
  // layout; at stage 2 with gradient staging (the store's flat gradient buffer is dropped). dp must
  // be the group given to the constructor; bucket_bytes is fixed by the shards.
  std::unique_ptr<distributed::GradSync> make_grad_sync(distributed::Communicator& dp,
                                                        int64_t bucket_bytes) override;
  // Call after GradSync::finish() filled shard_grads() on every rank. Collective over dp.
  StepStats step(double lr) override;

  const distributed::ZeroShards& shards() const { return shards_; }
  const distributed::ZeroShards* zero_shards() const override { return &shards_; }
  // (shard_numel) f32: GradSync's reduce-scatter output; the all-gather's send buffer in step().
  const Tensor& shard_grads() const { return shard_grads_; }
  // (shard_numel) first and second moments of this rank's shards.
  const Tensor& m() const override { return m_; }
  const Tensor& v() const override { return v_; }

  // Bytes of optimizer state on this rank (m, v, mask shards): about 1/dp of AdamW::state_bytes().
  int64_t state_bytes() const override;
  // Bytes of the communication buffers ZeRO adds (shard_grads, staging for a padded last bucket).
  int64_t buffer_bytes() const override;
  int zero_stage() const override { return stage_; }
  // Output bytes of the parameter all-gathers since the last call.
  int64_t take_comm_bytes() override;

 private:
  struct ShardSquares {
    double split = 0, replicated = 0;  // over TP-split and replicated parameters
  };
  ShardSquares shard_sum_squares() const;
  // ZeRO-3: AdamW on the parameters' shard buffer (models::ParamStore::param_shards()).
  void step_shards(double lr, const ops::AdamWConfig& c, int64_t t);
  double global_grad_norm();

  models::ParamStore& store_;
  config::OptimConfig config_;
  distributed::Communicator& dp_;
  distributed::ZeroShards shards_;
  Tensor shard_grads_, m_, v_, decay_mask_;
  Tensor gather_pad_;               // (dp * last shard): all-gather output of a padded last bucket
  std::vector<LrRange> lr_ranges_;  // optim.layer_decay's runs of the flat buffer
  int stage_ = 1;
  int64_t gathered_bytes_ = 0;
};

}  // namespace tessera::train
