#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "checkpoint/checkpoint.h"
#include "core/caching_allocator.h"
#include "core/preemption.h"
#include "core/threads.h"
#include "core/timer.h"
#include "core/upload.h"
#include "distributed/grad_sync.h"
#include "distributed/make_communicator.h"
#include "distributed/mpi_communicator.h"
#include "models/clip.h"
#include "models/factory.h"
#include "ops/machine_peaks.h"
#include "train/config.h"
#include "train/data_source.h"
#include "train/lr_schedule.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/run_report.h"
#include "train/zero_optimizer.h"

namespace tessera::train {
namespace {

std::string default_run_dir(const std::string& config_path) {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::gmtime(&now));
  return absl::StrCat("runs/", std::filesystem::path(config_path).stem().string(), "-", stamp);
}

// Tokens a sample contributes to throughput, where tokens mean something (language models).
int64_t tokens_per_sample(const config::ModelConfig& m) {
  return m.has_gpt() ? m.gpt().context() : 0;
}

// train.device: the CPU, or this rank's GPU (its local rank modulo the node's GPUs).
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

int train(const TrainOptions& opt) {
  // SIGTERM / SIGUSR1: save at the next step boundary, exit 75. First, before any thread exists.
  preemption::install_stop_handlers();
  absl::StatusOr<config::Config> loaded = load_config(opt.config_path, opt.overrides);
  if (!loaded.ok()) {
    std::cerr << "tessera train: " << loaded.status().message() << "\n";
    return kExitError;
  }
  const config::Config& cfg = *loaded;
  if (cfg.train().threads() > 0) set_num_threads(cfg.train().threads());
  const std::string run_dir = opt.run_dir.empty() ? default_run_dir(opt.config_path) : opt.run_dir;

  if (!distributed::launched_by_mpi()) {
    Trainer trainer(cfg, run_dir, opt.quiet);
    trainer.set_resume(opt.resume);
    return trainer.run();
  }
  // Several ranks: a rank that fails inside a step prints its error once and aborts the job, so
  // no other rank waits forever in a collective (docs/DESIGN.md decision 7).
  distributed::MpiEnvironment mpi;
  return distributed::run_or_abort([&] {
    // CPU: MPI. CUDA: NCCL for device tensors, MPI for host values (routed_communicator.h).
    distributed::CommunicatorOptions comm_options;
    comm_options.timeout_s = cfg.parallel().collective_timeout_s();
    auto world = distributed::make_world_communicator(training_device(cfg), comm_options);
    Trainer trainer(cfg, run_dir, opt.quiet, world.get());
    trainer.set_resume(opt.resume);
    return trainer.run();
  });
}

}  // namespace

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
  model_ = make_tp_model(config_, layout_, device_);
  uploader_ = std::make_unique<Uploader>(device_, model_->host_inputs());
  // CLIP/SigLIP score each image against the whole global batch: the loss spans the DP group
  // (and scales its gradients for GradSync's average; models/distributed_contrastive_loss.h).
  if (auto* clip = dynamic_cast<models::Clip*>(model_.get())) {
    clip->set_data_parallel(&layout_.dp());
  }
  if (config_.train().precision() == config::TrainConfig::BF16) {
    model_->params().set_compute_dtype(DType::bf16);
  }
  model_->params().init(config_.train().seed());
  model_->set_seed(config_.train().seed());
}

double Trainer::average_over_dp(double value) {
  if (layout_.dp_size() == 1) return value;
  Tensor t = Tensor::empty({1}, DType::f32);
  t.data<float>()[0] = static_cast<float>(value);
  layout_.dp().all_reduce(t, distributed::ReduceOp::kAvg)->wait();
  return t.data<float>()[0];
}

Trainer::~Trainer() = default;

