#pragma once
// Parameters and gradients in flat buffers (docs/DESIGN.md decisions 3 and 4).
//
// Layers register their parameters while the model is built, in forward execution order. Then
// finalize() lays every parameter out in ONE contiguous f32 buffer, and every gradient at the
// same offset of a second one, in REVERSE registration order: backward produces gradients from
// the last layer to the first, so the buffer fills front to back and gradient buckets become
// ready one after another. Bucketed all-reduce, ZeRO shards, grad-norm, clipping and checkpoint
// writes are all slices of these two buffers.
//
// Every parameter knows its global identity: dotted name, global shape, and the dimension
// tensor parallelism splits (or none). Initial values are a function of (seed, name, global
// element index) only, so a tensor-parallel shard holds exactly the slice of the unsplit
// parameter, whatever the layout.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "distributed/busy_time.h"
#include "distributed/zero_shards.h"

namespace tessera::distributed {
class Communicator;
class Work;
}  // namespace tessera::distributed

namespace tessera::models {

struct Init {
  enum Kind { kZeros, kOnes, kNormal, kUniform, kConstant };
  Kind kind = kZeros;
  float scale = 0.0f;  // std for kNormal, bound for kUniform ([-scale, scale)), value for kConstant

  static Init zeros() { return {kZeros, 0}; }
  static Init ones() { return {kOnes, 0}; }
  static Init normal(float std) { return {kNormal, std}; }
  static Init uniform(float bound) { return {kUniform, bound}; }
  static Init constant(float value) { return {kConstant, value}; }  // e.g. CLIP's logit_scale
};

// Which weight-decay rule applies: matrices always decay; norms, biases and embeddings decay
// only when the optimizer config says so.
enum class ParamGroup { kWeight, kNormOrBias, kEmbedding };

struct ParamSpec {
  std::string name;    // global dotted name, e.g. "text.blocks.3.attn.qkv.weight"
  Shape shape;         // global shape
  int split_dim = -1;  // dimension tensor parallelism splits; -1 = replicated
  Init init;
  ParamGroup group = ParamGroup::kWeight;
  // Rows (global dimension 0) from this index on are padding (a padded vocabulary, models/gpt.h):
  // init() leaves them zero. -1: none.
  int64_t zero_rows_from = -1;
};

struct ParamInfo {
  ParamSpec spec;
  Shape local_shape;    // this rank's shard (== spec.shape when not split)
  int64_t local_begin;  // first index of this shard along split_dim (0 when not split)
  int64_t offset = -1;  // element offset in the flat buffers, set by finalize()
  int64_t numel = 0;    // elements of the local shard
};

using ParamId = int;

// A ZeRO-3 gather unit (docs/ZERO3_PLAN.md): the parameters one block reads, all-gathered and
// released together: a contiguous range [begin, begin + numel) of the flat buffer, its parameters
// in flat-layout order. A name whose parameters lie in several runs of the layout (GPT's "other":
// the head and ln_f at the front, the embeddings at the end) gives one unit per run.
struct GatherUnit {
  std::string name;          // "blocks.3.", "text.blocks.3.", "other", "other#2" (build_units)
  std::vector<ParamId> ids;  // in flat-layout order
  int64_t begin = 0;         // first element in the flat buffer
  int64_t numel = 0;         // U: elements of the unit
  // Set by shard_params(): the unit is the ZeroShards buckets [first_bucket, first_bucket +
  // num_buckets), each padded to dp x its shard (only the last one can need padding), so the
  // gathered unit is its elements in flat order, then padding. This rank holds `shard` elements
  // (its slice of every bucket of the unit, bucket after bucket) at shard_offset of the shard
  // buffer; the gathered buffer has dp * shard elements.
  int64_t shard = 0;
  int64_t shard_offset = 0;
  int first_bucket = 0, num_buckets = 0;
  // A row slice of one parameter (ParamStore::set_slice_bytes): slice k of ids[0]; -1 otherwise.
  int slice = -1;
};

class ParamStore {
 public:
  // tp_rank/tp_size: this rank's place in its tensor-parallel group (1 = no TP). A store built
  // this way has no TP communicator: it gives shard shapes and initial values (tests, tools),
  // but a model built on it with tp_size > 1 cannot run forward (tp_comm() throws).
  explicit ParamStore(int tp_rank = 0, int tp_size = 1);
  // Tensor parallelism over `tp` (borrowed, must outlive the store; nullptr = no TP): rank and
  // size are tp's. This is how layers reach the TP group without globals: every layer already
  // holds its ParamStore, and the Megatron collectives (models/layers/tensor_parallel.h) take
  // the communicator from it.
  explicit ParamStore(distributed::Communicator* tp);

