#include "distributed/grad_sync.h"

#include <algorithm>

#include "core/timer.h"
#include "distributed/busy_time.h"
#include "ops/elementwise.h"

namespace tessera::distributed {

GradSync::GradSync(Communicator& dp, Tensor grads, int64_t bucket_bytes)
    : dp_(dp), grads_(std::move(grads)) {
  // Any device: the communicator routes by where the buffer lives (CUDA: NCCL, host: MPI).
  check_f32(grads_, "GradSync", "grads", dp_.name());
  TESSERA_CHECK(grads_.ndim() == 1, "GradSync on '", dp_.name(),
                "': grads must be the flat (N) buffer, got ", grads_.describe());
  TESSERA_CHECK(bucket_bytes >= int64_t(sizeof(float)), "GradSync on '", dp_.name(),
                "': bucket_bytes = ", bucket_bytes, " is smaller than one f32 element");
  numel_ = grads_.numel();
  bucket_elements_ = bucket_bytes / int64_t(sizeof(float));
  num_buckets_ = (numel_ + bucket_elements_ - 1) / bucket_elements_;
}

GradSync::GradSync(Communicator& dp, Tensor grads, const ZeroShards& shards, Tensor shard_grads)
    : GradSync(dp, std::move(grads), shards.bucket_elements * int64_t(sizeof(float))) {
  TESSERA_CHECK(shards.numel == numel_ && shards.dp_size == dp_.size() &&
                    shards.dp_rank == dp_.rank() && shards.bucket_elements == bucket_elements_,
                "GradSync on '", dp_.name(), "': ZeRO shards (", shards.describe(),
                ") do not match the buffer (", numel_, " elements) and group (rank ", dp_.rank(),
                " of ", dp_.size(), ")");
  TESSERA_CHECK(shard_grads.defined() && shard_grads.dtype() == DType::f32 &&
                    shard_grads.device() == grads_.device() &&
                    shard_grads.numel() == shards.shard_numel,
                "GradSync on '", dp_.name(), "': shard_grads ",
                shard_grads.defined() ? shard_grads.describe() : std::string("undefined"),
                " must be f32 with ", shards.shard_numel, " elements (the shard buffer) on ",
                grads_.device().str(), " like the gradients");
  // Without staging only the last bucket may be padded (pad_ is its staging).
  for (size_t i = 0; i + 1 < shards.buckets.size(); ++i) {
    TESSERA_CHECK(!shards.buckets[i].padded(dp_.size()), "GradSync on '", dp_.name(), "': bucket ",
                  i, " of ", shards.describe(),
                  " is padded; only gradient staging takes padded buckets inside the buffer");
  }
  shards_ = shards;
  shard_grads_ = std::move(shard_grads);
  if (!shards_->buckets.empty() && shards_->buckets.back().padded(dp_.size())) {
    pad_ = Tensor::empty({int64_t(dp_.size()) * shards_->buckets.back().shard}, DType::f32,
                         grads_.device());
  }
}

GradSync::GradSync(Communicator& dp, TakeGrads take, Device device, const ZeroShards& shards,
                   Tensor shard_grads)
    : dp_(dp), take_(std::move(take)) {
  TESSERA_CHECK(take_ != nullptr, "GradSync on '", dp_.name(), "': no gradient source");
  TESSERA_CHECK(shards.dp_size == dp_.size() && shards.dp_rank == dp_.rank(), "GradSync on '",
                dp_.name(), "': ZeRO shards (", shards.describe(), ") are not for rank ",
                dp_.rank(), " of ", dp_.size());
  TESSERA_CHECK(shard_grads.defined() && shard_grads.dtype() == DType::f32 &&
                    shard_grads.device() == device && shard_grads.numel() == shards.shard_numel,
                "GradSync on '", dp_.name(), "': shard_grads ",
                shard_grads.defined() ? shard_grads.describe() : std::string("undefined"),
                " must be f32 with ", shards.shard_numel, " elements on ", device.str());
  numel_ = shards.numel;
  bucket_elements_ = shards.bucket_elements;
  num_buckets_ = static_cast<int64_t>(shards.buckets.size());
  shards_ = shards;
  shard_grads_ = std::move(shard_grads);
  int64_t slot = 0;
  for (const auto& b : shards.buckets) slot = std::max(slot, int64_t(dp_.size()) * b.shard);
  const int slots = static_cast<int>(std::min<int64_t>(kStagingSlots, num_buckets_));
  for (int i = 0; i < slots; ++i) slots_.push_back(Tensor::empty({slot}, DType::f32, device));
  slot_work_.assign(slots_.size(), 0);
  every_micro_batch_ = true;
}

int64_t GradSync::buffer_bytes() const {
  int64_t n = pad_.defined() ? int64_t(pad_.nbytes()) : 0;
  for (const Tensor& s : slots_) n += int64_t(s.nbytes());
  return n;
}

GradSync::~GradSync() {
  for (auto& w : works_) {
    try {
      w->wait();
    } catch (...) {
      // Destructors do not throw; the failure was or will be reported by the step.
    }
  }
}

double GradSync::Stats::hidden_fraction() const {
  if (comm_seconds <= 0) return 0;
  return std::clamp(1.0 - wait_seconds / comm_seconds, 0.0, 1.0);
}

void GradSync::set_enabled(bool enabled) {
  TESSERA_CHECK(next_bucket_ == 0 && ready_ == 0, "GradSync on '", dp_.name(),
                "': set_enabled() in the middle of a backward (", next_bucket_,
                " buckets launched); call finish() first");
  enabled_ = enabled;
}

void GradSync::set_every_micro_batch() {
  TESSERA_CHECK(shards_.has_value(), "GradSync on '", dp_.name(),
                "': the ZeRO-2 schedule needs reduce-scatter mode (ZeRO shards)");
  TESSERA_CHECK(next_bucket_ == 0 && ready_ == 0, "GradSync on '", dp_.name(),
                "': set_every_micro_batch() in the middle of a backward");
  every_micro_batch_ = true;
}

void GradSync::begin_micro_batch(int64_t mb, int64_t count) {
  TESSERA_CHECK(mb >= 0 && mb < count, "GradSync on '", dp_.name(), "': micro-batch ", mb, " of ",
                count);
  if (!every_micro_batch_) {
    set_enabled(mb == count - 1);
    return;
  }
  set_enabled(true);
  accumulate_ = mb > 0;
  more_micro_batches_ = mb + 1 < count;
}

void GradSync::launch(int64_t bucket) {
  // ZeRO modes take the shards' buckets (ZeRO-3's are cut at unit boundaries, so not all E long).
  const int64_t begin = shards_ ? shards_->buckets[bucket].begin : bucket * bucket_elements_;
  const int64_t end =
      shards_ ? shards_->buckets[bucket].end : std::min(numel_, begin + bucket_elements_);
  if (!shards_) {
    works_.push_back(dp_.all_reduce(grads_.flat_view(begin, {end - begin}), ReduceOp::kAvg));
  } else if (take_) {
    // Gradient staging: the bucket's gradients are copied into a slot (whose previous
    // reduce-scatter must have completed first) and freed by their owner.
    const ZeroShards::Bucket& b = shards_->buckets[bucket];
    const size_t s = acquire_slot();
    const bool partial = !partial_work_.empty() && partial_work_[bucket] > 0;
    if (partial) {  // its partial reduce-scatter writes the shard this one adds to
      const int64_t t0 = now_ns();
      works_[partial_work_[bucket] - 1]->wait();
      stats_.wait_seconds += double(now_ns() - t0) * 1e-9;
    }
    const Tensor in = slots_[s].flat_view(0, {int64_t(dp_.size()) * b.shard});
    take_(begin, end, in.flat_view(0, {end - begin}));
    if (in.numel() > end - begin) zero_(in.flat_view(end - begin, {in.numel() - (end - begin)}));
    if ((accumulate_ || partial) && b.own() > 0) {
      // As below: this rank's segment gains dp x its shard so far.
      const Tensor acc = shard_grads_.flat_view(b.offset, {b.own()});
      ops::scale(acc, float(dp_.size()), acc);
      ops::add_inplace(in.flat_view(b.own_begin - begin, {b.own()}), acc);
    }
    works_.push_back(
        dp_.reduce_scatter(in, shard_grads_.flat_view(b.offset, {b.shard}), ReduceOp::kAvg));
    slot_work_[s] = works_.size();
  } else {
    // ZeRO-1: this rank receives the average of its 1/dp of the bucket.
    const ZeroShards::Bucket& b = shards_->buckets[bucket];
    const Tensor out = shard_grads_.flat_view(b.offset, {b.shard});
    // The input: the bucket itself, or the last bucket padded with zeros to dp equal shards (on
    // the gradients' device).
    const bool padded = b.padded(dp_.size());
    if (padded) {
      copy(grads_.flat_view(begin, {end - begin}), pad_.flat_view(0, {end - begin}));
      zero_(pad_.flat_view(end - begin, {pad_.numel() - (end - begin)}));
    }
    if (accumulate_ && b.own() > 0) {
      // ZeRO-2 after the first micro-batch, without a second shard buffer: this rank's segment
      // of the input gains dp x its shard so far, so the average the reduce-scatter writes over
      // the shard is this micro-batch's average plus the earlier ones' (x dp / dp: exact for a
      // power-of-two dp). The input is dead after this collective anyway.
      const Tensor acc = shard_grads_.flat_view(b.offset, {b.own()});
      ops::scale(acc, float(dp_.size()), acc);
      ops::add_inplace(padded ? pad_.flat_view(b.own_begin - begin, {b.own()})
                              : grads_.flat_view(b.own_begin, {b.own()}),
                       acc);
    }
    works_.push_back(dp_.reduce_scatter(padded ? pad_ : grads_.flat_view(begin, {end - begin}), out,
                                        ReduceOp::kAvg));
  }
  stats_.buckets += 1;
  stats_.bytes += (end - begin) * int64_t(sizeof(float));
}

size_t GradSync::acquire_slot() {
  const size_t s = next_slot_;
  next_slot_ = (next_slot_ + 1) % slots_.size();
  if (slot_work_[s] > 0) {
    // Backward waits here too: counted as waiting, so hidden_fraction() stays honest.
    const int64_t t0 = now_ns();
    works_[slot_work_[s] - 1]->wait();
    stats_.wait_seconds += double(now_ns() - t0) * 1e-9;
  }
  return s;
}

void GradSync::reduce_partial(int64_t begin, const Tensor& grad) {
  TESSERA_CHECK(take_ != nullptr, "GradSync on '", dp_.name(),
                "': reduce_partial needs gradient staging (ZeRO-2/3)");
  const int64_t end = begin + grad.numel();
  TESSERA_CHECK(grad.dtype() == DType::f32 && 0 <= begin && end <= numel_, "GradSync on '",
                dp_.name(), "': reduce_partial of ", grad.describe(), " at ", begin, " in ", numel_,
                " elements");
  if (!enabled_) return;
  if (partial_work_.empty()) partial_work_.assign(size_t(num_buckets_), 0);
  for (int64_t bucket = 0; bucket < num_buckets_; ++bucket) {
    const ZeroShards::Bucket& b = shards_->buckets[bucket];
    if (b.end <= begin || b.begin >= end) continue;
    TESSERA_CHECK(bucket >= next_bucket_ && partial_work_[bucket] == 0, "GradSync on '", dp_.name(),
                  "': reduce_partial of bucket ", bucket,
                  " after it was launched or partially reduced in this round");
    const size_t s = acquire_slot();
    const Tensor in = slots_[s].flat_view(0, {int64_t(dp_.size()) * b.shard});
    zero_(in);
    const int64_t lo = std::max(begin, b.begin), hi = std::min(end, b.end);
    copy(grad.flat_view(lo - begin, {hi - lo}), in.flat_view(lo - b.begin, {hi - lo}));
    if (accumulate_ && b.own() > 0) {  // as in launch(): later micro-batches add to the shard
      const Tensor acc = shard_grads_.flat_view(b.offset, {b.own()});
      ops::scale(acc, float(dp_.size()), acc);
      ops::add_inplace(in.flat_view(b.own_begin - b.begin, {b.own()}), acc);
    }
    works_.push_back(
        dp_.reduce_scatter(in, shard_grads_.flat_view(b.offset, {b.shard}), ReduceOp::kAvg));
    slot_work_[s] = works_.size();
    partial_work_[bucket] = works_.size();
    stats_.partial_bytes += (b.end - b.begin) * int64_t(sizeof(float));
  }
}

void GradSync::on_ready(int64_t ready_elements) {
  if (!enabled_ || (dp_.size() == 1 && !shards_)) return;
  TESSERA_CHECK(ready_elements >= ready_ && ready_elements <= numel_, "GradSync on '", dp_.name(),
                "': on_ready(", ready_elements, ") after on_ready(", ready_, ") with ", numel_,
                " elements; prefixes must grow within one backward (call finish() between "
                "backwards)");
  ready_ = ready_elements;
  if (shards_) {  // the shards' buckets entirely inside the prefix
    while (next_bucket_ < num_buckets_ && shards_->buckets[next_bucket_].end <= ready_) {
      launch(next_bucket_++);
    }
    return;
  }
  // Buckets entirely inside the prefix; the last bucket when the whole buffer is ready.
  const int64_t full = ready_ == numel_ ? num_buckets_ : ready_ / bucket_elements_;
  while (next_bucket_ < full) launch(next_bucket_++);
}

void GradSync::finish() {
  if (!enabled_ || (dp_.size() == 1 && !shards_)) {
    ready_ = 0;
    next_bucket_ = 0;
    return;
  }
  const int64_t t0 = now_ns();
  while (next_bucket_ < num_buckets_) launch(next_bucket_++);
  // Wait for all before throwing, so no all-reduce still writes into the buffer afterwards.
  std::string error;
  for (auto& w : works_) {
    try {
      w->wait();
    } catch (const std::exception& e) {
      if (error.empty()) error = e.what();
    }
  }
  const int64_t t1 = now_ns();
  // Communication time: the union of the buckets' [started, completed] intervals.
  BusyTime busy;
  for (auto& w : works_) busy.add(*w);
  stats_.comm_seconds += double(busy.take_ns()) * 1e-9;
  stats_.wait_seconds += double(t1 - t0) * 1e-9;
  stats_.syncs += 1;
  works_.clear();
  slot_work_.assign(slots_.size(), 0);
  next_slot_ = 0;
  partial_work_.clear();
  ready_ = 0;
  next_bucket_ = 0;
  TESSERA_CHECK(error.empty(), "GradSync on '", dp_.name(), "': ", error);
  if (every_micro_batch_ && more_micro_batches_ && grads_.defined()) {
    // Every bucket has been reduced: the full-size gradients are dead on this rank. Zeroed, so
    // the next micro-batch's accumulation (+=) starts from nothing. (After the last micro-batch
    // the trainer's zero_grads() at the next step does it.)
    zero_(grads_);
  }
}

}  // namespace tessera::distributed
