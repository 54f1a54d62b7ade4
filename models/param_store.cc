#include "models/param_store.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/caching_allocator.h"
#include "core/philox.h"
#include "core/timer.h"
#include "distributed/communicator.h"
#include "ops/matmul.h"

namespace tessera::models {
namespace {

// A 64-bit stream id per parameter name (FNV-1a), so init does not depend on registration order.
uint64_t name_stream(const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// Value of global element `g` of a parameter.
float init_value(const Init& init, uint64_t seed, uint64_t stream, int64_t g) {
  switch (init.kind) {
    case Init::kZeros:
      return 0.0f;
    case Init::kOnes:
      return 1.0f;
    case Init::kConstant:
      return init.scale;
    case Init::kUniform: {
      Philox4x32 r = philox_block(seed, stream, uint64_t(g) / 4);
      return init.scale * (2.0f * philox_uniform(r.v[g % 4]) - 1.0f);
    }
    case Init::kNormal: {
      // Box-Muller on the pair of uniforms that holds g (same pairing as core/random.cc).
      Philox4x32 r = philox_block(seed, stream, uint64_t(g) / 4);
      int pair = int(g % 4) / 2;
      float radius = std::sqrt(-2.0f * std::log(philox_uniform_open0(r.v[2 * pair])));
      float angle = 6.28318530717958647692f * philox_uniform(r.v[2 * pair + 1]);
      return init.scale * radius * (g % 2 == 0 ? std::cos(angle) : std::sin(angle));
    }
  }
  return 0.0f;
}

// Local elements [lo, hi) of parameter `info` (its TP shard when `tp`) into out[0, hi - lo): each
// is init_value() of its global index, so a range needs nothing of the rest of the parameter.
void fill_init(const ParamInfo& info, bool tp, uint64_t seed, int64_t lo, int64_t hi, float* out) {
  const Shape& g = info.spec.shape;
  const int d = info.spec.split_dim >= 0 && tp ? info.spec.split_dim : -1;
  // Map local element l to its global index: split the index into (outer, split, inner) around
  // the split dimension and shift the split coordinate by this shard's begin.
  int64_t inner = 1;
  for (int k = d + 1; d >= 0 && k < static_cast<int>(g.size()); ++k) inner *= g[k];
  const int64_t local_split = d >= 0 ? info.local_shape[d] : 1;
  const int64_t global_split = d >= 0 ? g[d] : 1;
  const uint64_t stream = name_stream(info.spec.name);
  // Global elements from this flat index on lie in the padded rows (dimension 0).
  const int64_t row_zero_from = info.spec.zero_rows_from >= 0 && !g.empty() && g[0] > 0
                                    ? info.spec.zero_rows_from * (shape_numel(g) / g[0])
                                    : -1;
#pragma omp parallel for schedule(static)
  for (int64_t l = lo; l < hi; ++l) {
    int64_t global = l;
    if (d >= 0) {
      int64_t o = l / (local_split * inner), rest = l % (local_split * inner);
      int64_t s = rest / inner, i = rest % inner;
      global = (o * global_split + info.local_begin + s) * inner + i;
    }
    const bool padding = row_zero_from >= 0 && global >= row_zero_from;
    out[l - lo] = padding ? 0.0f : init_value(info.spec.init, seed, stream, global);
  }
}

}  // namespace

ParamStore::ParamStore(int tp_rank, int tp_size) : tp_rank_(tp_rank), tp_size_(tp_size) {
  TESSERA_CHECK(tp_size >= 1 && tp_rank >= 0 && tp_rank < tp_size, "ParamStore: tp rank ", tp_rank,
                " of ", tp_size);
}

ParamStore::ParamStore(distributed::Communicator* tp)
    : ParamStore(tp ? tp->rank() : 0, tp ? tp->size() : 1) {
  if (tp && tp->size() > 1) tp_ = tp;
}

ParamId ParamStore::add(ParamSpec spec) {
  TESSERA_CHECK(!finalized(), "ParamStore::add(", spec.name, ") after finalize()");
  TESSERA_CHECK(find(spec.name) < 0, "ParamStore: parameter '", spec.name, "' registered twice");
  ParamInfo info{spec, spec.shape, 0};
  if (spec.split_dim >= 0 && tp_size_ > 1) {
    TESSERA_CHECK(spec.split_dim < static_cast<int>(spec.shape.size()), "ParamStore: '", spec.name,
                  "' split_dim ", spec.split_dim, " out of range for ", shape_str(spec.shape));
    int64_t full = spec.shape[spec.split_dim];
    TESSERA_CHECK(full % tp_size_ == 0, "ParamStore: '", spec.name, "' dimension ", spec.split_dim,
                  " of ", shape_str(spec.shape),
                  " is not divisible by tensor_parallel = ", tp_size_);
    info.local_shape[spec.split_dim] = full / tp_size_;
    info.local_begin = info.local_shape[spec.split_dim] * tp_rank_;
  }
  info.numel = shape_numel(info.local_shape);
  infos_.push_back(std::move(info));
  return static_cast<ParamId>(infos_.size() - 1);
}

void ParamStore::finalize(Device device) {
  TESSERA_CHECK(!finalized(), "ParamStore::finalize() called twice");
  lay_out(device);
}

void ParamStore::lay_out(Device device) {
  layout_.clear();
  for (int pass = 0; pass < 2; ++pass) {  // trainable, then frozen; each in reverse registration
    for (int id = static_cast<int>(infos_.size()) - 1; id >= 0; --id) {
      if (frozen(id) == (pass == 1)) layout_.push_back(id);
    }
  }
  position_.assign(infos_.size(), 0);
  int64_t offset = 0, scratch = 0;
  trainable_count_ = 0;
  for (size_t pos = 0; pos < layout_.size(); ++pos) {
    ParamInfo& info = infos_[layout_[pos]];
    position_[layout_[pos]] = static_cast<int>(pos);
    if (!frozen(layout_[pos])) {
      trainable_numel_ = offset + info.numel;
      ++trainable_count_;
    } else {
      scratch = std::max(scratch, info.numel);
    }
    info.offset = offset;
    offset += info.numel;
  }
  if (trainable_count_ == 0) trainable_numel_ = 0;
  numel_ = offset;
  device_ = device;
  finalized_ = true;
  // The buffers come on first use (ensure_params(), ensure_grads()); freeze() has taken the
  // parameters' buffer (finalize(): none yet).
  grad_storage_ = grads_ = Tensor();
  grads_ready_.store(false, std::memory_order_release);
  grad_scratch_ = scratch;
  grad_live_bytes_ = grad_peak_bytes_ = 0;
  reset_grad_progress();
  build_units();
}

void ParamStore::count_param_bytes(int64_t delta) const {
  param_live_bytes_ += delta;
  param_peak_bytes_ = std::max(param_peak_bytes_, param_live_bytes_);
}

// Double-checked: the flag's acquire load is the whole cost once the buffer exists; the first
// readers (possibly several threads at once) serialise on the mutex, and only one allocates.
void ParamStore::ensure_params() const {
  if (params_ready_.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(alloc_mutex_);
  if (params_ready_.load(std::memory_order_relaxed)) return;
  TESSERA_CHECK(finalized_, "ParamStore: parameters read before finalize()");
  if (sharded_) refuse_sharded("the full parameter buffer");
  params_ = Tensor::zeros({numel_}, DType::f32, device_);
  count_param_bytes(int64_t(params_.nbytes()));
  if (compute_dtype_ == DType::bf16) {
    params_bf16_ = Tensor::empty({numel_}, DType::bf16, device_);
    count_param_bytes(int64_t(params_bf16_.nbytes()));
    ops::convert(params_, params_bf16_);
  }
  params_ready_.store(true, std::memory_order_release);
}

void ParamStore::ensure_grads() const {
  if (grads_staged_ || grads_ready_.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(alloc_mutex_);
  if (grads_ready_.load(std::memory_order_relaxed)) return;
  TESSERA_CHECK(finalized_, "ParamStore: gradients read before finalize()");
  grad_storage_ = Tensor::zeros({trainable_numel_ + grad_scratch_}, DType::f32, device_);
  grads_ = grad_storage_.flat_view(0, {trainable_numel_});
  grad_live_bytes_ += int64_t(grad_storage_.nbytes());
  grad_peak_bytes_ = std::max(grad_peak_bytes_, grad_live_bytes_);
  grads_ready_.store(true, std::memory_order_release);
}

void ParamStore::freeze(const std::vector<bool>& frozen) {
  TESSERA_CHECK(finalized(), "ParamStore::freeze before finalize()");
  TESSERA_CHECK(!grads_staged_, "ParamStore::freeze after stage_grads()");
  TESSERA_CHECK(!sharded_, "ParamStore::freeze after shard_params()");
  TESSERA_CHECK(frozen.size() == infos_.size(), "ParamStore::freeze: ", frozen.size(),
                " flags for ", infos_.size(), " parameters");
  // The values move with their parameters (freezing after init() keeps them; before any use
  // there are none to move). The old buffer stays counted in param_bytes_peak() until it is
  // freed: the copy needs it beside the new one. The bf16 shadow is remade from the new buffer.
  Tensor old = std::move(params_);
  params_ = Tensor();
  params_ready_.store(false, std::memory_order_release);
  if (params_bf16_.defined()) count_param_bytes(-int64_t(params_bf16_.nbytes()));
  params_bf16_ = Tensor();
  const std::vector<ParamInfo> old_infos = infos_;
  frozen_.assign(frozen.begin(), frozen.end());
  lay_out(device_);
  if (!old.defined()) return;
  ensure_params();
  for (size_t id = 0; id < infos_.size(); ++id) {
    copy(old.flat_view(old_infos[id].offset, {old_infos[id].numel}),
         params_.flat_view(infos_[id].offset, {infos_[id].numel}));
  }
  const int64_t old_bytes = int64_t(old.nbytes());
  old = Tensor();
  count_param_bytes(-old_bytes);
  sync_compute_params();
}

Tensor ParamStore::trainable_params() const {
  TESSERA_CHECK(finalized(), "ParamStore::trainable_params before finalize()");
  if (sharded_) refuse_sharded("trainable_params()");
  ensure_params();
  return params_.flat_view(0, {trainable_numel_});
}

bool ParamStore::all_frozen(const std::string& prefix, const std::string& except) const {
  bool any = false;
  for (size_t id = 0; id < infos_.size(); ++id) {
    const std::string& name = infos_[id].spec.name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    if (!except.empty() && name.compare(0, except.size(), except) == 0) continue;
    if (!frozen(static_cast<ParamId>(id))) return false;
    any = true;
  }
  return any;
}

Tensor ParamStore::param(ParamId id) const {
  const ParamInfo& i = infos_.at(id);
  if (sharded_) {
    TESSERA_CHECK(slice_rows(id) == 0, "ParamStore: parameter '", i.spec.name,
                  "' is gathered in row slices (ZeRO-3): read it with param_slice()");
    return unit_param_f32(unit_of_[id], id, unit_offset_[id], i.local_shape);
  }
  TESSERA_CHECK(finalized(), "ParamStore::param before finalize()");
  ensure_params();
  return params_.flat_view(i.offset, i.local_shape);
}

Tensor ParamStore::grad(ParamId id) const {
  TESSERA_CHECK(finalized(), "ParamStore::grad before finalize()");
  const ParamInfo& i = infos_.at(id);
  // Frozen: the shared scratch behind the trainable gradients (see freeze()).
  ensure_grads();
  if (frozen(id)) {
    return grad_storage_.flat_view(grads_staged_ ? 0 : trainable_numel_, i.local_shape);
  }
  if (!grads_staged_) return grads_.flat_view(i.offset, i.local_shape);
  TESSERA_CHECK(i.offset >= taken_end_, "ParamStore: gradient of '", i.spec.name,
                "' requested after it was handed to the data-parallel reduction in this backward "
                "(flat elements before ",
                taken_end_, " are taken); a layer wrote it after reporting grad_done()");
  Tensor& g = staged_[id];
  if (!g.defined()) {
    g = Tensor::zeros({i.numel}, DType::f32, device_);
    grad_live_bytes_ += int64_t(g.nbytes());
    grad_peak_bytes_ = std::max(grad_peak_bytes_, grad_live_bytes_);
  }
  return g.flat_view(0, i.local_shape);
}

void ParamStore::stage_grads() {
  TESSERA_CHECK(finalized(), "ParamStore::stage_grads before finalize()");
  if (grads_staged_) return;
  int64_t scratch = 0;
  for (size_t id = 0; id < infos_.size(); ++id) {
    if (frozen(static_cast<ParamId>(id))) scratch = std::max(scratch, infos_[id].numel);
  }
  grads_staged_ = true;
  const bool allocated = grad_storage_.defined();
  grads_ = Tensor();
  grad_storage_ = Tensor();
  grads_ready_.store(false, std::memory_order_release);  // the flat buffer is gone for good
  // The flat buffer's block would otherwise stay in the caching allocator's free list, touched
  // and resident (and on a GPU, reserved) for the whole run: give the cache back.
  auto* caching = dynamic_cast<CachingAllocator*>(&allocator_for(device_));
  if (allocated && caching) caching->release_cached();
  grad_storage_ = Tensor::zeros({scratch}, DType::f32, device_);
  staged_.assign(infos_.size(), Tensor());
  grad_live_bytes_ = grad_peak_bytes_ = int64_t(grad_storage_.nbytes());
  taken_end_ = 0;
}

void ParamStore::take_grads(int64_t begin, int64_t end, const Tensor& dst) {
  TESSERA_CHECK(grads_staged_, "ParamStore::take_grads without stage_grads()");
  TESSERA_CHECK(0 <= begin && begin <= end && end <= trainable_numel_, "ParamStore::take_grads [",
                begin, ", ", end, ") outside the ", trainable_numel_, " trainable elements");
  TESSERA_CHECK(dst.dtype() == DType::f32 && dst.numel() == end - begin, "ParamStore::take_grads [",
                begin, ", ", end, "): destination ", dst.describe());
  // Trainable parameters are layout_[0, trainable_count_), sorted by offset.
  auto first = std::upper_bound(
      layout_.begin(), layout_.begin() + static_cast<std::ptrdiff_t>(trainable_count_), begin,
      [&](int64_t e, ParamId id) { return e < infos_[id].offset + infos_[id].numel; });
  for (auto it = first; it != layout_.begin() + static_cast<std::ptrdiff_t>(trainable_count_);
       ++it) {
    const ParamInfo& info = infos_[*it];
    if (info.offset >= end) break;
    const int64_t lo = std::max(begin, info.offset);
    const int64_t hi = std::min(end, info.offset + info.numel);
    const Tensor out = dst.flat_view(lo - begin, {hi - lo});
    Tensor& g = staged_[*it];
    if (g.defined()) {
      copy(g.flat_view(lo - info.offset, {hi - lo}), out);
    } else {
      zero_(out);  // never written in this backward
    }
    const bool sourced = has_grad_source(*it);
    if (sourced) {
      for (const GradSource& fill : sources_[*it]) fill(lo - info.offset, out);
    }
    if (info.offset + info.numel <= end && g.defined()) {
      grad_live_bytes_ -= int64_t(g.nbytes());
      g = Tensor();
    }
    if (info.offset + info.numel <= end && sourced) drop_grad_sources(*it);
  }
  taken_end_ = std::max(taken_end_, end);
}

ParamId ParamStore::find(const std::string& name) const {
  for (size_t i = 0; i < infos_.size(); ++i) {
    if (infos_[i].spec.name == name) return static_cast<ParamId>(i);
  }
  return -1;
}

void ParamStore::init(uint64_t seed) {
  TESSERA_CHECK(finalized(), "ParamStore::init before finalize()");
  TESSERA_CHECK(!sharded_, "ParamStore::init after shard_params(): init_shards() fills the shards");
  ensure_params();
  Tensor host = params_.device().is_cpu() ? params_ : Tensor::empty(params_.shape(), DType::f32);
  float* flat = host.data<float>();
  for (const ParamInfo& info : infos_) {
    fill_init(info, tp_size_ > 1, seed, 0, info.numel, flat + info.offset);
  }
  if (!params_.device().is_cpu()) copy(host, params_);
  sync_compute_params();
}

void ParamStore::init_shards(uint64_t seed) {
  TESSERA_CHECK(sharded_, "ParamStore::init_shards without shard_params()");
  release_all();  // a gathered copy would keep the old values
  Tensor host = shards_.device().is_cpu() ? shards_ : Tensor::zeros(shards_.shape(), DType::f32);
  float* out = host.data<float>();
  // Each bucket's own range of the flat layout, cut at the parameters, lands at the bucket's
  // offset of the shard buffer.
  for (const distributed::ShardPiece& p : shard_pieces(shard_buckets_)) {
    fill_init(infos_[p.segment], tp_size_ > 1, seed, p.in_segment, p.in_segment + p.length,
              out + p.in_shard);
  }
  if (!shards_.device().is_cpu()) copy(host, shards_);
}

void ParamStore::set_compute_dtype(DType dtype) {
  TESSERA_CHECK(finalized(), "ParamStore::set_compute_dtype before finalize()");
  TESSERA_CHECK(dtype == DType::f32 || dtype == DType::bf16,
                "ParamStore: compute dtype must be f32 or bf16, got ", dtype_name(dtype));
  TESSERA_CHECK(!sharded_ || dtype == DType::f32,
                "ParamStore: bf16 compute with sharded parameters (ZeRO-3) is not supported yet");
  compute_dtype_ = dtype;
  if (params_bf16_.defined()) count_param_bytes(-int64_t(params_bf16_.nbytes()));
  params_bf16_ = Tensor();
  // Not allocated yet (or sharded): ensure_params() makes the shadow with the buffer.
  if (dtype == DType::bf16 && params_.defined()) {
    params_bf16_ = Tensor::empty({numel_}, DType::bf16, device_);
    count_param_bytes(int64_t(params_bf16_.nbytes()));
  }
  sync_compute_params();
}

Tensor ParamStore::compute_param(ParamId id) const {
  if (compute_dtype_ == DType::f32) return param(id);
  const ParamInfo& i = infos_.at(id);
  if (sharded_) {
    // ZeRO-3 with bf16 compute: the unit's bf16 copy, gathered in bf16 (each rank converted its
    // f32 master shard) or converted from the f32 unit: the same elementwise conversion
    // sync_compute_params() applies to the whole buffer unsharded, so the same bf16 values.
    TESSERA_CHECK(slice_rows(id) == 0, "ParamStore: parameter '", i.spec.name,
                  "' is gathered in row slices (ZeRO-3): read it with compute_param_slice()");
    return resident_unit_compute(unit_of_[id], i.spec.name)
        .flat_view(unit_offset_[id], i.local_shape);
  }
  ensure_params();
  return params_bf16_.flat_view(i.offset, i.local_shape);
}

void ParamStore::sync_compute_params() {
  if (params_bf16_.defined()) ops::convert(params_, params_bf16_);
}

std::vector<distributed::ShardPiece> ParamStore::shard_pieces(
    const std::vector<distributed::ZeroShards::Bucket>& buckets) const {
  std::vector<std::pair<int64_t, int64_t>> segments;
  segments.reserve(infos_.size());
  for (const ParamInfo& info : infos_) segments.emplace_back(info.offset, info.numel);
  return distributed::shard_pieces(buckets, segments);
}

bool ParamStore::decays(const ParamSpec& spec, bool decay_norms_and_biases, bool decay_embeddings) {
  const ParamGroup g = spec.group;
  return g == ParamGroup::kWeight || (g == ParamGroup::kNormOrBias && decay_norms_and_biases) ||
         (g == ParamGroup::kEmbedding && decay_embeddings);
}

Tensor ParamStore::decay_mask(bool decay_norms_and_biases, bool decay_embeddings) const {
  TESSERA_CHECK(finalized(), "ParamStore::decay_mask before finalize()");
  Tensor mask = Tensor::zeros({trainable_numel_}, DType::u8);
  uint8_t* m = mask.data<uint8_t>();
  for (size_t id = 0; id < infos_.size(); ++id) {
    if (frozen(static_cast<ParamId>(id))) continue;
    const ParamInfo& info = infos_[id];
    if (decays(info.spec, decay_norms_and_biases, decay_embeddings))
      std::fill(m + info.offset, m + info.offset + info.numel, uint8_t{1});
  }
  return device_.is_cpu() ? mask : to_device(mask, device_);
}

void ParamStore::zero_grads() {
  if (grad_storage_.defined()) zero_(grad_storage_);
  for (Tensor& g : staged_) {
    if (!g.defined()) continue;
    grad_live_bytes_ -= int64_t(g.nbytes());
    g = Tensor();
  }
  for (size_t id = 0; id < sources_.size(); ++id) drop_grad_sources(static_cast<ParamId>(id));
  reset_grad_progress();
}

void ParamStore::add_grad_source(ParamId id, GradSource fill, int64_t held_bytes) {
  TESSERA_CHECK(grads_staged_, "ParamStore::add_grad_source without stage_grads()");
  const ParamInfo& i = infos_.at(id);
  TESSERA_CHECK(!frozen(id) && i.offset >= taken_end_, "ParamStore::add_grad_source('", i.spec.name,
                "'): frozen or already taken in this backward");
  if (sources_.empty()) {
    sources_.resize(infos_.size());
    source_bytes_.assign(infos_.size(), 0);
  }
  sources_[id].push_back(std::move(fill));
  source_bytes_[id] += held_bytes;
  grad_live_bytes_ += held_bytes;
  grad_peak_bytes_ = std::max(grad_peak_bytes_, grad_live_bytes_);
}

void ParamStore::drop_grad_sources(ParamId id) {
  if (sources_.empty()) return;
  sources_[id].clear();
  grad_live_bytes_ -= source_bytes_[id];
  source_bytes_[id] = 0;
}

void ParamStore::set_grad_partial_hook(std::function<void(ParamId)> hook) {
  grad_partial_hook_ = std::move(hook);
}

void ParamStore::grad_partial_done(ParamId id) {
  if (grad_partial_hook_ && grads_staged_ && !frozen(id) && !has_grad_source(id)) {
    grad_partial_hook_(id);
  }
}

Tensor ParamStore::hand_over_grad(ParamId id) {
  TESSERA_CHECK(grads_staged_, "ParamStore::hand_over_grad without stage_grads()");
  const ParamInfo& i = infos_.at(id);
  TESSERA_CHECK(!frozen(id) && i.offset >= taken_end_, "ParamStore::hand_over_grad('", i.spec.name,
                "'): frozen or already taken in this backward");
  Tensor g = std::move(staged_[id]);
  staged_[id] = Tensor();
  if (!g.defined()) return Tensor::zeros({i.numel}, DType::f32, device_);
  grad_live_bytes_ -= int64_t(g.nbytes());
  return g;
}

void ParamStore::set_grad_ready_hook(std::function<void(int64_t)> hook) {
  grad_ready_hook_ = std::move(hook);
}

void ParamStore::reset_grad_progress() {
  grad_final_.assign(trainable_count_, 0);
  ready_params_ = 0;
  taken_end_ = 0;
}

void ParamStore::grad_done(ParamId id) {
  if (frozen(id)) return;  // never part of the gradient buffer
  if (grad_final_.size() != trainable_count_) reset_grad_progress();
  const size_t pos = static_cast<size_t>(position_.at(id));
  grad_final_[pos] = 1;
  const size_t before = ready_params_;
  while (ready_params_ < grad_final_.size() && grad_final_[ready_params_]) ++ready_params_;
  if (ready_params_ != before && grad_ready_hook_) {
    const ParamInfo& last = infos_[layout_[ready_params_ - 1]];
    grad_ready_hook_(last.offset + last.numel);
  }
}

}  // namespace tessera::models
