// ParamStore's ZeRO-3 half (docs/DISTRIBUTED.md "Stage 3", docs/ZERO3_PLAN.md): gather units,
// sharded parameter storage, gathering with prefetch and release. The layout, gradients and init
// are in param_store.cc.
#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "core/caching_allocator.h"
#include "core/timer.h"
#include "distributed/communicator.h"
#include "models/param_store.h"
#include "ops/matmul.h"  // convert (bf16 compute)

namespace tessera::models {

std::string ParamStore::unit_name(const std::string& name) {
  static const std::string kBlocks = "blocks.";
  for (size_t at = name.find(kBlocks); at != std::string::npos; at = name.find(kBlocks, at + 1)) {
    if (at != 0 && name[at - 1] != '.') continue;  // "myblocks.1." is not a block
    size_t end = at + kBlocks.size();
    while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
    if (end > at + kBlocks.size() && end < name.size() && name[end] == '.') {
      return name.substr(0, end + 1);
    }
  }
  return "other";
}

void ParamStore::build_units() {
  units_.clear();
  unit_of_.assign(infos_.size(), -1);
  unit_offset_.assign(infos_.size(), 0);
  // Contiguous runs of the flat layout with one unit_name(), each with its first registered
  // parameter ...
  struct Run {
    std::string name;
    std::vector<ParamId> ids;
    ParamId first;
    int slice = -1;  // a row slice of ids[0] (set_slice_bytes): its index, its element range
    int64_t begin = 0, numel = 0;
  };
  std::vector<Run> runs;
  bool last_frozen = false;
  for (ParamId id : layout_) {
    const ParamInfo& info = infos_[id];
    if (slice_rows(id) > 0) {  // one run per slice, each its own unit
      const int64_t rows = info.local_shape[0], row = info.numel / rows, per = slice_rows(id);
      for (int64_t r = 0, k = 0; r < rows; r += per, ++k) {
        const int64_t end = std::min(rows, r + per);
        Run& run = runs.emplace_back();
        run.name = absl::StrCat(info.spec.name, "[", r, ":", end, "]");
        run.ids = {id};
        run.first = id;
        run.slice = static_cast<int>(k);
        run.begin = info.offset + r * row;
        run.numel = (end - r) * row;
      }
      last_frozen = frozen(id);
      continue;
    }
    std::string name = unit_name(info.spec.name);
    // A run also ends where the trainable prefix ends (the optimizer's shards cover only it).
    if (runs.empty() || runs.back().slice >= 0 || runs.back().name != name ||
        frozen(id) != last_frozen) {
      runs.push_back({std::move(name), {}, id, -1, info.offset, 0});
    }
    last_frozen = frozen(id);
    runs.back().ids.push_back(id);
    runs.back().first = std::min(runs.back().first, id);
    runs.back().numel += info.numel;
  }
  // ... in the order of that parameter (forward order); a name's later runs get "#2", "#3", ...
  std::stable_sort(runs.begin(), runs.end(),
                   [](const Run& a, const Run& b) { return a.first < b.first; });
  std::map<std::string, int> seen;
  for (Run& run : runs) {
    const int k = ++seen[run.name];
    GatherUnit& unit = units_.emplace_back();
    unit.name = k == 1 ? run.name : absl::StrCat(run.name, "#", k);
    unit.ids = std::move(run.ids);
    unit.begin = run.begin;
    unit.numel = run.numel;
    unit.slice = run.slice;
    if (run.slice > 0) continue;  // a sliced parameter's unit is its first slice's
    for (ParamId id : unit.ids) {
      unit_of_[id] = static_cast<int>(units_.size() - 1);
      unit_offset_[id] = infos_[id].offset - unit.begin;
    }
  }
  full_.assign(units_.size(), Tensor());
  full_bf16_.assign(units_.size(), Tensor());
  f32_parts_.assign(units_.size(), nullptr);
  // Read in f32 from the start: norm gains and biases, Linear biases, scalars (1-D or kNormOrBias)
  // and embedding tables (lookups); the others once read so (unit_param_f32()).
  reads_f32_.assign(infos_.size(), 0);
  for (size_t id = 0; id < infos_.size(); ++id) {
    const ParamInfo& info = infos_[id];
    reads_f32_[id] = info.local_shape.size() <= 1 || info.spec.group != ParamGroup::kWeight;
  }
  pending_.assign(units_.size(), nullptr);
  waited_.assign(units_.size(), 0);
  gathered_in_step_.assign(units_.size(), 0);
}

std::vector<int64_t> ParamStore::unit_bounds() const {
  std::vector<int64_t> bounds;
  for (const GatherUnit& unit : units_) {
    if (unit.numel > 0 && unit.begin < trainable_numel_) bounds.push_back(unit.begin);
  }
  std::sort(bounds.begin(), bounds.end());
  return bounds;
}

void ParamStore::allow_row_slices(ParamId id) {
  TESSERA_CHECK(id >= 0 && id < static_cast<ParamId>(infos_.size()),
                "ParamStore::allow_row_slices: no parameter ", id);
  sliceable_.resize(infos_.size(), 0);
  sliceable_[id] = 1;
}

void ParamStore::set_slice_bytes(int64_t bytes) {
  TESSERA_CHECK(finalized(), "ParamStore::set_slice_bytes before finalize()");
  TESSERA_CHECK(!sharded_, "ParamStore::set_slice_bytes after shard_params()");
  slice_rows_.assign(infos_.size(), 0);
  sliceable_.resize(infos_.size(), 0);
  for (size_t id = 0; id < infos_.size(); ++id) {
    const ParamInfo& info = infos_[id];
    if (!sliceable_[id] || bytes <= 0 || info.local_shape.empty()) continue;
    const int64_t rows = info.local_shape[0];
    if (rows == 0 || int64_t(sizeof(float)) * info.numel <= bytes) continue;
    const int64_t row_bytes = int64_t(sizeof(float)) * (info.numel / rows);
    const int64_t per = std::max<int64_t>(1, bytes / row_bytes);
    if (per < rows) slice_rows_[id] = per;
  }
  build_units();
}

int ParamStore::num_slices(ParamId id) const {
  const int64_t per = slice_rows(id);
  if (per == 0) return 1;
  const int64_t rows = infos_.at(id).local_shape[0];
  return static_cast<int>((rows + per - 1) / per);
}

namespace {

Shape slice_shape(const Shape& shape, int64_t rows) {
  Shape s = shape;
  s[0] = rows;
  return s;
}

}  // namespace

Tensor ParamStore::param_slice(ParamId id, int k) const {
  return row_slice(id, k, /*compute=*/false);
}

Tensor ParamStore::compute_param_slice(ParamId id, int k) const {
  return row_slice(id, k, /*compute=*/compute_dtype_ != DType::f32);
}

Tensor ParamStore::row_slice(ParamId id, int k, bool compute) const {
  const ParamInfo& i = infos_.at(id);
  TESSERA_CHECK(k >= 0 && k < num_slices(id),
                "ParamStore::", compute ? "compute_param_slice" : "param_slice", ": slice ", k,
                " of ", num_slices(id), " of '", i.spec.name, "'");
  const int64_t per = slice_rows(id);
  if (per == 0) return compute ? compute_param(id) : param(id);
  const int64_t r0 = k * per, r1 = std::min(i.local_shape[0], r0 + per);
  if (!sharded_) return (compute ? compute_param(id) : param(id)).slice(r0, r1);
  const int u = unit_of_[id] + k;
  const Shape shape = slice_shape(i.local_shape, r1 - r0);
  // f32: from the f32 part when the unit was gathered in bf16 (gather_mixed()).
  if (!compute) return unit_param_f32(u, id, 0, shape);
  return resident_unit_compute(u, i.spec.name).flat_view(0, shape);
}

// The f32 part of a unit gathered in bf16 (gather_mixed()): the f32-read parameters' ranges of
// the unit, packed in flat order into `values`. Each rank sends the elements of those ranges it
// holds (packed, padded to the most any rank holds: the counts follow from the buckets, so every
// rank knows every rank's), one all-gather brings all of them, and wait_unit() unpacks them.
struct ParamStore::F32Part {
  struct Region {
    ParamId id;
    int64_t lo, hi, at;  // unit elements [lo, hi) are values [at, at + hi - lo)
  };
  struct Move {
    int64_t from, to, len;  // recv [from, from + len) -> values [to, to + len)
  };
  std::vector<Region> regions;
  int64_t numel = 0;  // F: the regions' elements
  Tensor values;      // (F) f32
  Tensor recv32;  // (n x most) f32 in flight: every rank's pieces, padded; dropped once unpacked
  std::vector<Move> unpack;
  int64_t transient_bytes() const { return recv32.defined() ? int64_t(recv32.nbytes()) : 0; }
};

void ParamStore::wait_unit(int u, const std::string& reader) const {
  if (auto_gather_) auto_gather_access(u);
  TESSERA_CHECK(pending_[u] != nullptr, "ParamStore: parameter '", reader,
                "' read while its ZeRO-3 gather unit '", units_[u].name,
                "' is not gathered (gather() it before use)");
  if (!waited_[u]) {
    const int64_t t0 = now_ns();
    pending_[u]->wait();  // the gather's completion (on CUDA: orders the compute stream)
    if (in_step_ && gathered_in_step_[u])
      gather_stats_.wait_seconds += double(now_ns() - t0) * 1e-9;
    waited_[u] = 1;
  }
  F32Part* part = f32_parts_[u].get();
  if (part && part->transient_bytes() > 0) {  // gathered in bf16: unpack the f32 part, if any
    for (const auto& m : part->unpack) {
      copy(part->recv32.flat_view(m.from, {m.len}), part->values.flat_view(m.to, {m.len}));
    }
    gathered_live_bytes_ -= part->transient_bytes();
    part->recv32 = Tensor();
  }
}

const Tensor& ParamStore::resident_unit(int u, const std::string& reader) const {
  wait_unit(u, reader);
  if (!full_[u].defined()) {
    // Gathered in bf16 without the f32 values wanted here (a reader not seen before, or
    // gather_full()): gather the unit in f32 too, blocking. Every rank reads the same parameters
    // in the same order, so every rank issues it.
    const int64_t t0 = now_ns();
    gather_f32(u)->wait();
    if (in_step_) {
      const int64_t t1 = now_ns();
      ++gather_stats_.gathers;
      ++gather_stats_.misses;
      gather_stats_.wait_seconds += double(t1 - t0) * 1e-9;
      step_gather_time_.add(t0, t1);
    }
  }
  return full_[u];
}

Tensor ParamStore::unit_param_f32(int u, ParamId id, int64_t at, const Shape& shape) const {
  const std::string& reader = infos_[id].spec.name;
  wait_unit(u, reader);
  if (full_[u].defined()) return full_[u].flat_view(at, shape);
  if (const F32Part* part = f32_parts_[u].get()) {
    const int64_t numel = shape_numel(shape);
    for (const auto& r : part->regions) {
      if (r.id == id && r.lo <= at && at + numel <= r.hi)
        return part->values.flat_view(r.at + (at - r.lo), shape);
    }
  }
  reads_f32_[id] = 1;  // from the next gather on, its f32 values travel in the unit's f32 part
  return resident_unit(u, reader).flat_view(at, shape);
}

const Tensor& ParamStore::resident_unit_compute(int u, const std::string& reader) const {
  // ZeRO-3 with bf16 compute: the unit as gathered in bf16 (gather_mixed()), or, for a unit
  // gathered in f32 (mostly read in f32: a tied embedding), converted once per gather. Either is
  // the conversion sync_compute_params() applies to the whole buffer unsharded (elementwise), so
  // the matmuls read the same bf16 values at every stage. Dropped with the unit.
  wait_unit(u, reader);
  if (!full_bf16_[u].defined()) {
    const Tensor& full = full_[u];
    full_bf16_[u] = Tensor::empty({full.numel()}, DType::bf16, device_);
    ops::convert(full, full_bf16_[u]);
    gathered_live_bytes_ += int64_t(full_bf16_[u].nbytes());
    gathered_peak_bytes_ = std::max(gathered_peak_bytes_, gathered_live_bytes_);
  }
  return full_bf16_[u];
}

int ParamStore::find_unit(const std::string& name) const {
  for (size_t u = 0; u < units_.size(); ++u) {
    if (units_[u].name == name) return static_cast<int>(u);
  }
  return -1;
}

void ParamStore::refuse_sharded(const char* what) const {
  throw_error(absl::StrCat("ParamStore::", what,
                           ": parameters are sharded (ZeRO-3), there is no full flat buffer; use "
                           "gather_full() or param_shards()"));
}

void ParamStore::shard_params(distributed::Communicator* dp) {
  TESSERA_CHECK(dp != nullptr, "ParamStore::shard_params: no data-parallel communicator");
  // One bucket per unit: buckets longer than any unit.
  shard_params(dp,
               distributed::ZeroShards(trainable_numel_, std::numeric_limits<int64_t>::max() / 4,
                                       dp->size(), dp->rank(), unit_bounds()));
}

void ParamStore::shard_params(distributed::Communicator* dp,
                              const distributed::ZeroShards& shards) {
  TESSERA_CHECK(finalized(), "ParamStore::shard_params before finalize()");
  TESSERA_CHECK(!sharded_, "ParamStore::shard_params called twice");
  TESSERA_CHECK(dp != nullptr, "ParamStore::shard_params: no data-parallel communicator");
  TESSERA_CHECK(shards.numel == trainable_numel_ && shards.dp_size == dp->size() &&
                    shards.dp_rank == dp->rank(),
                "ParamStore::shard_params: ", shards.describe(), " is not for the ",
                trainable_numel_, " trainable elements on rank ", dp->rank(), " of ", dp->size());
  const int64_t n = dp->size();
  // The buckets: the trainable prefix's (the optimizer's), then one per frozen unit (frozen
  // parameters lie behind the trainable ones), their shards after the optimizer's.
  std::vector<distributed::ZeroShards::Bucket> buckets = shards.buckets;
  if (numel_ > trainable_numel_) {
    std::vector<int64_t> cuts;
    for (const GatherUnit& unit : units_) {
      if (unit.begin >= trainable_numel_ && unit.numel > 0) {
        cuts.push_back(unit.begin - trainable_numel_);
      }
    }
    std::sort(cuts.begin(), cuts.end());
    const distributed::ZeroShards tail(numel_ - trainable_numel_,
                                       std::numeric_limits<int64_t>::max() / 4, dp->size(),
                                       dp->rank(), cuts);
    for (auto bucket : tail.buckets) {
      bucket.begin += trainable_numel_;
      bucket.end += trainable_numel_;
      bucket.own_begin += trainable_numel_;
      bucket.own_end += trainable_numel_;
      bucket.offset += shards.shard_numel;
      buckets.push_back(bucket);
    }
  }
  // The units' buckets: consecutive, inside the unit, only the unit's last one padded.
  std::map<int64_t, size_t> bucket_at;  // first element -> bucket index
  for (size_t i = 0; i < buckets.size(); ++i) bucket_at[buckets[i].begin] = i;
  for (GatherUnit& unit : units_) {
    auto found = bucket_at.find(unit.begin);
    size_t next = found == bucket_at.end() ? buckets.size() : found->second;
    unit.first_bucket = static_cast<int>(next);
    unit.num_buckets = 0;
    unit.shard = 0;
    unit.shard_offset = next < buckets.size() ? buckets[next].offset : 0;
    int64_t at = unit.begin;
    while (at < unit.begin + unit.numel) {
      TESSERA_CHECK(next < buckets.size() && buckets[next].begin == at,
                    "ParamStore::shard_params: no bucket of ", shards.describe(),
                    " starts at element ", at, " in unit '", unit.name, "'");
      const auto& b = buckets[next];
      TESSERA_CHECK(b.end <= unit.begin + unit.numel &&
                        (b.end == unit.begin + unit.numel || !b.padded(int(n))),
                    "ParamStore::shard_params: bucket [", b.begin, ", ", b.end,
                    ") crosses the end of unit '", unit.name, "' or is padded inside it");
      unit.shard += b.shard;
      ++unit.num_buckets;
      at = b.end;
      ++next;
    }
  }
  // Every bucket belongs to exactly one unit (the units tile the buffer).
  int64_t claimed = 0, total = 0;
  for (const GatherUnit& unit : units_) claimed += unit.num_buckets;
  TESSERA_CHECK(claimed == int64_t(buckets.size()), "ParamStore::shard_params: the buckets of ",
                shards.describe(), " and of the frozen units do not follow the units");
  for (const auto& b : buckets) total = std::max(total, b.offset + b.shard);
  shard_buckets_ = std::move(buckets);
  shards_ = Tensor::zeros({total}, DType::f32, device_);  // padding stays zero
  count_param_bytes(int64_t(shards_.nbytes()));
  // The values so far, when the full buffer was ever used (init() before sharding); a shard-only
  // start never allocates it and fills the shards afterwards (init_shards(), a checkpoint load).
  const bool full = params_.defined();
  for (const auto& b : shard_buckets_) {
    if (full && b.own() > 0) {
      copy(params_.flat_view(b.own_begin, {b.own()}), shards_.flat_view(b.offset, {b.own()}));
    }
  }
  sharded_ = true;
  dp_ = dp;
  if (params_.defined()) count_param_bytes(-int64_t(params_.nbytes()));
  if (params_bf16_.defined()) count_param_bytes(-int64_t(params_bf16_.nbytes()));
  params_ = Tensor();
  params_bf16_ = Tensor();  // bf16 compute: each gathered unit gets its own bf16 copy
  params_ready_.store(false, std::memory_order_release);  // and ensure_params() refuses
  // As in stage_grads(): hand the freed full buffer back instead of keeping it cached.
  auto* caching = dynamic_cast<CachingAllocator*>(&allocator_for(device_));
  if (full && caching) caching->release_cached();
}

Tensor ParamStore::param_shard(int unit) const {
  TESSERA_CHECK(sharded_, "ParamStore::param_shard without shard_params()");
  const GatherUnit& u = units_.at(unit);
  return shards_.flat_view(u.shard_offset, {u.shard});
}

std::shared_ptr<distributed::Work> ParamStore::gather(int unit) {
  return gather_unit(unit);
}

void ParamStore::release(int unit) {
  release_unit(unit);
}

namespace {

// The gather of a unit of several buckets: one all-gather per bucket, waited for together.
class UnitGather final : public distributed::Work {
 public:
  UnitGather(std::string what, std::vector<distributed::WorkHandle> parts)
      : Work(std::move(what)), parts_(std::move(parts)) {}
  void wait() override {
    for (auto& p : parts_) p->wait();  // throws the first failure
    if (!done()) complete(now_ns());
    Work::wait();
  }
  // The parts' own intervals (other collectives may run between them).
  void add_to(distributed::BusyTime& busy) const {
    for (const auto& p : parts_) busy.add(*p);
  }

