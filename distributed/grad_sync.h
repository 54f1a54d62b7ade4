#pragma once
// GradSync: data-parallel gradient averaging over the flat f32 gradient buffer, bucket by
// bucket, overlapped with backward (docs/DESIGN.md decision 3 and the step diagram).
//
// The buffer (N elements, models::ParamStore::grads()) is cut into consecutive buckets of
// bucket_bytes / 4 elements (the last may be smaller). ParamStore lays gradients out in reverse
// execution order, so backward finalises a growing prefix of the buffer; the owner forwards that
// prefix:
//
//   distributed::GradSync sync(layout.dp(), store.grads());
//   store.set_grad_ready_hook([&](int64_t n) { sync.on_ready(n); });
//   for each micro-batch m of M:
//     sync.set_enabled(m == M - 1);      // accumulate locally, sync on the last micro-batch
//     model.forward(...); model.backward(...);   // hooks call on_ready() as grads finalise
//     sync.finish();                      // launches what is left, waits; grads = DP average
//
// Every bucket lying fully inside the ready prefix is launched at once (all_reduce kAvg on the DP
// communicator), so its communication runs on the communicator's thread (MPI) or stream (NCCL)
// while backward computes the rest. Buckets launch in index order on every rank, so the collective
// order matches across ranks whatever prefixes each rank reports.
//
// Contract: between a bucket's launch and finish() nobody writes into it (the next micro-batch's
// backward starts after finish(); the optimizer reads after finish()). Calls come from one thread.
//
// ZeRO-1 (reduce-scatter mode, the second constructor): the buckets are those of a ZeroShards
// (distributed/zero_shards.h: bucket length a multiple of dp_size, this rank owning 1/dp of each
// bucket). launch() reduce-scatters (kAvg) each bucket into this rank's shard of it, a slice of
// `shard_grads` (the shard buffer layout, the optimizer's); the last bucket, when its length does
// not divide by dp_size, goes through a zero-padded staging copy. After finish() shard_grads holds
// the DP average of this rank's shards, and `grads` still holds this rank's LOCAL gradients
// (nothing writes them). on_ready()/finish()/set_enabled() and the statistics are the same in both
// modes; Stats::bytes counts the buckets' input bytes in both.
//
// ZeRO-2 (set_every_micro_batch(), reduce-scatter mode only): the gradients are reduce-scattered
// on EVERY micro-batch, not only the last, and the full buffer never accumulates more than one
// micro-batch. The owner calls begin_micro_batch(mb, M) before each backward instead of
// set_enabled(): micro-batch 0 reduce-scatters into shard_grads as above; on later ones each
// bucket's input first gains dp x this rank's shard so far on this rank's segment, so the
// averaged result written over the shard is the sum of the micro-batches' averages (no second
// shard buffer). After the reduce-scatters, finish() zeroes `grads` when another micro-batch
// follows: it is dead (this rank keeps only its shard), and the next backward, which accumulates
// (+=) into grads, starts from zeros (after the last one the owner's zero_grads() does it). In
// this mode the full buffer stays allocated; the trainer's ZeRO-2 (train::ZeroAdamW) uses the
// staging mode below instead, which has no full buffer (docs/DISTRIBUTED.md, "ZeRO stages").
//
// ZeRO-2 with gradient staging (the third constructor): there is no flat gradient buffer at all
// (models::ParamStore::stage_grads()). launch() asks `take` to copy the bucket's gradients into one
// of kStagingSlots bucket-sized staging buffers (zero-padded to dp shards) and reduce-scatters from
// there; the owner frees the gradients it handed over. A slot is reused only after its previous
// reduce-scatter completed (waited for, which also orders a CUDA stream), so at most
// kStagingSlots buckets are in flight and resident gradient memory stays about a bucket or two,
// not 4N bytes. Always the ZeRO-2 schedule.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/zero_shards.h"

namespace tessera::distributed {

class GradSync {
 public:
  static constexpr int64_t kDefaultBucketBytes = int64_t(25) << 20;  // 25 MiB, as PyTorch DDP

  // grads: (N) f32 on any device dp carries (CPU for MPI, CUDA for NCCL or a routed world),
  // borrowed (must outlive this object); dp: borrowed likewise.
  GradSync(Communicator& dp, Tensor grads, int64_t bucket_bytes = kDefaultBucketBytes);
  // ZeRO-1 reduce-scatter mode. shards: geometry for grads.numel() and dp.size()/dp.rank(), copied;
  // shard_grads: (shards.shard_numel) f32 on the device of grads, borrowed, receives the averaged
  // shards.
  GradSync(Communicator& dp, Tensor grads, const ZeroShards& shards, Tensor shard_grads);
  // ZeRO-2 with gradient staging. take(begin, end, dst) copies the gradients of flat elements
  // [begin, end) into dst ((end - begin) f32 on `device`) and may free them
  // (models::ParamStore::take_grads); it is called once per bucket per round, in bucket order.
  // shards and shard_grads as above; the ZeRO-2 schedule is set.
  using TakeGrads = std::function<void(int64_t begin, int64_t end, const Tensor& dst)>;
  static constexpr int kStagingSlots = 2;
  GradSync(Communicator& dp, TakeGrads take, Device device, const ZeroShards& shards,
           Tensor shard_grads);
  // Waits for the launched buckets, so the communicator never writes into freed memory.
  ~GradSync();

