#include "checkpoint/checkpoint.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "checkpoint/commit.h"
#include "checkpoint/write.h"
#include "core/error.h"
#include "core/preemption.h"
#include "core/timer.h"
#include "models/factory.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

struct Checkpointer::Pending {
  TrainProgress progress;
  std::string tmp;
  // Host copies (async, or a device run) or views of the live buffers.
  tessera::Tensor params, m, v, ema;
  detail::RankState state;
  std::thread thread;
  std::atomic<bool> done{false};
  std::string error;  // this rank's write error
  double stall_ms = 0, write_ms = 0;
  int64_t bytes = 0;
};

namespace {

// `t` on the host: a copy when asked (async save) or when t lives on a device, else t itself.
tessera::Tensor host_state(const tessera::Tensor& t, bool copy_always) {
  if (!t.defined()) return t;
  if (!copy_always && t.device().is_cpu()) return t;
  tessera::Tensor out = tessera::Tensor::empty(t.shape(), t.dtype(), Device::cpu());
  copy(t, out);
  return out;
}

}  // namespace

Checkpointer::Checkpointer(const config::Config& config, const std::string& run_dir,
                           const distributed::ParallelLayout& layout, bool print)
    : config_(config),
      root_(run_dir + "/checkpoints"),
      layout_(layout),
      print_(print && layout.world_rank() == 0),
      async_(config.checkpoint().async()) {}

Checkpointer::~Checkpointer() {
  join();
}

void Checkpointer::join() {
  if (pending_ && pending_->thread.joinable()) pending_->thread.join();
}

bool Checkpointer::agree_ok(bool ok) {
  if (layout_.world_size() == 1) return ok;
  tessera::Tensor t = tessera::Tensor::empty({1}, DType::f32);
  t.data<float>()[0] = ok ? 0.0f : 1.0f;
  layout_.world().all_reduce(t, distributed::ReduceOp::kSum)->wait();
  return t.data<float>()[0] == 0.0f;
}

void Checkpointer::save(const models::ParamStore& params, const MomentsRef& moments,
                        const TrainProgress& progress) {
  double waited_ms = 0;
  if (pending_) {  // the previous async save: the stall it causes now counts for it
    Timer wait;
    finish();
    waited_ms = wait.ms();
  }
  Timer stall;
  const int rank = layout_.world_rank();
  detail::set_crash_step(progress.step);
  saved_step_ = progress.step;
  auto p = std::make_unique<Pending>();
  p->progress = progress;
  p->tmp = root_ + "/" + detail::tmp_dir_name(progress.step);
  std::string error;
  if (rank == 0) {
    std::error_code ec;
    fs::remove_all(p->tmp, ec);  // a torn attempt at the same step
    fs::create_directories(p->tmp, ec);
    if (ec) error = absl::StrCat(p->tmp, ": ", ec.message());
  }
  if (!agree_ok(error.empty())) {
    throw_error(absl::StrCat("checkpoint of step ", progress.step, ": cannot create ",
                             rank == 0 ? error : p->tmp + " (see rank 0)"));
  }
  detail::crash_point("after_tmp_dir", rank);
  // ZeRO-3: the parameters exist only as this rank's shard, in the optimizer's shard layout; each
  // rank writes its ranges of them as it does for m and v (checkpoint/write.cc).
  p->params = host_state(params.params_sharded() ? params.param_shards() : params.params(), async_);
  p->m = host_state(moments.m, async_);
  p->v = host_state(moments.v, async_);
  if (moments.ema.defined()) p->ema = host_state(moments.ema, async_);
  p->state = {&params, p->params, MomentsRef{p->m, p->v, moments.zero, p->ema}};
  const int dp_rank = layout_.dp_rank(), tp_rank = layout_.tp_rank();
  auto write = [rank, dp_rank, tp_rank, q = p.get()] {
    Timer w;
    try {
      detail::write_rank_files(q->tmp, q->state, rank, dp_rank, tp_rank);
      std::error_code ec;
      const fs::path file = fs::path(q->tmp) / detail::rank_file_name(rank);
      if (fs::exists(file, ec)) q->bytes = int64_t(fs::file_size(file, ec));
    } catch (const std::exception& e) {
      q->error = e.what();
    }
    q->write_ms = w.ms();
    q->done = true;
  };
  if (async_) {
    p->thread = std::thread(write);
    p->stall_ms = stall.ms() + waited_ms;
    stall_ms_ += p->stall_ms;
    stall_step_ = progress.step;
    pending_ = std::move(p);
    return;
  }
  write();
  pending_ = std::move(p);
  complete();
  stall_ms_ += stall.ms();
  stall_step_ = progress.step;
}

bool Checkpointer::step_boundary(int64_t step) {
  detail::crash_point(absl::StrCat("step_", step), layout_.world_rank());
  const bool stop = preemption::stop_requested();
  if (layout_.world_size() == 1) {
    if (pending_ && pending_->done) complete();
    return stop;
  }
  tessera::Tensor t = tessera::Tensor::empty({2}, DType::f32);
  t.data<float>()[0] = stop ? 1.0f : 0.0f;
  t.data<float>()[1] = pending_ && !pending_->done ? 1.0f : 0.0f;
  layout_.world().all_reduce(t, distributed::ReduceOp::kSum)->wait();
  if (pending_ && t.data<float>()[1] == 0.0f) complete();
  return t.data<float>()[0] > 0.0f;
}

void Checkpointer::finish() {
  if (!pending_) return;
  Timer wait;
  join();
  if (print_) {
    std::printf("checkpoint: waited %.1f ms for the background write of step %lld\n", wait.ms(),
                (long long)pending_->progress.step);
  }
  complete();
}