  // Registers a parameter; throws when a split dimension is not divisible by tp_size or the name
  // is taken. Only before finalize().
  ParamId add(ParamSpec spec);

  // Lays the flat parameter and gradient buffers out on `device`. They are allocated (zeroed) on
  // their first use (params(), param(), grad(), init(), ...), not here: a ZeRO-3 start
  // (shard_params() before init_shards()) never allocates the full parameters, and a store whose
  // gradients are staged (stage_grads()) never the full gradient buffer.
  void finalize(Device device = Device::cpu());
  bool finalized() const { return finalized_; }

  // Views into the flat buffers, in the parameter's local shape (the first use allocates them).
  // Threads: the first reads of param()/compute_param()/params()/trainable_params() and of
  // grad()/grads() may come from several threads at once (a communication thread and the compute
  // thread): the buffer is allocated once, under a lock taken only until it exists. Everything
  // else (the setup calls, a staged gradient's grad(id), gathering) is one thread's.
  // grad(id) under gradient staging:
  // see stage_grads().
  // Sharded (shard_params()): param(id) is a view into its gathered unit; reading a unit that is
  // not gathered is an error naming the parameter.
  Tensor param(ParamId id) const;
  Tensor grad(ParamId id) const;
  // (N) f32. Sharded: an error (no full buffer exists; gather_full() or param_shards()).
  const Tensor& params() const {
    if (sharded_) refuse_sharded("params()");
    ensure_params();
    return params_;
  }
  Device device() const { return device_; }  // where parameters and gradients live
  // (T) f32: the gradients of the trainable parameters, laid out as trainable_params().
  // Undefined under gradient staging (stage_grads()).
  const Tensor& grads() const {
    if (!grads_staged_) ensure_grads();
    return grads_;
  }
  int64_t numel() const { return numel_; }

  // Frozen parameters (train.freeze, train/freeze.h). After finalize() and before init(): marks
  // frozen[id] as frozen and lays the buffers out again, trainable parameters first (still in
  // reverse registration order), frozen ones after them. params() still holds every parameter;
  // grads(), trainable_params() and decay_mask() cover only the trainable prefix
  // [0, trainable_numel()), so the optimizer and its state, GradSync and the gradient norm never
  // see a frozen parameter. A frozen parameter's grad(id) is a view into one shared scratch
  // buffer: layers that skip its gradient (Linear) never touch it, those that cannot (LayerNorm,
  // Embedding: cheap) write there, and nothing reads it. grad_done() ignores frozen parameters.
  void freeze(const std::vector<bool>& frozen);
  bool frozen(ParamId id) const { return !frozen_.empty() && frozen_.at(id); }
  bool any_frozen() const { return trainable_numel_ != numel_; }
  int64_t trainable_numel() const { return trainable_numel_; }  // T (== N without freezing)
  Tensor trainable_params() const;                              // (T) view of params()
  // True when every parameter whose name starts with `prefix` but not with `except` (at least
  // one) is frozen: a locked tower, which its model runs forward only (no activations kept, no
  // backward through it). except "": no exception.
  bool all_frozen(const std::string& prefix, const std::string& except = "") const;

  const std::vector<ParamInfo>& infos() const { return infos_; }
  const ParamInfo& info(ParamId id) const { return infos_.at(id); }
  ParamId find(const std::string& name) const;  // -1 when absent

