#pragma once
// Evaluation during training: every eval.every_steps and at the last step, the mean loss over
// eval.batches batches, averaged over the data-parallel group, as a metrics record
// {"kind": "eval", "step", "loss", "batches", "source"} and (rank 0) a console line.
//
// The batches come from the held-out source (eval.source, train/data_source.h eval_source), read
// from its start so every evaluation sees the same samples; without one, from the training source
// at positions far beyond any the run trains on (for synthetic data, samples never trained on;
// for shards a later epoch, so the record says "source": "train").

#include <cstdint>
#include <memory>
#include <string>

#include "core/upload.h"
#include "distributed/layout.h"
#include "models/model.h"
#include "nlohmann/json.hpp"
#include "proto/config.pb.h"
#include "train/data_source.h"

namespace tessera::train {

class Evaluator {
 public:
  // layout, model, uploader: borrowed. print: the console line (rank 0 only).
  Evaluator(const config::Config& config, const distributed::ParallelLayout& layout,
            models::Model& model, Uploader& uploader, bool print);
  ~Evaluator();

  // Every eval.every_steps (0: never) and at the last step.
  bool due(int64_t step) const;
  // Collective over the DP group. train_data: the training source, used when there is no
  // held-out one. The held-out source is opened by the first call.
  nlohmann::json evaluate(const DataSource& train_data, int64_t step);

 private:
  config::Config config_;
  const distributed::ParallelLayout& layout_;
  models::Model& model_;
  Uploader& uploader_;
  bool print_;
  std::unique_ptr<DataSource> eval_data_;  // null: evaluate on the training source
  std::string eval_path_;
  bool eval_opened_ = false;
};

}  // namespace tessera::train