nlohmann::json Trainer::evaluate(const DataSource& data, int64_t step) {
  if (!eval_opened_) {
    eval_path_ = eval_source(config_);
    if (!eval_path_.empty()) eval_data_ = make_data_source(config_, eval_path_, /*training=*/false);
    eval_opened_ = true;
  }
  // A held-out manifest is read from its start, so every evaluation sees the same samples.
  // Without one, positions far beyond any the run trains on: for synthetic data (keyed by
  // position) these samples never appear in training; for shards they are a later epoch of the
  // training split (seen data: the record says so with "source": "train").
  const DataSource& source = eval_data_ ? *eval_data_ : data;
  const int64_t base = eval_data_ ? 0 : kFarAheadPosition;
  const int64_t batch = config_.data().global_batch_size() / config_.train().micro_batches();
  const int64_t slice = batch / layout_.dp_size();
  double loss = 0;
  const int batches = std::max(1, config_.eval().batches());
  for (int i = 0; i < batches; ++i) {
    const int64_t first = base + i * batch + layout_.dp_rank() * slice;
    loss += model_->forward_loss(uploader_->upload_now(source.batch(first, slice))).loss / batches;
  }
  loss = average_over_dp(loss);
  const std::string name = eval_data_ ? eval_path_ : std::string("train");
  if (!quiet_ && leader())
    std::printf("eval  %6lld | loss %.4f over %d batches of %s\n", (long long)step, loss, batches,
                name.c_str());
  return {{"kind", "eval"}, {"step", step}, {"loss", loss}, {"batches", batches}, {"source", name}};
}