  // Fills every parameter from its Init under `seed` (CPU stores; see the header comment).
  void init(uint64_t seed);
  // Sharded storage (shard_params()): fills only this rank's param_shards() ranges, bitwise the
  // values init(seed) then shard_params() gives (every element is a function of (seed, name,
  // global index), so any range is computed without the rest of its parameter). Frozen units too.
  void init_shards(uint64_t seed);
  // Bytes of parameter storage (the flat buffer, its bf16 shadow, the shard buffer; gathered
  // units are counted apart, gathered_bytes_peak()) held at once at most since construction. A
  // shard-only start keeps it at param_shards().nbytes().
  int64_t param_bytes_peak() const { return param_peak_bytes_; }
  // The pieces of this rank's own ranges of `buckets` (a ZeroShards' or shard_buckets()) that
  // lie in each parameter: distributed::shard_pieces() with segment = ParamId.
  std::vector<distributed::ShardPiece> shard_pieces(
      const std::vector<distributed::ZeroShards::Bucket>& buckets) const;
  // Whether weight decay applies to `spec` (decay_mask()'s rule).
  static bool decays(const ParamSpec& spec, bool decay_norms_and_biases, bool decay_embeddings);
  // (T) u8: 1 where weight decay applies, in the flat layout of the trainable parameters.
  Tensor decay_mask(bool decay_norms_and_biases = false, bool decay_embeddings = false) const;
  void zero_grads();  // also restarts the gradient progress below

  // Gradient progress, for overlapping communication with backward: layers call grad_done(id)
  // when parameter id's gradient for the current backward is final. Because the flat layout is
  // the reverse of registration order, final gradients form a growing prefix of grads(); the
  // hook is called with that prefix's length (in elements) each time it grows. A parameter that
  // never reports only delays the hook (its consumer must flush at the end); it never breaks it.
  void set_grad_ready_hook(std::function<void(int64_t ready_elements)> hook);
  void grad_done(ParamId id);
  void reset_grad_progress();

  // Gradient staging (ZeRO-2, docs/DISTRIBUTED.md "ZeRO stages"): after finalize() (and any
  // freeze()), drops the flat (T) gradient buffer. From then on grad(id) allocates parameter id's
  // gradient, zeroed, on its first use since it was last taken, and take_grads() hands gradients
  // to the data-parallel reduction range by range, freeing each parameter's gradient once every
  // element of it has been taken. So only the gradients written but not yet reduced are resident
  // (in a transformer's backward: about one bucket; a tied embedding written at both ends defers
  // its parts with add_grad_source() below).
  // Frozen parameters keep their shared scratch. grads() is undefined afterwards; nothing may
  // read the flat buffer (ZeroAdamW reads its reduced shard only).
  void stage_grads();
  bool grads_staged() const { return grads_staged_; }
  // Copies the gradients of flat elements [begin, end) of the trainable layout into dst
  // ((end - begin) f32, on the parameters' device; never-written gradients read as zeros) and
  // frees every staged gradient lying entirely before `end`. A grad(id) of a freed parameter
  // before the next reset_grad_progress() is an error (its contribution would be lost).
  void take_grads(int64_t begin, int64_t end, const Tensor& dst);
  // Bytes of gradient storage resident now and at most since the last reset_grad_peak(): the
  // staged gradients, or the flat buffer (+ frozen scratch) without staging.
  int64_t grad_bytes_live() const { return grad_live_bytes_; }
  int64_t grad_bytes_peak() const { return grad_peak_bytes_; }
  void reset_grad_peak() { grad_peak_bytes_ = grad_live_bytes_; }

  // A parameter written twice in one backward (GPT's tied embedding: by the head first, by the
  // token embedding last) would keep its staged gradient resident through the whole backward.
  // The model calls grad_partial_done(id) when the first writer is done; with a hook set (the
  // trainer's parallel.reduce_tied_grad_early under gradient staging) the hook takes the
  // gradient so far with hand_over_grad(id) and reduces it at once; the next grad(id) then starts
  // from zeros again and the rest arrives through take_grads() as usual. Without a hook: no-op.
  void set_grad_partial_hook(std::function<void(ParamId)> hook);
  void grad_partial_done(ParamId id);
  // Gradient staging only: parameter id's staged gradient (numel) f32 (zeros if not written since
  // it was last taken), no longer held by the store (its bytes leave grad_bytes_live()).
  Tensor hand_over_grad(ParamId id);