  // The leading ready_elements of the buffer are final for this backward. Non-decreasing between
  // finish() calls; launches every bucket now entirely inside the prefix. No-op when disabled.
  void on_ready(int64_t ready_elements);
  // Launches the remaining buckets and waits for all; afterwards the buffer holds the average
  // over the DP group. Starts the next round (the ready prefix restarts at 0). When disabled it
  // only restarts the round.
  void finish();

  // Off: on_ready()/finish() communicate nothing (gradient accumulation's early micro-batches).
  // Change it only between finish() and the next backward.
  void set_enabled(bool enabled);
  bool enabled() const { return enabled_; }

  // ZeRO-2 schedule (see the header comment); reduce-scatter mode only, before the first round.
  void set_every_micro_batch();
  bool every_micro_batch() const { return every_micro_batch_; }
  // Before micro-batch mb of `count` (the trainer's gradient accumulation): ZeRO-2 communicates on
  // every micro-batch and accumulates from mb 1 on; otherwise only the last one communicates.
  void begin_micro_batch(int64_t mb, int64_t count);

  // Gradient staging only: `grad` ((n) f32 on the slots' device) is a PART of the gradient of flat
  // elements [begin, begin + n) for this round, whose rest arrives later through `take` as usual
  // (GPT's tied embedding: the head's part, reduced as soon as the head's backward is done, so it
  // does not stay resident through the whole backward; parallel.reduce_tied_grad_early). Each
  // bucket overlapping the range is reduce-scattered now with zeros elsewhere and added into the
  // shard, and its regular reduce-scatter later adds into the shard too (as micro-batches after
  // the first do). Collective: every rank calls it at the same point. `grad` may be dropped on
  // return (the slots hold the copies in flight).
  void reduce_partial(int64_t begin, const Tensor& grad);

  int64_t numel() const { return numel_; }
  int64_t bucket_elements() const { return bucket_elements_; }
  int64_t num_buckets() const { return num_buckets_; }
  int64_t launched_buckets() const { return next_bucket_; }    // in the current round
  bool reduce_scatter() const { return shards_.has_value(); }  // ZeRO-1 mode
  bool staged() const { return static_cast<bool>(take_); }     // gradient staging
  // Bytes of this object's own buffers (padding staging, gradient staging slots).
  int64_t buffer_bytes() const;

  // Accumulated over finish() calls that communicated.
  struct Stats {
    int64_t syncs = 0;          // finish() calls that averaged
    int64_t buckets = 0;        // collectives launched (all-reduces, or ZeRO-1 reduce-scatters)
    int64_t bytes = 0;          // the buckets' input bytes (algorithm bytes)
    int64_t partial_bytes = 0;  // reduce_partial()'s buckets' input bytes (beyond `bytes`)
    double comm_seconds = 0;    // time some bucket was in flight (union of bucket intervals)
    double wait_seconds = 0;    // time finish() blocked the caller
    // Share of communication hidden behind backward: 1 - wait / comm (0 when nothing ran).
    double hidden_fraction() const;
  };
  const Stats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 private:
  void launch(int64_t bucket);
  size_t acquire_slot();  // gradient staging: the next slot, once its last collective completed

  Communicator& dp_;
  Tensor grads_;
  std::optional<ZeroShards> shards_;  // ZeRO-1 mode only
  Tensor shard_grads_;                // ZeRO-1: (shard_numel) output of the reduce-scatters
  Tensor pad_;                        // ZeRO-1: (dp * last shard) staging for a padded last bucket
  TakeGrads take_;                    // gradient staging: where a bucket's gradients come from
  std::vector<Tensor> slots_;         // gradient staging: kStagingSlots x (dp * largest shard)
  std::vector<size_t> slot_work_;     // per slot: 1 + index into works_ of its last use; 0: none
  size_t next_slot_ = 0;              // gradient staging: the slot of the next collective
  // reduce_partial(): per bucket, 1 + index into works_ of its partial reduce-scatter this round
  // (its regular one must then add into the shard, after that one completed); 0: none.
  std::vector<size_t> partial_work_;
  bool every_micro_batch_ = false;   // ZeRO-2 schedule
  bool accumulate_ = false;          // ZeRO-2: this round adds into shard_grads
  bool more_micro_batches_ = false;  // ZeRO-2: zero grads after this round for the next one
  int64_t numel_, bucket_elements_, num_buckets_;
  bool enabled_ = true;
  int64_t ready_ = 0;        // largest prefix reported this round
  int64_t next_bucket_ = 0;  // buckets [0, next_bucket_) launched this round
  std::vector<WorkHandle> works_;
  Stats stats_;
};

}  // namespace tessera::distributed
