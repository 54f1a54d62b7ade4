#include "train/zero_optimizer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "models/layers/tensor_parallel.h"
#include "ops/adamw.h"
#include "ops/reduce.h"

namespace tessera::train {

ZeroAdamW::ZeroAdamW(models::ParamStore& store, const config::OptimConfig& config,
                     distributed::Communicator& dp, int64_t bucket_bytes, int stage)
    : store_(store),
      config_(config),
      dp_(dp),
      // Only the trainable prefix of the flat buffers (frozen parameters: train/freeze.h).
      // ZeRO-3: buckets cut at the gather units, so the parameters' shard layout (ParamStore::
      // shard_params) is this one too.
      shards_(stage == 3 ? distributed::ZeroShards(store.trainable_numel(), bucket_bytes, dp.size(),
                                                   dp.rank(), store.unit_bounds())
                         : distributed::ZeroShards(store.trainable_numel(), bucket_bytes, dp.size(),
                                                   dp.rank())),
      stage_(stage) {
  TESSERA_CHECK(store.finalized(), "ZeroAdamW: the parameter store is not finalized");
  TESSERA_CHECK(stage >= 1 && stage <= 3, "ZeroAdamW: ZeRO stage ", stage, " (1, 2 or 3)");
  // Every buffer lives with the parameters: on a CUDA device the reduce-scatter and all-gather
  // take device tensors (NCCL), and the update runs there.
  const Device device = store.device();
  const int64_t n = shards_.shard_numel;
  shard_grads_ = Tensor::zeros({n}, DType::f32, device);
  m_ = Tensor::zeros({n}, DType::f32, device);
  v_ = Tensor::zeros({n}, DType::f32, device);
  // The mask of this rank's shards only; padding gets 0 (it is never updated anyway). Filled
  // range by range (the full (T) u8 mask would be a start-up transient of T bytes).
  {
    Tensor mask = Tensor::zeros({n}, DType::u8);
    uint8_t* out = mask.data<uint8_t>();
    for (const distributed::ShardPiece& p : store.shard_pieces(shards_.buckets)) {
      if (store.frozen(p.segment) ||
          !models::ParamStore::decays(store.info(p.segment).spec, config.decay_norms_and_biases(),
                                      config.decay_embeddings())) {
        continue;
      }
      std::fill(out + p.in_shard, out + p.in_shard + p.length, uint8_t{1});
    }
    decay_mask_ = device.is_cpu() ? mask : to_device(mask, device);
  }
  lr_ranges_ = lr_ranges(layer_lr_scales(config, store), store);
  if (stage == 3) return;  // no parameter all-gather
  if (!shards_.buckets.empty() && shards_.buckets.back().padded(dp.size())) {
    gather_pad_ =
        Tensor::zeros({int64_t(dp.size()) * shards_.buckets.back().shard}, DType::f32, device);
  }
}

// Sums of squares of this rank's shard, split by whether the parameter a piece belongs to is
// split by tensor parallelism: under TP each TP rank's shard buffer holds a different slice of a
// split parameter's gradient (to be summed over the TP group) but the same replicated ones (to be
// counted once), the rule of models::tp_grad_l2_norm.
ZeroAdamW::ShardSquares ZeroAdamW::shard_sum_squares() const {
  ShardSquares s;
  if (store_.tp_comm() == nullptr) {
    // Padding elements of shard_grads_ are the average of zeros, so summing the whole shard
    // buffer is the sum over this rank's real elements.
    s.replicated = ops::sum_squares(shard_grads_);
    return s;
  }
  // Bucket by bucket, each bucket's parameters in registration order (shard_pieces()'s order):
  // the summation order, so the norm's bits, are fixed.
  for (const distributed::ShardPiece& p : store_.shard_pieces(shards_.buckets)) {
    const double ss = ops::sum_squares(shard_grads_.flat_view(p.in_shard, {p.length}));
    (store_.info(p.segment).spec.split_dim >= 0 ? s.split : s.replicated) += ss;
  }
  return s;
}

double ZeroAdamW::global_grad_norm() {
  const ShardSquares mine = shard_sum_squares();
  // The communicator reduces f32 only, and an f32 all-reduce would both round the partial sums
  // and add them in an order MPI picks. Instead each rank sends its doubles as hi + lo floats
  // (exact to ~2^-48 relative; NaN/Inf stay non-finite) and every rank adds all of them in rank
  // order: the same norm, bit for bit, on every rank.
  // Host tensors on purpose, also for CUDA parameters: the sums already came back to the host,
  // and a RoutedCommunicator sends host tensors over its host transport (MPI).
  Tensor send = Tensor::empty({4}, DType::f32);
  const double parts[2] = {mine.split, mine.replicated};
  for (int i = 0; i < 2; ++i) {
    const float hi = static_cast<float>(parts[i]);
    send.data<float>()[2 * i] = hi;
    send.data<float>()[2 * i + 1] = static_cast<float>(parts[i] - double(hi));
  }
  Tensor all = Tensor::empty({4 * int64_t(dp_.size())}, DType::f32);
  dp_.all_gather(send, all)->wait();
  double split = 0, replicated = 0;
  for (int r = 0; r < dp_.size(); ++r) {
    const float* a = all.data<float>() + 4 * r;
    split += double(a[0]) + double(a[1]);
    replicated += double(a[2]) + double(a[3]);
  }
  if (store_.tp_comm() != nullptr) {
    // Split parameters: every TP rank holds another slice, so their squares add over the TP group
    // (an f32 all-reduce of a double, as tp_grad_l2_norm does; identical on every TP rank).
    Tensor t = Tensor::empty({1}, DType::f32);
    t.data<float>()[0] = static_cast<float>(split);
    models::tp_all_reduce(store_, t);
    split = t.data<float>()[0];
  }
  return std::sqrt(split + replicated);
}

std::unique_ptr<distributed::GradSync> ZeroAdamW::make_grad_sync(distributed::Communicator& dp,
                                                                 int64_t /*bucket_bytes*/) {
  TESSERA_CHECK(&dp == &dp_, "ZeroAdamW: gradient sync over another group than its own");
  if (stage_ >= 2) {
    // ZeRO-2 frees the full gradient buffer: gradients live per parameter until GradSync has
    // copied them into a bucket's staging slot (models::ParamStore::stage_grads()).
    store_.stage_grads();
    models::ParamStore* store = &store_;
    return std::make_unique<distributed::GradSync>(
        dp_,
        [store](int64_t begin, int64_t end, const Tensor& dst) {
          store->take_grads(begin, end, dst);
        },
        store_.device(), shards_, shard_grads_);
  }
  return std::make_unique<distributed::GradSync>(dp_, store_.grads(), shards_, shard_grads_);
}

int64_t ZeroAdamW::take_comm_bytes() {
  // ZeRO-3: the parameters are gathered unit by unit in forward and backward, not after the step.
  if (stage_ == 3) return store_.take_gather_bytes();
  const int64_t b = gathered_bytes_;
  gathered_bytes_ = 0;
  return b;
}

StepStats ZeroAdamW::step(double lr) {
  StepStats stats;
  stats.grad_norm = global_grad_norm();
  if (!std::isfinite(stats.grad_norm)) return stats;  // every rank sees the same norm
  const ops::AdamWConfig c = adamw_step_config(config_, lr, stats.grad_norm);
  const int64_t t = count_step();

  if (stage_ == 3) {
    step_shards(lr, c, t);
    stats.applied = true;
    return stats;
  }
  const Tensor& params = store_.params();
  const int dp = dp_.size();
  std::vector<distributed::WorkHandle> works;
  works.reserve(shards_.buckets.size());
  for (const auto& b : shards_.buckets) {
    if (b.own() > 0) {
      const Shape own{b.own()};
      update_own_range(b, params, /*params_in_shard_layout=*/false, lr, c, t);
      // The gradient shard is spent: reuse it as the gather's send buffer (the communicator's
      // input and output must not overlap, and the updated shard lies inside the output).
      copy(params.flat_view(b.own_begin, own), shard_grads_.flat_view(b.offset, own));
    }
    const Tensor in = shard_grads_.flat_view(b.offset, {b.shard});
    works.push_back(dp_.all_gather(
        in, b.padded(dp) ? gather_pad_ : params.flat_view(b.begin, {int64_t(dp) * b.shard})));
    gathered_bytes_ += int64_t(dp) * b.shard * int64_t(sizeof(float));
  }
  // Wait for all before throwing, so no gather still writes into the parameters afterwards.
  std::string error;
  for (auto& w : works) {
    try {
      w->wait();
    } catch (const std::exception& e) {
      if (error.empty()) error = e.what();
    }
  }
  TESSERA_CHECK(error.empty(), "ZeroAdamW: parameter all-gather: ", error);
  if (!shards_.buckets.empty() && shards_.buckets.back().padded(dp)) {
    const auto& b = shards_.buckets.back();
    copy(gather_pad_.flat_view(0, {b.end - b.begin}), params.flat_view(b.begin, {b.end - b.begin}));
  }
  store_.sync_compute_params();
  stats.applied = true;
  return stats;
}

void ZeroAdamW::step_shards(double lr, const ops::AdamWConfig& c, int64_t t) {
  // A unit gathered now would keep the old values (and a held view of it would read them): the
  // trainer releases every unit before the step.
  for (int u = 0; u < static_cast<int>(store_.units().size()); ++u) {
    TESSERA_CHECK(!store_.gathered(u), "ZeroAdamW: ZeRO-3 step while unit '",
                  store_.units()[u].name, "' is gathered (release_all() first)");
  }
  // The parameters' shard buffer has this optimizer's layout: update it in place, element for
  // element with the gradient shard and the moments. Nothing is gathered: the next forward does.
  const Tensor& shard = store_.param_shards();
  for (const auto& b : shards_.buckets) {
    update_own_range(b, shard, /*params_in_shard_layout=*/true, lr, c, t);
  }
}

void ZeroAdamW::update_own_range(const distributed::ZeroShards::Bucket& b, const Tensor& params,
                                 bool params_in_shard_layout, double lr, const ops::AdamWConfig& c,
                                 int64_t t) {
  // The pieces of this rank's range with one learning rate each (optim.layer_decay). The
  // gradient shard, m, v and the decay mask are in the shard layout (element `at`); the
  // parameters are the full flat buffer (element `begin`, stages 1-2) or the shard (stage 3).
  for (const LrRange& r : lr_ranges_) {
    const int64_t begin = std::max(r.begin, b.own_begin), end = std::min(r.end, b.own_end);
    if (begin >= end) continue;
    ops::AdamWConfig cr = c;
    cr.lr = static_cast<float>(lr * r.scale);
    const Shape n{end - begin};
    const int64_t at = b.offset + (begin - b.own_begin);
    ops::adamw_step(params.flat_view(params_in_shard_layout ? at : begin, n),
                    shard_grads_.flat_view(at, n), m_.flat_view(at, n), v_.flat_view(at, n),
                    decay_mask_.flat_view(at, n), cr, t);
  }
}

int64_t ZeroAdamW::state_bytes() const {
  return static_cast<int64_t>(m_.nbytes() + v_.nbytes() + decay_mask_.nbytes());
}

int64_t ZeroAdamW::buffer_bytes() const {
  return static_cast<int64_t>(shard_grads_.nbytes() +
                              (gather_pad_.defined() ? gather_pad_.nbytes() : 0));
}

}  // namespace tessera::train