  // Deferred gradients (gradient staging only): a layer whose part of parameter id's gradient is
  // cheaper to keep as its inputs than as a dense (numel) buffer (an embedding's scatter-add keeps
  // dy (N, C) and the ids, not a (V, C) table) registers `fill` instead of writing grad(id).
  // take_grads() then calls fill(begin, out) for each range of the parameter it takes: out holds
  // elements [begin, begin + out.numel()) of id's gradient so far (its staged part, then the
  // sources registered before) and fill ADDS this layer's part into it. So the gradient exists
  // only bucket by bucket. `held_bytes` (what the closure keeps alive) counts as gradient storage
  // in grad_bytes_live() until the parameter is taken. grad_partial_done() of a parameter with a
  // source is a no-op (nothing dense to hand over). Sources are dropped by zero_grads() and once
  // the parameter is taken entirely.
  using GradSource = std::function<void(int64_t begin, const Tensor& out)>;
  void add_grad_source(ParamId id, GradSource fill, int64_t held_bytes);
  bool has_grad_source(ParamId id) const { return !sources_.empty() && !sources_.at(id).empty(); }

  int tp_rank() const { return tp_rank_; }
  int tp_size() const { return tp_size_; }
  // The TP group's communicator; nullptr when tp_size() == 1 or none was given.
  distributed::Communicator* tp_comm() const { return tp_; }

  // Mixed precision: with compute dtype bf16, matmul layers read their weights from a bf16
  // shadow of the f32 master parameters (one conversion per step, not one per use). The f32
  // buffer stays the master copy that the optimizer updates; whoever changes params() calls
  // sync_compute_params() afterwards (init() and the optimizer do).
  void set_compute_dtype(DType dtype);  // f32 or bf16; after finalize()
  DType compute_dtype() const { return compute_dtype_; }
  // The weight as matmuls should read it: the bf16 shadow's view, or param(id) in f32 mode.
  Tensor compute_param(ParamId id) const;
  void sync_compute_params();

  // ZeRO-3 (docs/ZERO3_PLAN.md). Gather units exist from finalize() on (rebuilt by freeze()),
  // one per contiguous run of the flat layout whose parameters share a unit_name() (a name with
  // several runs gets "#2", "#3" after its first, in forward order), ordered by their first
  // registered parameter (forward order: for GPT "other" (the embeddings), "blocks.0.", ...,
  // "other#2" (ln_f and the head)).
  // The unit of a parameter name: the prefix through the first "blocks.<digits>." segment (at the
  // start or after a '.'), else "other" (embeddings, final norm, head, CLIP's logit scale).
  static std::string unit_name(const std::string& param_name);
  const std::vector<GatherUnit>& units() const { return units_; }
  int unit_of(ParamId id) const { return unit_of_.at(id); }
  int find_unit(const std::string& name) const;  // -1 when absent
  // The trainable units' first elements in the flat buffer, increasing (the first is 0): the cuts
  // of a ZeroShards over trainable_numel() whose buckets never cross a unit (distributed::
  // ZeroShards's second constructor). Units never cross the trainable/frozen boundary.
  std::vector<int64_t> unit_bounds() const;

