#include "train/text_data.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "data_pipeline/read_ahead.h"

namespace tessera::train {

// One worker reading the windows of requests ahead of the trainer (data::ReadAhead, as the
// image Loader does); requests read ahead but never asked for are dropped beyond kMaxJobs.
struct TextData::Prefetch {
  struct Job {
    int64_t first = 0, count = 0, seq = 0;
    bool done = false;
    std::exception_ptr error;
    std::vector<int32_t> tokens, targets;  // (count, T) each
  };
  static constexpr size_t kMaxJobs = 32;
  int ahead = 0;
  int64_t stride = 0;
  data::ReadAhead<Job> engine;

  Prefetch(const TextData& data, int ahead, int64_t stride)
      : ahead(ahead), stride(stride), engine(1, kMaxJobs, [&data] {
          return [&data](Job& job) {
            try {
              data.read_windows(job.first, job.count, job.tokens, job.targets);
            } catch (...) {
              job.error = std::current_exception();
            }
          };
        }) {}
};

TextData::TextData(const config::Config& config, const data::Manifest& manifest,
                   const std::string& manifest_path)
    : config_(config),
      manifest_(manifest),
      path_(manifest_path),
      dir_(std::filesystem::path(manifest_path).parent_path().string()) {
  TESSERA_CHECK(config.model().has_gpt(), "data source ", path_,
                ": a text manifest (token stream) needs a GPT model");
  context_ = config.model().gpt().context();
  vocab_ = config.model().gpt().vocab_size();
  TESSERA_CHECK(manifest.eot_id() >= 0 && manifest.eot_id() < vocab_, "data source ", path_,
                ": end-of-text id ", manifest.eot_id(), " is outside model.gpt.vocab_size ", vocab_,
                " (train the tokenizer with a vocabulary of at most ", vocab_, ")");
  data::DatasetShape shape;
  for (const auto& s : manifest.shards()) {
    const int64_t windows = (s.num_samples() - 1) / context_;
    shape.shard_sizes.push_back(std::max<int64_t>(0, windows));
  }
  data::SamplerConfig sc;
  sc.seed = config.train().seed();
  sc.global_batch = config.data().global_batch_size();
  sc.shuffle_window = 8;
  try {
    sampler_ = std::make_unique<data::GlobalSampler>(shape, sc);
  } catch (const Error& e) {
    throw_error(
        absl::StrCat("data source ", path_, " (windows of ", context_ + 1, " tokens): ", e.what()));
  }
  epoch_samples_ = sampler_->batches_per_epoch() * sc.global_batch;
  readers_.resize(manifest.shards_size());
  if (config.data().prefetch_batches() > 0)
    prefetch_ =
        std::make_unique<Prefetch>(*this, config.data().prefetch_batches(), sc.global_batch);
}

TextData::~TextData() {
  prefetch_.reset();  // stops the worker before the readers it uses go
}

models::Batch TextData::batch(int64_t first, int64_t count) const {
  const int64_t T = context_;
  std::vector<int32_t> token_rows, target_rows;  // (count, T) each
  if (!prefetch_) {
    read_windows(first, count, token_rows, target_rows);
  } else {
    Prefetch& p = *prefetch_;
    auto taken =
        p.engine.take({first, count}, p.stride, p.ahead, [](std::pair<int64_t, int64_t> w) {
          auto job = std::make_shared<Prefetch::Job>();
          job->first = w.first;
          job->count = w.second;
          return absl::StatusOr<std::shared_ptr<Prefetch::Job>>(std::move(job));
        });
    std::shared_ptr<Prefetch::Job> job = std::move(taken->job);  // making a job never fails
    if (job->error) std::rethrow_exception(job->error);
    token_rows = std::move(job->tokens);
    target_rows = std::move(job->targets);
  }
  Tensor tokens = Tensor::empty({count, T}, DType::i32),
         targets = Tensor::empty({count, T}, DType::i32);
  std::copy(token_rows.begin(), token_rows.end(), tokens.data<int32_t>());
  std::copy(target_rows.begin(), target_rows.end(), targets.data<int32_t>());
  return {{"tokens", tokens}, {"targets", targets}};
}

void TextData::read_windows(int64_t first, int64_t count, std::vector<int32_t>& tokens,
                            std::vector<int32_t>& targets) const {
  const int64_t T = context_;
  tokens.resize(size_t(count * T));
  targets.resize(size_t(count * T));
  for (int64_t b = 0; b < count; ++b) {
    const int64_t position = first + b;
    // Epochs wrap at 2^32 (see shard_data.cc): far-ahead evaluation positions stay valid.
    const int64_t epoch = (position / epoch_samples_) % (int64_t(1) << 32);
    const data::SampleRef ref = sampler_->at(epoch, position % epoch_samples_);
    auto& reader = readers_[ref.shard];
    if (!reader) {
      const std::string path =
          (std::filesystem::path(dir_) / manifest_.shards(ref.shard).path()).string();
      auto r = data::TextShardReader::open(path);
      TESSERA_CHECK(r.ok(), "data source ", path_, ": ", r.status().message());
      reader = std::move(*r);
    }
    auto window = reader->read(ref.index * T, T + 1);
    TESSERA_CHECK(window.ok(), "data source ", path_, ": ", window.status().message());
    for (int64_t t = 0; t <= T; ++t) {
      const int32_t id = (*window)[t];
      TESSERA_CHECK(id >= 0 && id < vocab_, "data source ", path_, ": shard ", reader->path(),
                    " token ", ref.index * T + t, " is ", id, ", outside model.gpt.vocab_size ",
                    vocab_);
      if (t < T) tokens[b * T + t] = id;
      if (t > 0) targets[b * T + t - 1] = id;
    }
  }
}

}  // namespace tessera::train
