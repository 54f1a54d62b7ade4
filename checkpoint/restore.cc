// Checkpointer::restore: `tessera train --resume auto|PATH` (checkpoint/checkpoint.h).
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/commit.h"
#include "core/error.h"

namespace tessera::checkpoint {

std::optional<TrainProgress> Checkpointer::restore(const std::string& what,
                                                   models::ParamStore& params,
                                                   const MomentsRef& moments) {
  const bool leader = layout_.world_rank() == 0;
  std::string path = what;
  if (what.empty()) {  // a fresh start: say so when it will overwrite a run's checkpoints
    std::error_code ec;
    if (leader && std::filesystem::is_directory(root_, ec) &&
        !detail::scan(root_).committed.empty()) {
      std::fprintf(stderr,
                   "tessera train: warning: %s holds checkpoints of an earlier run; starting "
                   "fresh (no --resume), later saves replace them\n",
                   root_.c_str());
    }
    return std::nullopt;
  }
  if (what == "auto") {
    std::error_code ec;
    detail::Scan scan;
    if (std::filesystem::is_directory(root_, ec)) scan = detail::scan(root_);
    if (leader) {
      for (const auto& note : scan.notes) std::fprintf(stderr, "tessera train: %s\n", note.c_str());
    }
    if (scan.committed.empty()) {
      if (print_)
        std::printf("--resume auto: no committed checkpoint in %s; starting fresh\n",
                    root_.c_str());
      return std::nullopt;
    }
    path = root_ + "/" + detail::step_dir_name(scan.committed.back());
  }
  absl::StatusOr<CheckpointInfo> info = open_checkpoint(path);
  TESSERA_CHECK(info.ok(), "--resume ", what, ": ", info.status().message());
  const checkpoint::Metadata& meta = info->metadata;

  // The same model, or the tensors cannot mean the same thing (n_heads, say, changes no shape).
  // Activation recomputation changes only how it is computed.
  config::ModelConfig saved = meta.config().model(), now = config_.model();
  saved.clear_recompute_activations();
  now.clear_recompute_activations();
  google::protobuf::util::MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  TESSERA_CHECK(diff.Compare(saved, now), "--resume ", info->dir,
                ": the checkpoint is of another model (", meta.model_kind(),
                "); its model config differs from this run's: ", report);
  absl::Status s = load_model_parameters(*info, params);
  if (s.ok()) s = load_moments(*info, params, moments);
  TESSERA_CHECK(s.ok(), "--resume ", info->dir, ": ", s.message());

  TrainProgress p;
  p.step = meta.step();
  p.next_position = meta.data().next_position();
  p.optimizer_steps = meta.optimizer().steps_taken();
  p.skipped_steps = meta.metrics().skipped_steps();
  p.loss = meta.metrics().loss();
  p.lr = meta.metrics().lr();
  p.grad_norm = meta.metrics().grad_norm();
  if (leader) {  // also with --quiet: which checkpoint a run continues from always matters
    const auto& l = meta.layout();
    std::printf(
        "resumed from %s: step %lld, data position %lld; written by %d ranks (dp %d x tp %d%s), "
        "loaded into %s\n",
        info->dir.c_str(), (long long)p.step, (long long)p.next_position, l.world_size(),
        l.data_parallel(), l.tensor_parallel(),
        l.zero_stage() ? absl::StrCat(", ZeRO-", l.zero_stage()).c_str() : "",
        layout_.describe().c_str());
    if (meta.data().global_batch_size() != config_.data().global_batch_size()) {
      std::printf(
          "warning: data.global_batch_size is %d, the checkpoint's run used %lld: training goes "
          "on from sample position %lld, but the data order differs from the original run's\n",
          config_.data().global_batch_size(), (long long)meta.data().global_batch_size(),
          (long long)p.next_position);
    }
    if (meta.rng().seed() != config_.train().seed()) {
      std::printf("warning: train.seed is %llu, the checkpoint's run used %llu\n",
                  (unsigned long long)config_.train().seed(),
                  (unsigned long long)meta.rng().seed());
    }
    std::fflush(stdout);
  }
  return p;
}

}  // namespace tessera::checkpoint