  // Sharded parameter storage, off unless called (stages 0-2 never do). After finalize(),
  // freeze(), init() and set_compute_dtype() (bf16: units are gathered in bf16, see f32_parts_;
  // the bf16 shadow of the whole buffer is dropped): every rank keeps just its slice of
  // every bucket of `shards` (param_shards(): first the ZeroShards shard-buffer layout, so the
  // optimizer's m, v and gradient shard line up with it element for element, then the frozen
  // parameters' units, one bucket each) and the full flat buffer is freed. `shards` must cut at
  // unit_bounds() (every bucket inside one unit) over the trainable_numel() elements for dp's
  // size and rank. `dp` (borrowed, must outlive the store) is the
  // data-parallel group. Every rank of dp must then gather and release the same units in the same
  // order (they are collectives). Without `shards`: one bucket per unit.
  void shard_params(distributed::Communicator* dp);
  void shard_params(distributed::Communicator* dp, const distributed::ZeroShards& shards);
  bool params_sharded() const { return sharded_; }
  // (S) f32: this rank's slices of every bucket, in bucket (flat) order; S = sum of shard.
  const Tensor& param_shards() const { return shards_; }
  // The buckets of param_shards(): `shards`' then the frozen units' (offsets into param_shards()).
  const std::vector<distributed::ZeroShards::Bucket>& shard_buckets() const {
    return shard_buckets_;
  }
  Tensor param_shard(int unit) const;  // (shard) view of param_shards()
  // Starts all-gathering `unit` into a freshly allocated (dp * shard) buffer and returns the
  // collective's handle at once (a prefetch: issue the next unit's gather before computing on
  // this one). param(id) of the unit waits for it. Gathering a gathered (or in-flight) unit
  // returns its handle again without communicating. The shards must not change until it is
  // released (an optimizer step between gather and release would leave the copy stale).
  std::shared_ptr<distributed::Work> gather(int unit);
  // Waits for the unit's gather if still in flight, then drops its buffer: the memory is freed
  // once no view returned by param(id) is held any more. No-op for a unit not gathered.
  void release(int unit);
  bool gathered(int unit) const { return pending_.at(unit) != nullptr; }
  // Releases every gathered unit (before an optimizer step changes the shards).
  void release_all();
  // (N) f32 in the flat layout, on device(): every unit gathered in turn (units already gathered
  // are reused and stay gathered; the others are released again). Collective over dp: for
  // checkpoint writes, evaluation, EMA.
  Tensor gather_full();
  // Automatic gathering (off by default; only with sharded storage): param(id) of a unit that is
  // not gathered gathers it (blocking) instead of failing, then prefetches the next unit in the
  // direction of the last two accesses (forward: u+1, backward: u-1) and releases the least
  // recently used units beyond two (the one read and the one prefetched). A released unit stays
  // alive while a view of it is held, so eviction never breaks a running op. Every rank must
  // read units in the same order (the same model code on the same shapes does).
  void set_auto_gather(bool on);
  bool auto_gather() const { return auto_gather_; }
  // Scheduled gathering (docs/DISTRIBUTED.md "Stage 3"): the trainer calls begin_gather_step()
  // at the start of every training step; release_all() ends the step. The first step gathers
  // as above and records the units in the order they are read (a unit once per run of reads); a
  // later step replays that order: reading schedule[k] keeps it and prefetches schedule[k + 1]
  // (at most two units resident), so the forward/backward turn (GPT's tied embedding read at
  // both ends) is prefetched too, and begin_gather_step() already issues schedule[0]'s gather.
  // A read off the schedule (another order: evaluation, a changed model) falls back to the
  // direction guess for the rest of the step, and the step's order replaces the schedule. The
  // schedule is a function of the model code only, so every rank issues the same gathers.
  // Reads outside a step (evaluation between steps) use the direction guess.
  void begin_gather_step();
  const std::vector<int>& gather_schedule() const { return schedule_; }
  // Inside training steps (begin_gather_step() to release_all()), since reset_gather_stats(). A
  // miss: a read of a unit neither resident nor in flight (gathered on demand, the reader blocked
  // for the whole gather). wait: time param() blocked on a gather (misses and prefetches not yet
  // complete); comm: the time some gather of the step was in flight (the union of the gathers'
  // started-to-completed intervals, distributed::BusyTime: a unit's buckets and the next unit's
  // prefetch progress together and count once).
  struct GatherStats {
    int64_t gathers = 0, misses = 0, steps = 0;
    double wait_seconds = 0, comm_seconds = 0;
    // Share of gather time hidden by prefetch, as GradSync's: 1 - wait / comm (0 when none ran).
    double hidden_fraction() const;
  };
  const GatherStats& gather_stats() const { return gather_stats_; }
  void reset_gather_stats() { gather_stats_ = {}; }
  // Bytes of gathered unit buffers resident now, and at most since reset_gathered_peak().
  int64_t gathered_bytes_live() const { return gathered_live_bytes_; }
  int64_t gathered_bytes_peak() const { return gathered_peak_bytes_; }
  void reset_gathered_peak() { gathered_peak_bytes_ = gathered_live_bytes_; }
  // Row slices (docs/DISTRIBUTED.md "Stage 3", GPT's tied embedding): a parameter whose readers
  // can work on row ranges is declared with allow_row_slices(id) while the model is built.
  // set_slice_bytes(bytes), after finalize() and freeze() and before shard_params(), cuts every
  // declared parameter larger than `bytes` into slices of max(1, bytes / row bytes) rows along
  // its local dimension 0 (the last slice shorter; f32 bytes whatever the compute dtype); each
  // slice is a gather unit of its own ("tok_emb.weight[0:8533]"), so stage 3 gathers such a
  // parameter slice by slice, at most two slices resident. Readers go through num_slices() and
  // param_slice() at every stage (unsharded: views of the full buffer), so every stage runs the
  // same arithmetic; param(id) and compute_param(id) of a sliced parameter while sharded are
  // errors naming it. bytes <= 0: no slicing.
  void allow_row_slices(ParamId id);
  void set_slice_bytes(int64_t bytes);
  int64_t slice_rows(ParamId id) const { return slice_rows_.empty() ? 0 : slice_rows_.at(id); }
  int num_slices(ParamId id) const;  // 1 when not sliced
  // Rows [k * slice_rows(id), ...) of param(id) / compute_param(id): (rows_k, ...) views; slice k
  // gathered (automatic mode) when sharded.
  Tensor param_slice(ParamId id, int k) const;
  Tensor compute_param_slice(ParamId id, int k) const;
  // Output bytes of the unit all-gathers issued since the last call (communication volume).
  int64_t take_gather_bytes() {
    const int64_t b = gather_bytes_;
    gather_bytes_ = 0;
    return b;
  }

