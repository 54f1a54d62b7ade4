#include "train/trainer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/checkpoint.h"
#include "core/caching_allocator.h"
#include "core/threads.h"
#include "core/timer.h"
#include "distributed/grad_sync.h"
#include "distributed/make_communicator.h"
#include "models/clip.h"
#include "models/factory.h"
#include "ops/machine_peaks.h"
#include "train/config.h"
#include "train/data_source.h"
#include "train/dp_average.h"
#include "train/ema.h"
#include "train/evaluator.h"
#include "train/fault_injection.h"
#include "train/freeze.h"
#include "train/grad_cache.h"
#include "train/init_from.h"
#include "train/lr_schedule.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/recipes.h"
#include "train/run_report.h"

namespace tessera::train {
namespace {

using ::tessera::checkpoint::MomentsRef;

// Tokens a sample contributes to throughput, where tokens mean something (language models).
int64_t tokens_per_sample(const config::ModelConfig& m) {
  return m.has_gpt() ? m.gpt().context() : 0;
}

// Tensor parallel: the model on the layout's TP group. A model that does not split over it (heads,
// MLP width or vocabulary not divisible) is a config error: name the field.
std::unique_ptr<models::Model> make_tp_model(const config::Config& cfg,
                                             const distributed::ParallelLayout& layout,
                                             Device device) {
  if (layout.tp_size() == 1) return models::make_model(cfg.model(), nullptr, device);
  try {
    return models::make_model(cfg.model(), &layout.tp(), device);
  } catch (const Error& e) {
    throw_error(absl::StrCat("parallel.tensor_parallel = ", layout.tp_size(),
                             " does not divide the model: ", e.what()));
  }
}

// MFU's denominator: the peak of every rank's cores (or GPUs) together; on a GPU the matmul rate
// in the training precision, measured now.
struct PeakFlops {
  double flops = 0;
  std::string source;  // for the start report
};
PeakFlops peak_flops(const config::Config& cfg, Device device, int world_size) {
  if (cfg.train().peak_flops() > 0)
    return {cfg.train().peak_flops() * world_size, "train.peak_flops"};
  const DType dtype =
      cfg.train().precision() == config::TrainConfig::BF16 ? DType::bf16 : DType::f32;
  return {ops::matmul_peak_gflops(device, dtype) * 1e9 * world_size,
          device.is_cpu()
              ? std::string("f32 sgemm measured now")
              : absl::StrCat(dtype_name(dtype), " matmul on ", device.str(), " measured now")};
}

// The Adam moments (and the EMA of the weights, when kept) as checkpoints hold them, in the
// optimizer's layout.
MomentsRef moments(const Optimizer& optimizer, const Ema* ema) {
  return {optimizer.m(), optimizer.v(), optimizer.zero_shards(),
          ema ? ema->buffer() : tessera::Tensor()};
}

// The state a checkpoint saves after `step`.
void advance(checkpoint::TrainProgress& progress, int64_t step, const StepResult& result,
             int64_t global_batch) {
  progress.step = step;
  progress.next_position += global_batch;
  progress.loss = result.loss;
  progress.lr = result.lr;
  progress.grad_norm = result.grad_norm;
  if (!result.applied) ++progress.skipped_steps;
}

// A non-finite step was skipped (the parameters are unchanged) and is reported; train.max_bad_steps
// of them in a row end the run, which is then not recovering by itself.
class NonFiniteSteps {
 public:
  NonFiniteSteps(int max_in_a_row, bool report) : max_(max_in_a_row), report_(report) {}