int Trainer::run() {
  const config::Config& cfg = config_;
  models::ParamStore& params = model_->params();
  // --- ZeRO-1 (parallel.zero_stage = 1, several DP ranks): the optimizer holds only this rank's
  // shards of m, v and the decay mask, GradSync reduce-scatters into its gradient shard, and its
  // step all-gathers the parameters (train/zero_optimizer.h). Otherwise plain AdamW.
  const bool zero1 = cfg.parallel().zero_stage() == 1 && layout_.dp_size() > 1;
  std::unique_ptr<AdamW> adamw;
  std::unique_ptr<ZeroAdamW> zero;
  if (zero1) {
    zero = std::make_unique<ZeroAdamW>(params, cfg.optim(), layout_.dp(),
                                       cfg.parallel().bucket_bytes());
  } else {
    adamw = std::make_unique<AdamW>(params, cfg.optim());
  }
  const int64_t optimizer_bytes = zero ? zero->state_bytes() : adamw->state_bytes();
  // --- end ZeRO-1
  std::unique_ptr<DataSource> source = make_data_source(cfg);
  const DataSource& data = *source;
  std::unique_ptr<MetricsWriter> metrics;
  if (leader()) metrics = std::make_unique<MetricsWriter>(run_dir_ + "/metrics.jsonl");
  const bool print = leader() && !quiet_;

  const int dp = layout_.dp_size(), dp_rank = layout_.dp_rank();
  const int64_t global_batch = cfg.data().global_batch_size();
  const int64_t micro_batches = cfg.train().micro_batches();
  const int64_t micro = global_batch / micro_batches;  // samples per micro-batch, all ranks
  const int64_t local_micro = micro / dp;              // this rank's share of it
  const int64_t steps = cfg.train().steps();
  // MFU: the model FLOPs of a global batch over the peak of every rank's cores (or GPUs) together;
  // on a GPU the matmul rate in the training precision, measured now.
  const DType matmul_dtype =
      cfg.train().precision() == config::TrainConfig::BF16 ? DType::bf16 : DType::f32;
  const double peak_flops =
      (cfg.train().peak_flops() > 0 ? cfg.train().peak_flops()
                                    : ops::matmul_peak_gflops(device_, matmul_dtype) * 1e9) *
      layout_.world_size();
  const double step_flops = model_->train_flops(global_batch);
  const int64_t tokens = tokens_per_sample(cfg.model());

  // Gradient averaging over the DP group, bucket by bucket as backward finalises them.
  std::unique_ptr<distributed::GradSync> sync;
  if (dp > 1) {
    sync = zero ? std::make_unique<distributed::GradSync>(layout_.dp(), params.grads(),
                                                          zero->shards(), zero->shard_grads())
                : std::make_unique<distributed::GradSync>(layout_.dp(), params.grads(),
                                                          cfg.parallel().bucket_bytes());
    params.set_grad_ready_hook([&](int64_t ready) { sync->on_ready(ready); });
  }
  // The hook points into this frame: take it down however run() ends (return or exception).
  struct HookReset {
    models::ParamStore& store;
    ~HookReset() { store.set_grad_ready_hook(nullptr); }
  } hook_reset{params};

  if (print) {
    StartReport r;
    r.model_kind = models::model_kind(cfg);
    r.layout = layout_.describe();
    r.run_dir = run_dir_;
    r.device = device_;
    r.threads = num_threads();
    r.parameters = params.numel();
    r.param_bytes = params.params().nbytes();
    r.grad_bytes = params.grads().nbytes();
    r.optimizer_bytes = optimizer_bytes;
    r.activation_bytes = model_->activation_bytes(local_micro);
    r.zero1 = zero != nullptr;
    r.zero1_requested = cfg.parallel().zero_stage() == 1;
    if (zero) {
      r.zero_buffer_bytes = zero->buffer_bytes();
      r.zero_shard_elements = zero->shards().shard_numel;
      r.zero_shards = zero->shards().describe();
    }
    r.peak_flops = peak_flops;
    r.peak_source = cfg.train().peak_flops() > 0 ? "train.peak_flops"
                    : device_.is_cpu()           ? "f32 sgemm measured now"
                                       : absl::StrCat(dtype_name(matmul_dtype), " matmul on ",
                                                      device_.str(), " measured now");
    r.several_ranks = layout_.world_size() > 1;
    if (device_.is_cpu()) r.cpu_paths = ops::cpu_paths_summary();
    print_start_report(r);
  }

  // --- Checkpoints (train/checkpointer.h): resume, save every checkpoint.every_steps and at the
  // end, stop on SIGTERM/SIGUSR1 after saving.
  checkpoint::Checkpointer ckpt(cfg, run_dir_, layout_, !quiet_);
  const checkpoint::MomentsRef moments =
      zero ? checkpoint::MomentsRef{zero->m(), zero->v(), &zero->shards()}
           : checkpoint::MomentsRef{adamw->m(), adamw->v(), nullptr};
  // Where this run starts; the state after the last step.
  checkpoint::TrainProgress start, progress;
  if (auto p = ckpt.restore(resume_, params, moments)) {
    start = *p;
    if (zero) zero->set_steps_taken(start.optimizer_steps);
    if (adamw) adamw->set_steps_taken(start.optimizer_steps);
  }
  progress = start;
  // At every step boundary: save when due; true when all ranks stop here (a stop signal).
  auto checkpoint_boundary = [&] {
    progress.optimizer_steps = zero ? zero->steps_taken() : adamw->steps_taken();
    return ckpt.end_of_step(params, moments, progress, steps);
  };
  // --- end checkpoints

  const int64_t rss_before_steps = current_rss_bytes();
  int bad_in_a_row = 0;
  int64_t skipped = start.skipped_steps;
  double window_loss = 0, window_data_s = 0, window_step_s = 0;
  int window_steps = 0;
  for (int64_t step = start.step + 1; step <= steps; ++step) {
    Timer step_timer;
    double data_s = 0, loss = 0;
    // This rank's slice of micro-batch mb of this step's global batch, on the training device:
    // positions depend on the global batch only, never on how many ranks share it.
    auto fetch = [&](int64_t mb) {
      Timer data_timer;
      const int64_t first = start.next_position + (step - 1 - start.step) * global_batch +
                            mb * micro + dp_rank * local_micro;
      Uploader::Pending batch = uploader_->upload(data.batch(first, local_micro));
      data_s += data_timer.seconds();
      return batch;
    };
    params.zero_grads();
    Uploader::Pending next = fetch(0);
    for (int64_t mb = 0; mb < micro_batches; ++mb) {
      const models::Batch batch = uploader_->ready(std::move(next));
      // On a GPU the next micro-batch's copies run on the copy stream while this one computes.
      if (mb + 1 < micro_batches) next = fetch(mb + 1);
      if (sync) sync->set_enabled(mb == micro_batches - 1);
      // Each backward finalises the gradients anew: the progress that lets GradSync start
      // buckets during backward restarts with every micro-batch (zero_grads only restarts it
      // once per step).
      params.reset_grad_progress();
      loss +=
          model_->forward_backward(batch, 1.0f / float(micro_batches)).loss / double(micro_batches);
      if (sync) sync->finish();  // waits for the buckets still in flight (only when enabled)
    }
    // Every rank takes the same decisions below: the loss is averaged over DP, and the gradients
    // (hence the norm) are already identical.
    loss = average_over_dp(loss);
    const double lr = learning_rate(cfg.optim(), cfg.schedule(), step, steps);
    StepStats stats;
    if (std::isfinite(loss)) stats = zero ? zero->step(lr) : adamw->step(lr);
    progress.step = step;
    progress.next_position = start.next_position + (step - start.step) * global_batch;
    progress.loss = loss;
    progress.lr = lr;
    progress.grad_norm = stats.grad_norm;
    if (!stats.applied) {
      ++skipped;
      if (leader()) {
        std::fprintf(stderr,
                     "tessera train: step %lld: non-finite %s (loss %g, grad norm %g); step "
                     "skipped\n",
                     (long long)step, std::isfinite(loss) ? "gradients" : "loss", loss,
                     stats.grad_norm);
      }
      if (++bad_in_a_row >= cfg.train().max_bad_steps()) {
        if (leader()) {
          std::fprintf(stderr,
                       "tessera train: %d non-finite steps in a row (train.max_bad_steps); "
                       "stopping at step %lld\n",
                       bad_in_a_row, (long long)step);
        }
        return kExitError;
      }
      progress.skipped_steps = skipped;
      if (checkpoint_boundary()) {
        ckpt.stop();
        return kExitResumable;
      }
      continue;
    }
    bad_in_a_row = 0;
    const double step_s = step_timer.seconds();
    const bool stop = checkpoint_boundary();
    window_loss += loss;
    window_data_s += data_s;
    window_step_s += step_s;
    ++window_steps;
    if (leader() && (step % cfg.log().every_steps() == 0 || step == steps)) {
      const double mean_step_s = window_step_s / window_steps;
      nlohmann::json rec = {{"step", step},
                            {"loss", window_loss / window_steps},
                            {"lr", lr},
                            {"grad_norm", stats.grad_norm},
                            {"samples_per_s", double(global_batch) / mean_step_s},
                            {"mfu", step_flops / mean_step_s / peak_flops},
                            {"step_ms", step_s * 1e3},
                            {"data_wait", window_data_s / window_step_s},
                            {"skipped_steps", skipped}};
      if (tokens > 0) rec["tokens_per_s"] = double(global_batch * tokens) / mean_step_s;
      if (device_.is_cuda()) {
        // cudaMalloc calls so far: flat after the first step when the caching allocator works.
        rec["cuda_mallocs"] =
            static_cast<CachingAllocator&>(allocator_for(device_)).stats().source_allocs;
      }
      ckpt.report_stall(rec);  // ckpt_stall_ms, ckpt_step after a save
      if (sync) {
        rec["allreduce_hidden"] = sync->stats().hidden_fraction();
        rec["allreduce_wait_ms"] = sync->stats().wait_seconds * 1e3 / window_steps;
        sync->reset_stats();
      }
      metrics->write(rec);
      if (print) {
        std::printf(
            "step %6lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.1f samples/s%s | mfu %.2f "
            "| data %.1f%% | %.0f ms\n",
            (long long)step, (long long)steps, window_loss / window_steps, lr, stats.grad_norm,
            double(global_batch) / mean_step_s,
            tokens > 0 ? absl::StrFormat(" %.0f tok/s", double(global_batch * tokens) / mean_step_s)
                             .c_str()
                       : "",
            step_flops / mean_step_s / peak_flops, 100 * window_data_s / window_step_s,
            step_s * 1e3);
        std::fflush(stdout);
      }
    }
    if (step % cfg.log().every_steps() == 0 || step == steps) {
      window_loss = window_data_s = window_step_s = 0;
      window_steps = 0;
    }
    if (cfg.eval().every_steps() > 0 && (step % cfg.eval().every_steps() == 0 || step == steps)) {
      nlohmann::json rec = evaluate(data, step);
      if (metrics) metrics->write(rec);
    }
    if (stop) {
      ckpt.stop();
      return kExitResumable;
    }
  }
  ckpt.finish();  // an async save of the final state
  if (Profiler::enabled() && leader()) {
    std::printf("time per op family (TESSERA_PROFILE=1):\n%s", Profiler::report().c_str());
  }
  if (print) {
    print_end_report(steps, rss_before_steps, device_, uploader_->staging_bytes(), run_dir_);
  }
  return kExitOk;
}

int run_train(const TrainOptions& options) {
  try {
    return train(options);
  } catch (const std::exception& e) {
    std::cerr << "tessera train: " << e.what() << "\n";
    return kExitError;
  }
}

}  // namespace tessera::train