 private:
  int tp_rank_, tp_size_;
  distributed::Communicator* tp_ = nullptr;
  // Lays the buffers out: layout_ is the ParamIds in flat-buffer order. Also (re)builds units_.
  void lay_out(Device device);
  void build_units();
  [[noreturn]] void refuse_sharded(const char* what) const;
  // gather()/release() behind the const param(): automatic gathering changes only residency.
  std::shared_ptr<distributed::Work> gather_unit(int unit) const;
  void release_unit(int unit) const;
  void drop_grad_sources(ParamId id);  // their held bytes leave grad_bytes_live()
  void auto_gather_access(int unit) const;
  // The unit's gathered buffer (automatic mode gathers it), waited for; reader names the error.
  const Tensor& resident_unit(int unit, const std::string& reader) const;
  const Tensor& resident_unit_compute(int unit, const std::string& reader) const;  // bf16 copy
  // param_slice() (compute false) and compute_param_slice() in bf16 mode (compute true).
  Tensor row_slice(ParamId id, int k, bool compute) const;
  // The lazily allocated full buffers (finalize()): params_ (and the bf16 shadow in bf16 mode),
  // grad_storage_ (and grads_) unless staged. Refused once sharded.
  void ensure_params() const;
  void ensure_grads() const;
  void count_param_bytes(int64_t delta) const;
  void guess_gather(int unit) const;       // auto_gather_access off the schedule
  void keep_resident(int a, int b) const;  // release all but a and b, then gather a, b (-1: none)
  void count_gather_time(int unit) const;  // its comm intervals, once complete (at release)
  // This step's gather intervals; their union is added to comm_seconds at the step's end, so
  // gathers in flight together count once (as GradSync's buckets).
  mutable distributed::BusyTime step_gather_time_;
  Device device_ = Device::cpu();
  bool finalized_ = false;

