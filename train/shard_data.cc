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
                     const std::string& manifest_dir)
    : config_(config), manifest_(manifest), dir_(manifest_dir) {
  const std::string& path = config.data().source();
  const auto& m = config.model();
  TESSERA_CHECK(!m.has_gpt(), "data.source ", path,
                ": GPT training from shards is not built yet (use data.source: \"synthetic\")");
  TESSERA_CHECK(manifest.resolution() == image_size(m), "data.source ", path, ": resolution ",
                manifest.resolution(), " does not match the model's image_size ", image_size(m));
  if (m.has_clip()) {
    TESSERA_CHECK(manifest.token_length() == m.clip().text().context(), "data.source ", path,
                  ": token_length ", manifest.token_length(),
                  " does not match model.clip.text.context ", m.clip().text().context());
  }
  data::DatasetShape shape;
  for (const auto& s : manifest.shards()) shape.shard_sizes.push_back(s.num_samples());
  data::SamplerConfig sc;
  sc.seed = config.train().seed();
  sc.global_batch = config.data().global_batch_size();
  sc.shuffle_window = 8;
  sampler_ = std::make_unique<data::GlobalSampler>(shape, sc);
  epoch_samples_ = sampler_->batches_per_epoch() * sc.global_batch;
  readers_.resize(manifest.shards_size());
}

ShardData::~ShardData() = default;

data::ShardReader& ShardData::reader(int shard) const {
  if (!readers_[shard]) {
    const std::string path =
        (std::filesystem::path(dir_) / manifest_.shards(shard).path()).string();
    auto r = data::ShardReader::open(path);
    TESSERA_CHECK(r.ok(), r.status().message());
    readers_[shard] = std::move(*r);
  }
  return *readers_[shard];
}

models::Batch ShardData::batch(int64_t first, int64_t count) const {
  const auto& m = config_.model();
  const int64_t S = manifest_.resolution(), pixels = S * S * 3;
  const int64_t L = manifest_.token_length();
  Tensor images = Tensor::empty({count, S, S, 3}, DType::f32);
  Tensor labels = Tensor::empty({count}, DType::i32);
  Tensor text = m.has_clip() ? Tensor::empty({count, L}, DType::i32) : Tensor();
  Tensor eot = m.has_clip() ? Tensor::empty({count}, DType::i32) : Tensor();
  Tensor keys = Tensor::empty({count}, DType::i64);
  for (int64_t b = 0; b < count; ++b) {
    const int64_t position = first + b;
    // The sampler keys epochs by 32 bits; a stream position past 2^32 epochs (evaluation reads
    // far ahead) wraps around, which only repeats an order, never breaks one.
    const int64_t epoch = (position / epoch_samples_) % (int64_t(1) << 32);
    const data::SampleRef ref = sampler_->at(epoch, position % epoch_samples_);
    auto read = reader(ref.shard).read(ref.index, 1);
    TESSERA_CHECK(read.ok(), read.status().message());
    const uint8_t* px = read->images.data();
    float* out = images.data<float>() + b * pixels;
    for (int64_t i = 0; i < pixels; ++i) {
      const float v = float(px[i]) / 255.0f;
      out[i] = m.has_dit() ? 2.0f * v - 1.0f : (v - kMean[i % 3]) / kStd[i % 3];
    }
    labels.data<int32_t>()[b] = read->labels.empty() ? 0 : read->labels[0];
    keys.data<int64_t>()[b] = position;
    if (m.has_clip()) {
      TESSERA_CHECK(!read->tokens.empty(), "data.source ", config_.data().source(), ": shard ",
                    manifest_.shards(ref.shard).path(),
                    " has no tokens (CLIP needs captions packed "
                    "with a tokenizer)");
      std::copy(read->tokens.begin(), read->tokens.end(), text.data<int32_t>() + b * L);
      // token_lengths count the end-of-text token, which is the last one.
      eot.data<int32_t>()[b] = std::max(0, std::min<int32_t>(read->token_lengths[0], L) - 1);
    }
  }
  models::Batch batch{{"images", images}};
  if (m.has_vit() || m.has_dit()) batch["labels"] = labels;
  if (m.has_dit()) batch["sample_keys"] = keys;
  if (m.has_clip()) {
    batch["text"] = text;
    batch["text_eot"] = eot;
  }
  return batch;
}

std::unique_ptr<DataSource> make_data_source(const config::Config& config) {
  const std::string& source = config.data().source();
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
  return std::make_unique<ShardData>(config, manifest,
                                     std::filesystem::path(source).parent_path().string());
}

}  // namespace tessera::train