 private:
  std::vector<distributed::WorkHandle> parts_;
};

}  // namespace

std::shared_ptr<distributed::Work> ParamStore::gather_unit(int unit) const {
  TESSERA_CHECK(sharded_, "ParamStore::gather without shard_params()");
  TESSERA_CHECK(unit >= 0 && unit < static_cast<int>(units_.size()), "ParamStore::gather: unit ",
                unit, " of ", units_.size());
  if (pending_[unit]) return pending_[unit];  // resident or in flight
  std::shared_ptr<distributed::Work> work;
  if (compute_dtype_ == DType::bf16 && !gather_f32_only_) work = gather_mixed(unit);
  if (!work) work = gather_f32(unit);
  pending_[unit] = std::move(work);
  waited_[unit] = 0;
  gathered_in_step_[unit] = in_step_;
  if (in_step_) ++gather_stats_.gathers;
  return pending_[unit];
}

namespace {

std::shared_ptr<distributed::Work> join(std::vector<distributed::WorkHandle> parts,
                                        const std::string& unit) {
  if (parts.size() == 1) return parts.front();
  return std::make_shared<UnitGather>(absl::StrCat("gather of unit '", unit, "'"),
                                      std::move(parts));
}

}  // namespace

std::shared_ptr<distributed::Work> ParamStore::gather_f32(int unit) const {
  const GatherUnit& u = units_[unit];
  const int64_t n = dp_->size();
  full_[unit] = Tensor::empty({u.shard * n}, DType::f32, device_);
  gathered_live_bytes_ += int64_t(full_[unit].nbytes());
  gathered_peak_bytes_ = std::max(gathered_peak_bytes_, gathered_live_bytes_);
  gather_bytes_ += int64_t(full_[unit].nbytes());
  // Bucket by bucket into place: every bucket but the unit's last is exactly n shards long, so
  // each lands at its own position of the unit's flat range.
  std::vector<distributed::WorkHandle> parts;
  for (int i = u.first_bucket; i < u.first_bucket + u.num_buckets; ++i) {
    const auto& b = shard_buckets_[i];
    parts.push_back(dp_->all_gather(shards_.flat_view(b.offset, {b.shard}),
                                    full_[unit].flat_view(b.begin - u.begin, {n * b.shard})));
  }
  return join(std::move(parts), u.name);
}

std::shared_ptr<distributed::Work> ParamStore::gather_mixed(int unit) const {
  const GatherUnit& u = units_[unit];
  const int64_t n = dp_->size();
  auto part = std::make_shared<F32Part>();
  for (ParamId id : u.ids) {
    if (!reads_f32_[id]) continue;
    const ParamInfo& info = infos_[id];
    const int64_t lo = std::max(info.offset, u.begin);
    const int64_t hi = std::min(info.offset + info.numel, u.begin + u.numel);
    if (lo >= hi) continue;
    part->regions.push_back({id, lo - u.begin, hi - u.begin, part->numel});
    part->numel += hi - lo;
  }
  // bf16 for all + f32 for F moves at least 2U + 4F bytes, f32 alone 4U.
  if (2 * part->numel >= u.numel) return nullptr;
  // Where each rank's pieces of the regions lie in its shard of the unit (bucket by bucket: rank
  // r holds [begin + r * shard, begin + (r + 1) * shard) of each), and where they go.
  std::vector<std::vector<F32Part::Move>> pieces(n);  // from: the rank's unit shard
  int64_t most = 0;
  for (int64_t r = 0; r < n; ++r) {
    int64_t count = 0;
    for (int i = u.first_bucket; i < u.first_bucket + u.num_buckets; ++i) {
      const auto& b = shard_buckets_[i];
      const int64_t own = b.begin + r * b.shard, own_end = std::min(b.end, own + b.shard);
      for (const auto& g : part->regions) {
        const int64_t lo = std::max(own, u.begin + g.lo), hi = std::min(own_end, u.begin + g.hi);
        if (lo >= hi) continue;
        pieces[r].push_back(
            {b.offset - u.shard_offset + (lo - own), g.at + (lo - u.begin - g.lo), hi - lo});
        count += hi - lo;
      }
    }
    most = std::max(most, count);
  }
  // The f32 part moves n x most elements (each rank's pieces padded to the most any rank holds):
  // when that costs as much as the bf16 half saved (f32-read parameters lying in few ranks'
  // ranges, DiT's modulation), gather f32.
  if (2 * most >= u.shard) return nullptr;
  // The bf16 gather, in place: this rank's shard of each bucket converted into its own range of
  // the unit's bf16 buffer (at gather time, so whatever wrote the shards, the optimizer, a
  // checkpoint load, init_shards(), is seen without a bf16 shadow of them to keep in step).
  full_bf16_[unit] = Tensor::empty({u.shard * n}, DType::bf16, device_);
  std::vector<distributed::WorkHandle> parts;
  for (int i = u.first_bucket; i < u.first_bucket + u.num_buckets; ++i) {
    const auto& b = shard_buckets_[i];
    const Tensor all = full_bf16_[unit].flat_view(b.begin - u.begin, {n * b.shard});
    const Tensor mine = all.flat_view(dp_->rank() * b.shard, {b.shard});
    ops::convert(shards_.flat_view(b.offset, {b.shard}), mine);
    parts.push_back(dp_->all_gather(mine, all));
  }
  gather_bytes_ += int64_t(full_bf16_[unit].nbytes());
  if (part->numel > 0) {
    part->values = Tensor::empty({part->numel}, DType::f32, device_);
    // In place, as the bf16 gather: this rank's pieces packed into its range (the padding zeroed).
    part->recv32 = Tensor::empty({n * most}, DType::f32, device_);
    const Tensor mine = part->recv32.flat_view(dp_->rank() * most, {most});
    zero_(mine);
    int64_t at = 0;
    for (const auto& p : pieces[dp_->rank()]) {
      copy(shards_.flat_view(u.shard_offset + p.from, {p.len}), mine.flat_view(at, {p.len}));
      at += p.len;
    }
    for (int64_t r = 0; r < n; ++r) {
      at = r * most;
      for (const auto& p : pieces[r]) {
        part->unpack.push_back({at, p.to, p.len});
        at += p.len;
      }
    }
    parts.push_back(dp_->all_gather(mine, part->recv32));
    gather_bytes_ += int64_t(part->recv32.nbytes());
  }
  gathered_live_bytes_ += int64_t(full_bf16_[unit].nbytes()) + part->transient_bytes() +
                          (part->values.defined() ? int64_t(part->values.nbytes()) : 0);
  gathered_peak_bytes_ = std::max(gathered_peak_bytes_, gathered_live_bytes_);
  f32_parts_[unit] = std::move(part);
  return join(std::move(parts), u.name);
}

double ParamStore::GatherStats::hidden_fraction() const {
  if (comm_seconds <= 0) return 0;
  return std::clamp(1.0 - wait_seconds / comm_seconds, 0.0, 1.0);
}

void ParamStore::count_gather_time(int unit) const {
  const distributed::Work& w = *pending_[unit];
  if (const auto* parts = dynamic_cast<const UnitGather*>(&w)) {
    parts->add_to(step_gather_time_);
  } else {
    step_gather_time_.add(w);
  }
}

void ParamStore::release_all() {
  for (int u = 0; u < static_cast<int>(units_.size()); ++u) release_unit(u);
  if (in_step_) {  // the end of a training step: its order is the schedule from now on
    in_step_ = false;
    ++gather_stats_.steps;
    gather_stats_.comm_seconds += double(step_gather_time_.take_ns()) * 1e-9;
    if (trace_ != schedule_) schedule_ = trace_;
  }
  last_unit_ = -1;
  direction_ = +1;
}

void ParamStore::release_unit(int unit) const {
  TESSERA_CHECK(sharded_, "ParamStore::release without shard_params()");
  if (pending_.at(unit) == nullptr) return;
  // The communication thread may still write into the buffer: never free it under a gather.
  const bool this_step = in_step_ && gathered_in_step_[unit];
  if (!waited_[unit]) {
    const int64_t t0 = now_ns();
    pending_[unit]->wait();  // an unused prefetch: blocking here is waiting too
    if (this_step) gather_stats_.wait_seconds += double(now_ns() - t0) * 1e-9;
  }
  if (this_step) count_gather_time(unit);
  pending_[unit] = nullptr;
  for (Tensor* t : {&full_[unit], &full_bf16_[unit]}) {
    if (t->defined()) gathered_live_bytes_ -= int64_t(t->nbytes());
    *t = Tensor();
  }
  if (const F32Part* part = f32_parts_[unit].get()) {
    gathered_live_bytes_ -= part->transient_bytes();
    if (part->values.defined()) gathered_live_bytes_ -= int64_t(part->values.nbytes());
    f32_parts_[unit] = nullptr;
  }
  recent_.erase(std::remove(recent_.begin(), recent_.end(), unit), recent_.end());
}

void ParamStore::set_auto_gather(bool on) {
  TESSERA_CHECK(!on || sharded_, "ParamStore::set_auto_gather without shard_params()");
  auto_gather_ = on;
  last_unit_ = -1;
  direction_ = +1;
}

void ParamStore::begin_gather_step() {
  if (!auto_gather_) return;
  in_step_ = true;
  trace_.clear();
  cursor_ = -1;
  last_unit_ = -1;
  direction_ = +1;
  on_schedule_ = !schedule_.empty();
  // The step's first two units, gathering while the batch is read and uploaded.
  if (on_schedule_) keep_resident(schedule_[0], schedule_.size() > 1 ? schedule_[1] : -1);
}

void ParamStore::auto_gather_access(int unit) const {
  const bool repeat = unit == last_unit_;  // another parameter of the unit read last
  if (in_step_ && !pending_[unit]) ++gather_stats_.misses;
  if (in_step_ && !repeat) {
    trace_.push_back(unit);
    if (on_schedule_) {
      const size_t k = size_t(cursor_ + 1);
      if (k < schedule_.size() && schedule_[k] == unit) {
        cursor_ = int(k);
      } else {
        on_schedule_ = false;  // another order than recorded: guess for the rest of the step
      }
    }
  }
  if (!(in_step_ && on_schedule_)) return guess_gather(unit);
  last_unit_ = unit;
  if (repeat && pending_[unit]) return;
  const size_t next = size_t(cursor_ + 1);
  keep_resident(unit, next < schedule_.size() ? schedule_[next] : -1);
}

void ParamStore::keep_resident(int a, int b) const {
  if (b == a) b = -1;
  for (int u = 0; u < static_cast<int>(units_.size()); ++u) {
    if (u != a && u != b) release_unit(u);
  }
  gather_unit(a);  // no-op when resident or in flight
  if (b >= 0) gather_unit(b);
  recent_.clear();  // for guess_gather(), should the step leave the schedule
  if (b >= 0) recent_.push_back(b);
  recent_.push_back(a);
}

void ParamStore::guess_gather(int unit) const {
  // recent_: resident units in use order, a prefetched one counted as used just before.
  recent_.erase(std::remove(recent_.begin(), recent_.end(), unit), recent_.end());
  if (!pending_[unit]) {  // a miss: keep the most recently used unit only, gather
    while (recent_.size() > 1) release_unit(recent_.front());
    gather_unit(unit);
  }
  recent_.push_back(unit);
  if (unit == last_unit_) return;  // another parameter of the same unit
  if (unit == last_unit_ + 1 || unit == last_unit_ - 1) direction_ = unit - last_unit_;
  last_unit_ = unit;
  const int next = unit + direction_;
  if (next < 0 || next >= static_cast<int>(units_.size()) || pending_[next]) return;
  while (recent_.size() > 1) release_unit(recent_.front());  // keep the unit being read
  gather_unit(next);
  recent_.insert(recent_.begin(), next);
}

Tensor ParamStore::gather_full() {
  TESSERA_CHECK(sharded_, "ParamStore::gather_full without shard_params()");
  Tensor out = Tensor::empty({numel_}, DType::f32, device_);
  const bool automatic = auto_gather_;
  auto_gather_ = false;     // residency here is explicit
  gather_f32_only_ = true;  // f32 values wanted (a unit resident in bf16 gathers its f32 too)
  for (size_t u = 0; u < units_.size(); ++u) {
    const bool resident = pending_[u] != nullptr;
    gather(static_cast<int>(u));
    // A unit is one contiguous range of the flat layout (a row slice too).
    const GatherUnit& unit = units_[u];
    if (unit.numel > 0) {
      copy(resident_unit(static_cast<int>(u), unit.name).flat_view(0, {unit.numel}),
           out.flat_view(unit.begin, {unit.numel}));
    }
    if (!resident) release(static_cast<int>(u));
  }
  auto_gather_ = automatic;
  gather_f32_only_ = false;
  return out;
}

}  // namespace tessera::models