  std::vector<ParamInfo> infos_;
  std::vector<char> frozen_;       // per ParamId; empty: none
  std::vector<ParamId> layout_;    // flat-buffer order: trainable ones, then frozen ones
  std::vector<int> position_;      // per ParamId: its index in layout_
  mutable Tensor params_, grads_;  // (N) and (T) f32, allocated on first use
  // Set (release) once params_ / grad_storage_ exist, read (acquire) by the fast path of
  // ensure_params() / ensure_grads(); alloc_mutex_ guards the allocation (see param()).
  mutable std::atomic<bool> params_ready_{false}, grads_ready_{false};
  mutable std::mutex alloc_mutex_;
  mutable Tensor grad_storage_;    // (T + the largest frozen parameter) f32: grads_ + scratch
  int64_t grad_scratch_ = 0;       // the largest frozen parameter's elements
  int64_t trainable_numel_ = 0;
  size_t trainable_count_ = 0;    // trainable parameters (a prefix of layout_)
  mutable Tensor params_bf16_;    // (N) bf16 shadow, only in bf16 mode
  std::vector<char> grad_final_;  // per trainable parameter, in layout order (offset order)
  size_t ready_params_ = 0;       // leading parameters (layout order) whose grads are final
  std::function<void(int64_t)> grad_ready_hook_;
  std::function<void(ParamId)> grad_partial_hook_;
  DType compute_dtype_ = DType::f32;
  int64_t numel_ = 0;
  // Gradient staging (stage_grads()): per ParamId its gradient (numel) f32 or undefined; the end
  // of the range taken so far in this backward (a grad(id) below it is an error).
  bool grads_staged_ = false;
  mutable std::vector<Tensor> staged_;
  // add_grad_source(): per ParamId its deferred parts (in registration order) and their bytes.
  std::vector<std::vector<GradSource>> sources_;
  std::vector<int64_t> source_bytes_;
  int64_t taken_end_ = 0;
  mutable int64_t grad_live_bytes_ = 0, grad_peak_bytes_ = 0;
  // ZeRO-3 units and sharded storage: per ParamId its unit and its first element in the unit;
  // per unit the gathered (dp * shard) buffer (undefined when released) and its gather's handle.
  std::vector<GatherUnit> units_;
  std::vector<int> unit_of_;
  std::vector<int64_t> unit_offset_;
  bool sharded_ = false;
  distributed::Communicator* dp_ = nullptr;
  Tensor shards_;  // (S) f32
  mutable std::vector<Tensor> full_;
  mutable std::vector<Tensor> full_bf16_;  // bf16 compute: the gathered unit in bf16
  // ZeRO-3 with bf16 compute (docs/DISTRIBUTED.md "Stage 3"): a unit is all-gathered in bf16 (each
  // rank converts its shard at gather time), and the f32 values of its parameters read in f32
  // (param(), param_slice(): norms, biases, embedding tables) travel beside it in an f32 part.
  // reads_f32_ per ParamId: 1-D parameters from the start, others from their first f32 read
  // (which gathers the unit in f32 too, once). A unit whose f32 part would cost as many bytes as
  // bf16 saves is gathered in f32 and converted, as before. gather_full() gathers f32 only.
  struct F32Part;                                            // param_store_shards.cc
  mutable std::vector<std::shared_ptr<F32Part>> f32_parts_;  // per unit; null unless mixed
  mutable std::vector<char> reads_f32_;
  bool gather_f32_only_ = false;
  std::shared_ptr<distributed::Work> gather_f32(int unit) const;    // the f32 unit, full_[unit]
  std::shared_ptr<distributed::Work> gather_mixed(int unit) const;  // bf16 + the f32 part
  void wait_unit(int unit, const std::string& reader) const;        // resident, waited, unpacked
  // (shape) f32 at element `at` of the unit, of parameter id (the f32 part, or the f32 unit).
  Tensor unit_param_f32(int unit, ParamId id, int64_t at, const Shape& shape) const;
  mutable std::vector<std::shared_ptr<distributed::Work>> pending_;
  bool auto_gather_ = false;
  mutable std::vector<int> recent_;  // resident units, most recently used last
  mutable int last_unit_ = -1, direction_ = +1;
  mutable std::vector<char> waited_;  // per unit: param() waited for its gather already
  // Per unit: its gather was issued inside a training step, so its time is that step's (a unit
  // left resident by an evaluation between steps is not counted in the step that releases it).
  mutable std::vector<char> gathered_in_step_;
  mutable int64_t gathered_live_bytes_ = 0, gathered_peak_bytes_ = 0, gather_bytes_ = 0;
  mutable int64_t param_live_bytes_ = 0, param_peak_bytes_ = 0;  // param_bytes_peak()
  std::vector<distributed::ZeroShards::Bucket> shard_buckets_;   // of shard_params()

  // Row slices (set_slice_bytes()).
  std::vector<char> sliceable_;      // per ParamId: allow_row_slices()
  std::vector<int64_t> slice_rows_;  // per ParamId: rows per slice, 0 = not sliced

  // Scheduled gathering (begin_gather_step()): the recorded order, this step's order so far, the
  // schedule position of the unit read last (-1 before the first), whether this step still
  // follows the schedule.
  std::vector<int> schedule_;
  mutable std::vector<int> trace_;
  mutable int cursor_ = -1;
  bool in_step_ = false;
  mutable bool on_schedule_ = false;
  mutable GatherStats gather_stats_;
};

}  // namespace tessera::models