void Checkpointer::complete() {
  join();
  std::unique_ptr<Pending> p = std::move(pending_);
  const int rank = layout_.world_rank();
  const int64_t step = p->progress.step;
  detail::set_crash_step(step);
  std::error_code ec;
  if (!agree_ok(p->error.empty())) {
    if (rank == 0) fs::remove_all(p->tmp, ec);
    throw_error(absl::StrCat("checkpoint of step ", step, " failed, nothing committed: ",
                             p->error.empty() ? "another rank could not write its file (its "
                                                "message names it)"
                                              : p->error,
                             "; earlier checkpoints in ", root_, " are untouched"));
  }
  detail::crash_point("after_write_barrier", rank);
  std::string error;
  std::vector<std::string> notes;
  if (rank == 0) {
    checkpoint::Metadata meta;
    meta.set_format_version(1);
    meta.set_step(step);
    *meta.mutable_config() = config_;
    meta.set_model_kind(models::model_kind(config_));
    auto* l = meta.mutable_layout();
    l->set_world_size(layout_.world_size());
    l->set_data_parallel(layout_.dp_size());
    l->set_tensor_parallel(layout_.tp_size());
    // The stage that ran (ZeroAdamW exists only with several DP ranks); files before this
    // recorded 1 for every stage. Informational: a resume reads any layout the same way.
    l->set_zero_stage(p->state.moments.zero ? config_.parallel().zero_stage() : 0);
    meta.mutable_tokenizer()->set_kind("none");
    if (config_.model().has_gpt())
      meta.mutable_tokenizer()->set_vocab_size(config_.model().gpt().vocab_size());
    if (config_.model().has_clip())
      meta.mutable_tokenizer()->set_vocab_size(config_.model().clip().text().vocab_size());
    meta.mutable_optimizer()->set_kind("adamw");
    meta.mutable_optimizer()->set_steps_taken(p->progress.optimizer_steps);
    meta.mutable_optimizer()->set_state_layout(
        p->state.moments.ema.defined()
            ? "tensors adam_m, adam_v (and ema, the moving average of the weights): global "
              "shapes, as params"
            : "tensors adam_m, adam_v: global shapes, as params");
    meta.mutable_data()->set_next_position(p->progress.next_position);
    meta.mutable_data()->set_global_batch_size(config_.data().global_batch_size());
    meta.mutable_data()->set_source(config_.data().source());
    meta.mutable_rng()->set_seed(config_.train().seed());
    meta.mutable_rng()->set_scheme("philox(seed, global sample position)");
    meta.mutable_metrics()->set_loss(p->progress.loss);
    meta.mutable_metrics()->set_lr(p->progress.lr);
    meta.mutable_metrics()->set_grad_norm(p->progress.grad_norm);
    meta.mutable_metrics()->set_skipped_steps(p->progress.skipped_steps);
    absl::Status s = detail::merge_manifests(p->tmp, layout_.world_size(), &meta);
    std::string text;
    google::protobuf::TextFormat::PrintToString(meta, &text);
    if (s.ok())
      s = detail::write_file_durably(p->tmp + "/" + detail::kMetadata, meta.SerializeAsString());
    detail::crash_point("after_metadata", 0);
    if (s.ok()) s = detail::write_file_durably(p->tmp + "/" + detail::kMetadataText, text);
    detail::crash_point("before_commit", 0);
    if (s.ok()) s = detail::commit(root_, step, p->tmp);
    if (s.ok()) {
      notes = detail::retain(root_, config_.checkpoint().keep_last(),
                             config_.checkpoint().keep_every());
    } else {
      error = std::string(s.message());
      fs::remove_all(p->tmp, ec);
    }
  }
  if (!agree_ok(error.empty())) {
    throw_error(absl::StrCat("checkpoint of step ", step, " failed, nothing committed: ",
                             rank == 0 ? error : "see rank 0's message"));
  }
  detail::crash_point("after_commit", rank);
  if (print_) {
    for (const auto& n : notes) std::printf("checkpoint: %s\n", n.c_str());
    std::printf(
        "checkpoint %s/%s saved (rank 0 wrote %.1f MiB in %.0f ms%s)\n", root_.c_str(),
        detail::step_dir_name(step).c_str(), double(p->bytes) / (1 << 20), p->write_ms,
        async_
            ? absl::StrFormat(", in the background; training stalled %.1f ms", p->stall_ms).c_str()
            : "");
    std::fflush(stdout);
  }
}

bool Checkpointer::end_of_step(const models::ParamStore& params, const MomentsRef& moments,
                               const TrainProgress& progress, int64_t total_steps) {
  const int64_t step = progress.step;
  const int every = config_.checkpoint().every_steps();
  const bool stop = step_boundary(step);
  if ((every > 0 && step % every == 0) || step == total_steps || stop) {
    save(params, moments, progress);
  }
  return stop;
}

void Checkpointer::stop() {
  const int64_t step = saved_step_;
  finish();
  if (layout_.world_rank() == 0) {
    std::fprintf(stderr,
                 "tessera train: stop signal: checkpoint of step %lld saved; exiting with 75 "
                 "(resume with --resume auto)\n",
                 (long long)step);
  }
}

void Checkpointer::report_stall(nlohmann::json& record) {
  if (stall_step_ < 0) return;
  record["ckpt_stall_ms"] = stall_ms_;
  record["ckpt_step"] = stall_step_;
  stall_ms_ = 0;
  stall_step_ = -1;
}

}  // namespace tessera::checkpoint
