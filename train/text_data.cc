#include "train/text_data.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera::train {

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
}

TextData::~TextData() = default;

models::Batch TextData::batch(int64_t first, int64_t count) const {
  const int64_t T = context_;
  Tensor tokens = Tensor::empty({count, T}, DType::i32),
         targets = Tensor::empty({count, T}, DType::i32);
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
      if (t < T) tokens.data<int32_t>()[b * T + t] = id;
      if (t > 0) targets.data<int32_t>()[b * T + t - 1] = id;
    }
  }
  return {{"tokens", tokens}, {"targets", targets}};
}

}  // namespace tessera::train
