#include "train/shard_data.h"

#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "train/synthetic_data.h"

namespace tessera::train {
namespace {

// CLIP's image statistics (per channel, on [0, 1] values).
constexpr float kMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
constexpr float kStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

int image_size(const config::ModelConfig& m) {
  if (m.has_vit()) return m.vit().image_size();
  if (m.has_clip()) return m.clip().image().image_size();
  if (m.has_dit()) return m.dit().image_size();
  return 0;
}

}  // namespace

ShardData::ShardData(const config::Config& config, const data::Manifest& manifest,
                     const std::string& manifest_path)
    : config_(config),
      manifest_(manifest),
      path_(manifest_path),
      dir_(std::filesystem::path(manifest_path).parent_path().string()) {
  const std::string& path = path_;
  const auto& m = config.model();
  TESSERA_CHECK(!m.has_gpt(), "data.source ", path,
                ": GPT training from shards is not built yet (use data.source: \"synthetic\")");
  TESSERA_CHECK(manifest.resolution() == image_size(m), "data source ", path, ": resolution ",
                manifest.resolution(), " does not match the model's image_size ", image_size(m));
  if (m.has_clip()) {
    TESSERA_CHECK(manifest.token_length() == m.clip().text().context(), "data source ", path,
                  ": token_length ", manifest.token_length(),
                  " does not match model.clip.text.context ", m.clip().text().context(),
                  manifest.token_length() == 0 ? " (pack the captions with --tokenizer)" : "");
  }
  data::DatasetShape shape;
  for (const auto& s : manifest.shards()) shape.shard_sizes.push_back(s.num_samples());
  data::SamplerConfig sc;
  sc.seed = config.train().seed();
  sc.global_batch = config.data().global_batch_size();
  sc.shuffle_window = 8;
  try {
    sampler_ = std::make_unique<data::GlobalSampler>(shape, sc);
  } catch (const Error& e) {
    throw_error(absl::StrCat("data source ", path, ": ", e.what()));
  }
  epoch_samples_ = sampler_->batches_per_epoch() * sc.global_batch;
}

ShardData::~ShardData() = default;

data::SampleRef ShardData::sample_at(int64_t position) const {
  // The sampler keys epochs by 32 bits; a stream position past 2^32 epochs (evaluation reads
  // far ahead) wraps around, which only repeats an order, never breaks one.
  const int64_t epoch = (position / epoch_samples_) % (int64_t(1) << 32);
  return sampler_->at(epoch, position % epoch_samples_);
}

data::LoaderStats ShardData::loader_stats() const {
  return loader_ ? loader_->stats() : data::LoaderStats{};
}

models::Batch ShardData::batch(int64_t first, int64_t count) const {
  const auto& m = config_.model();
  if (!loader_) {
    std::vector<std::string> paths;
    for (const auto& s : manifest_.shards())
      paths.push_back((std::filesystem::path(dir_) / s.path()).string());
    data::LoaderOptions o;
    o.threads = std::max(1, config_.data().loader_threads());
    o.prefetch_batches = config_.data().prefetch_batches();
    o.stride = config_.data().global_batch_size();
    const bool dit = m.has_dit();
    // On the loader's workers: pixels in [0, 1] -> the model's input scale.
    auto normalise = [dit](data::SampleBatch& b) {
      b.pixels.resize(b.images.size());
      for (size_t i = 0; i < b.images.size(); ++i) {
        const float v = float(b.images[i]) / 255.0f;
        b.pixels[i] = dit ? 2.0f * v - 1.0f : (v - kMean[i % 3]) / kStd[i % 3];
      }
    };
    loader_ = std::make_unique<data::Loader>(
        std::move(paths), [this](int64_t p) { return sample_at(p); }, o, normalise);
  }
  auto got = loader_->get(first, count);
  TESSERA_CHECK(got.ok(), "data source ", path_, ": ", got.status().message());
  const data::SampleBatch& b = **got;
  const int64_t S = manifest_.resolution(), L = manifest_.token_length();
  TESSERA_CHECK(b.resolution == S && b.token_length == L, "data source ", path_,
                ": shards hold resolution ", b.resolution, " and token length ", b.token_length,
                " but the manifest says ", S, " and ", L);
  Tensor images = Tensor::empty({count, S, S, 3}, DType::f32);
  std::copy(b.pixels.begin(), b.pixels.end(), images.data<float>());
  models::Batch batch{{"images", images}};
  if (m.has_vit() || m.has_dit()) {
    Tensor labels = Tensor::empty({count}, DType::i32);
    for (int64_t i = 0; i < count; ++i)
      labels.data<int32_t>()[i] = b.labels.empty() ? 0 : b.labels[i];
    batch["labels"] = labels;
  }
  if (m.has_dit()) {
    Tensor keys = Tensor::empty({count}, DType::i64);
    for (int64_t i = 0; i < count; ++i) keys.data<int64_t>()[i] = first + i;
    batch["sample_keys"] = keys;
  }
  if (m.has_clip()) {
    TESSERA_CHECK(!b.tokens.empty(), "data source ", path_,
                  ": the shards have no tokens (CLIP needs captions packed with a tokenizer)");
    Tensor text = Tensor::empty({count, L}, DType::i32);
    Tensor eot = Tensor::empty({count}, DType::i32);
    std::copy(b.tokens.begin(), b.tokens.end(), text.data<int32_t>());
    // token_lengths count the end-of-text token, which is the last one.
    for (int64_t i = 0; i < count; ++i)
      eot.data<int32_t>()[i] = std::max(0, std::min<int32_t>(b.token_lengths[i], L) - 1);
    batch["text"] = text;
    batch["text_eot"] = eot;
  }
  return batch;
}

std::unique_ptr<DataSource> make_data_source(const config::Config& config) {
  return make_data_source(config, config.data().source());
}

std::string eval_source(const config::Config& config) {
  if (config.eval().has_source()) {
    return config.eval().source() == "none" ? std::string() : config.eval().source();
  }
  const std::filesystem::path train(config.data().source());
  if (config.data().source() == "synthetic" || train.extension() != ".pbtxt") return {};
  const std::filesystem::path val = train.parent_path() / "val.pbtxt";
  if (train.filename() == "val.pbtxt" || !std::filesystem::exists(val)) return {};
  return val.string();
}

std::unique_ptr<DataSource> make_data_source(const config::Config& config,
                                             const std::string& source) {
  if (source == "synthetic") return std::make_unique<SyntheticData>(config);
  std::ifstream f(source);
  TESSERA_CHECK(f.good(), "data.source ", source, ": cannot open the manifest");
  std::stringstream text;
  text << f.rdbuf();
  data::Manifest manifest;
  TESSERA_CHECK(google::protobuf::TextFormat::ParseFromString(text.str(), &manifest),
                "data.source ", source,
                ": not a manifest (protobuf text of tessera.data.Manifest)");
  TESSERA_CHECK(manifest.shards_size() > 0, "data.source ", source,
                ": the manifest lists no shards");
  return std::make_unique<ShardData>(config, manifest, source);
}

}  // namespace tessera::train