  // False when the run ends here.
  bool tolerate(int64_t step, const StepResult& r) {
    if (r.applied) {
      in_a_row_ = 0;
      return true;
    }
    if (report_) {
      std::fprintf(stderr,
                   "tessera train: step %lld: non-finite %s (loss %g, grad norm %g); step "
                   "skipped\n",
                   (long long)step, std::isfinite(r.loss) ? "gradients" : "loss", r.loss,
                   r.grad_norm);
    }
    if (++in_a_row_ < max_) return true;
    if (report_) {
      std::fprintf(stderr,
                   "tessera train: %d non-finite steps in a row (train.max_bad_steps); "
                   "stopping at step %lld\n",
                   in_a_row_, (long long)step);
    }
    return false;
  }

 private:
  int max_, in_a_row_ = 0;
  bool report_;
};

// TESSERA_MEMORY_TRACE=1: one stderr line per rank at the points of start-up and of the first
// steps where memory changes: resident and peak resident (VmRSS, VmHWM of /proc/self/status),
// the address space (VmSize, what ulimit -v limits) and the CPU caching allocator's bytes in use
// and cached. How docs/DISTRIBUTED.md's start-up breakdown was measured.
void memory_trace(const distributed::ParallelLayout& layout, const std::string& point) {
  static const bool on = [] {
    const char* v = std::getenv("TESSERA_MEMORY_TRACE");
    return v != nullptr && std::string(v) == "1";
  }();
  if (!on) return;
  std::ifstream status("/proc/self/status");
  std::string line, out;
  while (std::getline(status, line)) {
    for (const char* key : {"VmSize:", "VmHWM:", "VmRSS:"}) {
      if (line.rfind(key, 0) == 0) {
        const int64_t kib = std::stoll(line.substr(std::string(key).size()));
        absl::StrAppend(&out, " ", std::string(key), " ", kib / 1024, " MiB");
      }
    }
  }
  if (auto* caching = dynamic_cast<CachingAllocator*>(&allocator_for(Device::cpu()))) {
    const CachingAllocatorStats st = caching->stats();
    absl::StrAppend(&out, " allocator in use ", st.bytes_in_use >> 20, " MiB, cached ",
                    st.bytes_cached >> 20, " MiB");
  }
  std::fprintf(stderr, "memory trace rank %d: %-22s%s\n", layout.world_rank(), point.c_str(),
               out.c_str());
}

// ZeRO-3 with several data-parallel ranks (make_optimizer's ZeroAdamW at stage 3): the
// parameters are never built whole (docs/DISTRIBUTED.md "Stage 3", Start-up).
bool shard_only_start(const config::Config& cfg, const distributed::ParallelLayout& layout) {
  return cfg.parallel().zero_stage() == 3 && layout.dp_size() > 1;
}

void shard_parameters(models::Model& model, const Optimizer& optimizer,
                      const distributed::ParallelLayout& layout, uint64_t seed) {
  if (optimizer.zero_stage() != 3) return;
  // ZeRO-3 (docs/DISTRIBUTED.md "Stage 3"): before anything reads the parameters, each rank
  // allocates only its shard, in the optimizer's layout, and initialises its ranges (bitwise the
  // values of a full init); a restore or init_from then reads only those ranges of the
  // checkpoint. Forward and backward gather the units as they read them.
  models::ParamStore& params = model.params();
  params.shard_params(&layout.dp(), *optimizer.zero_shards());
  params.init_shards(seed);
  params.set_auto_gather(true);
  params.reset_gathered_peak();
  params.take_gather_bytes();
}

}  // namespace

Device training_device(const config::Config& cfg) {
  if (cfg.train().device() != config::TrainConfig::CUDA) return Device::cpu();
  try {
    const Device device = distributed::local_cuda_device();
    make_current(device);
    return device;
  } catch (const Error& e) {
    throw_error(absl::StrCat("train.device = CUDA: ", e.what()));
  }
}

Trainer::Trainer(const config::Config& config, std::string run_dir, bool quiet,
                 distributed::Communicator* world)
    : config_(config),
      run_dir_(std::move(run_dir)),
      quiet_(quiet),
      layout_(world ? distributed::ParallelLayout(*world, config.parallel().tensor_parallel())
                    : distributed::ParallelLayout::local()),
      device_(training_device(config)) {
  TESSERA_CHECK(world || config_.parallel().tensor_parallel() <= 1,
                "parallel.tensor_parallel = ", config_.parallel().tensor_parallel(),
                " needs as many ranks: start tessera train under mpirun or srun");
  const int64_t G = config_.data().global_batch_size(), M = config_.train().micro_batches();
  TESSERA_CHECK(G % (int64_t(layout_.dp_size()) * M) == 0, "data.global_batch_size = ", G,
                " is not divisible by ", layout_.dp_size(), " data-parallel ranks x ", M,
                " micro-batches (train.micro_batches)");
  // Only rank 0 writes the run directory; a failure there ends the job on every rank.
  if (leader()) {
    std::error_code ec;
    std::filesystem::create_directories(run_dir_, ec);
    TESSERA_CHECK(!ec, "run directory ", run_dir_, ": ", ec.message());
    std::ofstream f(run_dir_ + "/config.pbtxt");
    f << config_to_text(config_);
    TESSERA_CHECK(f.good(), run_dir_, "/config.pbtxt: write failed");
  }
  memory_trace(layout_, "before the model");
  model_ = make_tp_model(config_, layout_, device_);
  freeze_parameters(config_, model_->params());  // train.freeze: before any buffer is sized
  // parallel.vocab_slice_bytes: GPT's vocabulary tables in row slices (ZeRO-3 gathers one at a
  // time), at every stage so that the stages run the same arithmetic; before the optimizer cuts
  // its shards at the units. CPU only for now: the slices' column copies work on either device
  // (ops::copy_tokens), but on CUDA slicing would change the arithmetic of runs validated on GPUs
  // with code that has not run on one; it comes with ZeRO-3 on CUDA (docs/ZERO3_PLAN.md).
  if (device_.is_cpu()) model_->params().set_slice_bytes(config_.parallel().vocab_slice_bytes());
  uploader_ = std::make_unique<Uploader>(device_, model_->host_inputs());
  // CLIP/SigLIP score each image against the whole global batch: the loss spans the DP group
  // (and scales its gradients for GradSync's average; models/distributed_contrastive_loss.h).
  if (auto* clip = dynamic_cast<models::Clip*>(model_.get())) {
    clip->set_data_parallel(&layout_.dp());
  }
  if (config_.train().precision() == config::TrainConfig::BF16) {
    model_->params().set_compute_dtype(DType::bf16);
  }
  // ZeRO-3: the shards are initialised in prepare(), once their layout exists; the full buffer
  // is never allocated (ParamStore allocates it on first use only).
  if (!shard_only_start(config_, layout_)) model_->params().init(config_.train().seed());
  model_->set_seed(config_.train().seed());
  configure_model_recipes(*model_, config_);  // label smoothing (train/recipes.h)
  memory_trace(layout_, "model initialised");
}

// A Trainer whose run() left by an exception on one of several ranks still holds its components
// (run() below); its owner destroying it releases them in the same order.
Trainer::~Trainer() {
  release();
}

int Trainer::run() {
  // The components go however run() ends (return or exception): the gradient hook and a
  // background checkpoint write point into them. Except while an exception unwinds on one of
  // several ranks: releasing them waits for this rank's collectives in flight (~GradSync, the
  // communicators' threads; at ZeRO-3 also gathers), which the peers may never join since they
  // go on with the step this rank left, so the rank would hang before its error is ever printed
  // (issue 20). The owner decides instead: `tessera train` keeps the Trainer alive, since
  // run_or_abort's MPI_Abort follows (train/run_train.cc); an owner that destroys it gets the same
  // ordered release from ~Trainer (the tests whose every rank throws the same error).
  const int uncaught_before = std::uncaught_exceptions();
  const absl::Cleanup released = [this, uncaught_before] {
    if (layout_.world_size() > 1 && std::uncaught_exceptions() > uncaught_before) return;
    release();
  };
  prepare();
  memory_trace(layout_, "optimizer, shards, sync");
  checkpoint::TrainProgress progress = restore();
  memory_trace(layout_, "restored");
  rss_before_steps_ = current_rss_bytes();
  NonFiniteSteps non_finite(config_.train().max_bad_steps(), leader());
  const int64_t first_step = progress.step + 1;
  for (int64_t step = first_step; step <= config_.train().steps(); ++step) {
    const StepResult result = train_step(step, progress.next_position);
    if (step < first_step + 2) memory_trace(layout_, absl::StrCat("after step ", step));
    advance(progress, step, result, config_.data().global_batch_size());
    if (!non_finite.tolerate(step, result)) return kExitError;
    const bool stop = checkpoint_boundary(progress);
    if (result.applied) {  // a skipped step has no metrics and is not worth evaluating
      logger_->log_step(step, result, progress.skipped_steps);
      if (evaluator_->due(step)) logger_->write(evaluator_->evaluate(*data_, step));
    }
    if (stop) {
      checkpointer_->stop();
      return kExitResumable;
    }
  }
  finish();
  return kExitOk;
}

void Trainer::prepare() {
  const config::Config& cfg = config_;
  models::ParamStore& params = model_->params();
  optimizer_ = make_optimizer(params, cfg, layout_);
  // ZeRO-2/3: per-parameter gradient staging from the start, so the flat gradient buffer is
  // never allocated; the GradSync is built below, after the parameters are sharded.
  if (optimizer_->zero_stage() >= 2) params.stage_grads();
  // The constructor skipped init() by shard_only_start(); the optimizer must be the one that
  // shards, or training would start from unset parameters.
  TESSERA_CHECK((optimizer_->zero_stage() == 3) == shard_only_start(config_, layout_),
                "trainer: parallel.zero_stage ", config_.parallel().zero_stage(), " on ",
                layout_.dp_size(), " data-parallel ranks gave an optimizer at ZeRO stage ",
                optimizer_->zero_stage(), "; the start-up assumed the other");
  shard_parameters(*model_, *optimizer_, layout_, cfg.train().seed());
  if (cfg.train().ema_decay() > 0) {  // sharded as the optimizer's state (train/ema.h)
    ema_ = std::make_unique<Ema>(params, optimizer_->zero_shards(), cfg.train().ema_decay(),
                                 cfg.train().ema_warmup());
  }
  data_ = make_data_source(cfg);
  const int64_t global_batch = cfg.data().global_batch_size();
  const PeakFlops peak = peak_flops(cfg, device_, layout_.world_size());
  const StepCost cost{global_batch, tokens_per_sample(cfg.model()),
                      model_->train_flops(global_batch), peak.flops};
  logger_ = std::make_unique<StepLogger>(
      cfg, cost, device_,
      leader() ? std::make_unique<MetricsWriter>(run_dir_ + "/metrics.jsonl") : nullptr,
      leader() && !quiet_);
  evaluator_ = std::make_unique<Evaluator>(cfg, layout_, *model_, *uploader_, leader() && !quiet_);
  // Gradient averaging over the DP group, bucket by bucket as backward finalises them.
  if (layout_.dp_size() > 1) {
    sync_ = optimizer_->make_grad_sync(layout_.dp(), cfg.parallel().bucket_bytes());
    params.set_grad_ready_hook([this](int64_t ready) {
      sync_->on_ready(ready);
      // Testing hook (train/fault_injection.h): fail with buckets in flight and more to come.
      const int64_t launched = sync_->launched_buckets();
      if (launched > 0 && launched < sync_->num_buckets()) {
        fail_in_backward_if_asked(layout_.world(), step_, launched, sync_->num_buckets());
      }
    });
    if (cfg.parallel().reduce_tied_grad_early() && sync_->staged()) {
      // GPT's tied embedding: the head's part of its gradient reduced at once (ParamStore::
      // grad_partial_done, GradSync::reduce_partial).
      params.set_grad_partial_hook([this, &params](models::ParamId id) {
        sync_->reduce_partial(params.info(id).offset, params.hand_over_grad(id));
      });
    }
  }
  if (leader() && !quiet_) report_start(peak.flops, peak.source);

  // Checkpoints (checkpoint/checkpoint.h): resume, save every checkpoint.every_steps and at the
  // end, stop on SIGTERM/SIGUSR1 after saving.
  checkpointer_ = std::make_unique<checkpoint::Checkpointer>(cfg, run_dir_, layout_, !quiet_);
  logger_->add_source([this](nlohmann::json& record, int) {
    checkpointer_->report_stall(record);  // ckpt_stall_ms, ckpt_step after a save
  });
  if (sync_) {
    logger_->add_source([this](nlohmann::json& record, int window_steps) {
      record["allreduce_hidden"] = sync_->stats().hidden_fraction();
      record["allreduce_wait_ms"] = sync_->stats().wait_seconds * 1e3 / window_steps;
      record["allreduce_bytes"] = sync_->stats().bytes / window_steps;  // per step
      // Data-parallel bytes each rank sends per step, as a ring moves them: an all-reduce
      // 2(n-1)/n of its buffer, a reduce-scatter or all-gather (n-1)/n; the gradient collectives
      // plus ZeRO's parameter all-gather (tensor-parallel traffic is not counted).
      const double n = layout_.dp_size(), share = (n - 1) / n;
      const double grads = double(sync_->stats().bytes + sync_->stats().partial_bytes) * share *
                           (sync_->reduce_scatter() ? 1 : 2);
      const int64_t gathered = optimizer_->take_comm_bytes();
      record["dp_comm_bytes"] = (grads + share * double(gathered)) / window_steps;
      models::ParamStore& store = model_->params();
      if (store.params_sharded()) {
        // ZeRO-3: the units' all-gathers (output bytes, per step), the most gathered parameter
        // bytes resident at once on this rank since the last record, and this rank's shard.
        record["param_gather_bytes"] = gathered / window_steps;
        record["param_gathered_peak_bytes"] = store.gathered_bytes_peak();
        record["param_shard_bytes"] = int64_t(store.param_shards().nbytes());
        store.reset_gathered_peak();
        // The share of gather time hidden by prefetch (1 - wait / comm, as allreduce_hidden),
        // the time forward and backward blocked on gathers and the gathers on demand, per step.
        const models::ParamStore::GatherStats& g = store.gather_stats();
        record["param_gather_hidden"] = g.hidden_fraction();
        record["param_gather_wait_ms"] = g.wait_seconds * 1e3 / window_steps;
        record["param_gather_misses"] = double(g.misses) / window_steps;
        store.reset_gather_stats();
      }
      // Gradient storage resident at most since the last record on this rank (ZeRO-2 stages
      // gradients per parameter; otherwise the flat buffer).
      record["grad_peak_bytes"] = model_->params().grad_bytes_peak();
      model_->params().reset_grad_peak();
      sync_->reset_stats();
    });
  }
}

void Trainer::release() {
  // As locals of run() would go: the checkpointer joins its background write first, and the
  // gradient hook is taken down before the GradSync it calls.
  checkpointer_.reset();
  ema_.reset();
  model_->params().set_grad_ready_hook(nullptr);
  model_->params().set_grad_partial_hook(nullptr);
  sync_.reset();
  evaluator_.reset();
  logger_.reset();
  data_.reset();
  optimizer_.reset();
}

void Trainer::report_start(double peak_flops, const std::string& peak_source) const {
  const models::ParamStore& params = model_->params();
  const int64_t local_micro =
      config_.data().global_batch_size() / config_.train().micro_batches() / layout_.dp_size();
  StartReport r;
  r.model_kind = models::model_kind(config_);
  r.layout = layout_.describe();
  r.run_dir = run_dir_;
  r.device = device_;
  r.threads = num_threads();
  r.parameters = params.numel();
  if (optimizer_->zero_stage() == 3) {
    // ZeRO-3: this rank's shard (in the optimizer's layout) plus, gathered at once, at most two
    // units as the automatic gathering keeps them (the largest two; measured per step as
    // param_gathered_peak_bytes in metrics.jsonl). The parameters are sharded already.
    int64_t largest = 0, second = 0;
    for (const models::GatherUnit& u : params.units()) {
      const int64_t b = int64_t(sizeof(float)) * u.numel;
      if (b > largest) {
        second = largest;
        largest = b;
      } else {
        second = std::max(second, b);
      }
    }
    r.param_bytes = int64_t(sizeof(float)) * optimizer_->zero_shards()->shard_numel;
    r.param_gathered_bytes = largest + second;
  } else {
    r.param_bytes = params.params().nbytes();
  }
  r.grads_staged = params.grads_staged();
  if (r.grads_staged) {
    // ZeRO-2 staging: gradients written but not yet reduce-scattered: the bucket being filled
    // and a parameter straddling into the next, plus the largest parameter (GPT's tied embedding
    // lives through the whole backward); rounded up to two buckets and the two largest
    // parameters. Measured per step as grad_peak_bytes in metrics.jsonl.
    int64_t largest = 0, second = 0;
    for (const models::ParamInfo& info : params.infos()) {
      if (info.numel > largest) {
        second = largest;
        largest = info.numel;
      } else {
        second = std::max(second, info.numel);
      }
    }
    r.grad_bytes = int64_t(sizeof(float)) * (largest + second) +
                   2 * std::min<int64_t>(config_.parallel().bucket_bytes(),
                                         int64_t(sizeof(float)) * params.trainable_numel());
  } else {
    r.grad_bytes = params.grads().nbytes();
  }
  r.optimizer_bytes = optimizer_->state_bytes();
  r.zero_buffer_bytes = optimizer_->buffer_bytes() + (sync_ ? sync_->buffer_bytes() : 0);
  r.zero_shards = optimizer_->zero_shards();
  r.zero_stage_requested = config_.parallel().zero_stage();
  r.zero_stage = optimizer_->zero_stage();
  r.activation_bytes = model_->activation_bytes(local_micro);
  r.frozen = describe_frozen(params);
  // What GradSync averages per optimizer step: the trainable gradients only.
  if (layout_.dp_size() > 1) {
    r.allreduce_bytes = int64_t(sizeof(float)) * params.trainable_numel();
  }
  r.peak_flops = peak_flops;
  r.peak_source = peak_source;
  r.several_ranks = layout_.world_size() > 1;
  if (device_.is_cpu()) r.cpu_paths = ops::cpu_paths_summary();
  print_start_report(r);
}

checkpoint::TrainProgress Trainer::restore() {
  checkpoint::TrainProgress progress;
  if (auto p =
          checkpointer_->restore(resume_, model_->params(), moments(*optimizer_, ema_.get()))) {
    progress = *p;
    optimizer_->set_steps_taken(progress.optimizer_steps);
  } else {
    // A fresh start: from another run's parameters when the config's init section says so.
    init_from_checkpoint(config_, model_->params(), leader() && !quiet_);
    // The EMA was made from the random init; a run started from trained weights averages those.
    if (ema_ && config_.has_init()) ema_->reset(model_->params());
  }
  return progress;
}

StepResult Trainer::train_step(int64_t step, int64_t position) {
  step_ = step;
  Timer step_timer;
  StepResult result;
  models::ParamStore& params = model_->params();
  const int64_t micro_batches = config_.train().micro_batches();
  const int64_t micro = config_.data().global_batch_size() / micro_batches;  // all ranks
  const int64_t local_micro = micro / layout_.dp_size();                     // this rank's share
  // This rank's slice of micro-batch mb, on the training device: positions depend on the global
  // batch only, never on how many ranks share it.
  auto host_batch = [&](int64_t mb) {
    Timer data_timer;
    const int64_t first = position + mb * micro + layout_.dp_rank() * local_micro;
    models::Batch batch = data_->batch(first, local_micro);
    apply_batch_recipes(config_, first, batch);  // mixup/CutMix (train/recipes.h)
    result.data_s += data_timer.seconds();
    return batch;
  };
  auto fetch = [&](int64_t mb) { return uploader_->upload(host_batch(mb)); };
  // ZeRO-3: the step's first units gather (in the recorded order) while the batch is read.
  if (params.params_sharded()) params.begin_gather_step();
  params.zero_grads();
  double loss = 0;
  // CLIP/SigLIP with several micro-batches: accumulation that keeps the whole batch's negatives
  // (train/grad_cache.h) instead of the loop below.
  auto* clip = dynamic_cast<models::Clip*>(model_.get());
  const bool grad_cache = clip && micro_batches > 1;
  if (grad_cache) {
    std::vector<models::Batch> host;
    for (int64_t mb = 0; mb < micro_batches; ++mb) host.push_back(host_batch(mb));
    loss = grad_cache_step(*clip, host, *uploader_, sync_.get());
  }
  Uploader::Pending next = grad_cache ? Uploader::Pending{} : fetch(0);
  for (int64_t mb = 0; !grad_cache && mb < micro_batches; ++mb) {
    const models::Batch batch = uploader_->ready(std::move(next));
    // On a GPU the next micro-batch's copies run on the copy stream while this one computes.
    if (mb + 1 < micro_batches) next = fetch(mb + 1);
    // Only the last micro-batch communicates, or every one under ZeRO-2 (GradSync decides).
    if (sync_) sync_->begin_micro_batch(mb, micro_batches);
    // Each backward finalises the gradients anew: the progress that lets GradSync start
    // buckets during backward restarts with every micro-batch (zero_grads only restarts it
    // once per step).
    params.reset_grad_progress();
    loss +=
        model_->forward_backward(batch, 1.0f / float(micro_batches)).loss / double(micro_batches);
    if (sync_) sync_->finish();  // waits for the buckets still in flight (only when enabled)
  }
  // ZeRO-3: the step changes the shards, so no gathered copy may outlive it.
  if (params.params_sharded()) params.release_all();
  // Every rank takes the same decisions below: the loss is averaged over DP, and the gradients
  // (hence the norm) are already identical.
  result.loss = dp_average(layout_, loss);
  result.lr = learning_rate(config_.optim(), config_.schedule(), step, config_.train().steps());
  if (std::isfinite(result.loss)) {
    const StepStats stats = optimizer_->step(result.lr);
    result.grad_norm = stats.grad_norm;
    result.applied = stats.applied;
    if (ema_ && stats.applied) ema_->update(params, optimizer_->steps_taken());
  }
  result.step_s = step_timer.seconds();
  return result;
}

bool Trainer::checkpoint_boundary(checkpoint::TrainProgress& progress) {
  progress.optimizer_steps = optimizer_->steps_taken();
  return checkpointer_->end_of_step(model_->params(), moments(*optimizer_, ema_.get()), progress,
                                    config_.train().steps());
}

void Trainer::finish() {
  checkpointer_->finish();  // an async save of the final state
  if (Profiler::enabled() && leader()) {
    std::printf("time per op family (TESSERA_PROFILE=1):\n%s", Profiler::report().c_str());
  }
  if (leader() && !quiet_) {
    print_end_report(config_.train().steps(), rss_before_steps_, device_,
                     uploader_->staging_bytes(), run_dir_);
  }
}

}  // namespace tessera::train
