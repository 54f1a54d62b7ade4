#include "train/evaluator.h"

#include <algorithm>
#include <cstdio>

#include "train/dp_average.h"

namespace tessera::train {

Evaluator::Evaluator(const config::Config& config, const distributed::ParallelLayout& layout,
                     models::Model& model, Uploader& uploader, bool print)
    : config_(config), layout_(layout), model_(model), uploader_(uploader), print_(print) {}

Evaluator::~Evaluator() = default;

bool Evaluator::due(int64_t step) const {
  const int every = config_.eval().every_steps();
  return every > 0 && (step % every == 0 || step == config_.train().steps());
}

nlohmann::json Evaluator::evaluate(const DataSource& train_data, int64_t step) {
  if (!eval_opened_) {
    eval_path_ = eval_source(config_);
    if (!eval_path_.empty()) eval_data_ = make_data_source(config_, eval_path_, /*training=*/false);
    eval_opened_ = true;
  }
  const DataSource& source = eval_data_ ? *eval_data_ : train_data;
  const int64_t base = eval_data_ ? 0 : kFarAheadPosition;
  // Batches of a training micro-batch's size, each rank its slice, as in training.
  const int64_t batch = config_.data().global_batch_size() / config_.train().micro_batches();
  const int64_t slice = batch / layout_.dp_size();
  double loss = 0;
  const int batches = std::max(1, config_.eval().batches());
  for (int i = 0; i < batches; ++i) {
    const int64_t first = base + i * batch + layout_.dp_rank() * slice;
    loss += model_.forward_loss(uploader_.upload_now(source.batch(first, slice))).loss / batches;
  }
  loss = dp_average(layout_, loss);
  const std::string name = eval_data_ ? eval_path_ : std::string("train");
  if (print_) {
    std::printf("eval  %6lld | loss %.4f over %d batches of %s\n", (long long)step, loss, batches,
                name.c_str());
  }
  return {{"kind", "eval"}, {"step", step}, {"loss", loss}, {"batches", batches}, {"source", name}};
}

}  // namespace tessera::train
