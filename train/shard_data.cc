#include "train/shard_data.h"

#include <google/protobuf/text_format.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "data_pipeline/augment.h"
#include "data_pipeline/shard_format.h"
#include "train/synthetic_data.h"
#include "train/text_data.h"

namespace tessera::train {

int model_image_size(const config::ModelConfig& m) {
  if (m.has_vit()) return m.vit().image_size();
  if (m.has_clip()) return m.clip().image().image_size();
  if (m.has_dit()) return m.dit().image_size();
  return 0;
}

ShardData::ShardData(const config::Config& config, const data::Manifest& manifest,
                     const std::string& manifest_path, bool training)
    : config_(config),
      manifest_(manifest),
      path_(manifest_path),
      dir_(std::filesystem::path(manifest_path).parent_path().string()) {
  const std::string& path = path_;
  const auto& m = config.model();
  TESSERA_CHECK(!m.has_gpt(), "data source ", path,
                ": image shards cannot feed a GPT model (pack text with `tessera pack --text`)");
  // Encoded shards (format 2) are decoded and cropped to the model's size by the loader: any
  // resolution. Pixel shards (format 1) hold one, which must be the model's.
  encoded_ = manifest.format_version() == data::shard::kEncodedVersion;
  TESSERA_CHECK(encoded_ || manifest.resolution() == model_image_size(m), "data source ", path,
                ": resolution ", manifest.resolution(), " does not match the model's image_size ",
                model_image_size(m));
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
  augment_ = training && config.data().augment();
  int64_t start = 0;
  for (const auto& s : manifest.shards()) {
    shard_start_.push_back(start);
    start += s.num_samples();
  }
}

ShardData::~ShardData() = default;

int64_t ShardData::image_size() const {
  return encoded_ ? model_image_size(config_.model()) : manifest_.resolution();
}

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
    // On the loader's workers: pixels -> the model's input scale (DiT: [-1, 1]; ViT/CLIP:
    // CLIP's mean and std).
    std::array<float, 3> scale, bias;
    const data::AugmentConfig stats;  // CLIP's image statistics: one source with augmentation
    for (int c = 0; c < 3; ++c) {
      scale[c] = m.has_dit() ? 2.0f / 255.0f : 1.0f / (255.0f * stats.std[c]);
      bias[c] = m.has_dit() ? -1.0f : -stats.mean[c] / stats.std[c];
    }
    auto normalise = [scale, bias](data::SampleBatch& b) {
      b.pixels.resize(b.images.size());
      data::normalise_pixels(b.images.data(), int64_t(b.images.size() / 3), scale.data(),
                             bias.data(), b.pixels.data());
    };
    // Augmented: each sample's crop and flip are keyed by (seed, epoch, global sample id).
    data::AugmentConfig ac;
    ac.out_size = int(image_size());
    for (int c = 0; c < 3; ++c) {  // the same normalisation as above, as mean and std
      ac.std[c] = 1.0f / (255.0f * scale[c]);
      ac.mean[c] = -bias[c] * ac.std[c];
    }
    auto augment = [ac, seed = uint64_t(config_.train().seed()), epoch_samples = epoch_samples_,
                    starts = shard_start_](data::SampleBatch& b) {
      const int64_t S = b.resolution, px = S * S * 3;
      b.pixels.resize(b.images.size());
      for (int64_t i = 0; i < b.count; ++i) {
        const data::SampleRef ref = b.refs[i];
        const data::AugmentKey key{seed, (b.first + i) / epoch_samples,
                                   starts[ref.shard] + ref.index};
        data::augment_image(b.images.data() + i * px, int(S), int(S), ac, key,
                            b.pixels.data() + i * px);
      }
    };
    if (encoded_) {
      // The loader decodes each sample straight into its crop (random with data.augment, else
      // the centre square, as evaluation), keyed like the augmentation above; then normalises.
      data::AugmentConfig crop = ac;
      crop.random_crop = augment_;
      o.decode.out_size = int(image_size());
      o.decode.crop = [crop, seed = uint64_t(config_.train().seed()),
                       epoch_samples = epoch_samples_,
                       starts = shard_start_](int64_t position, data::SampleRef ref, int h, int w) {
        return data::sample_crop(h, w, crop,
                                 {seed, position / epoch_samples, starts[ref.shard] + ref.index});
      };
    }
    loader_ = std::make_unique<data::Loader>(
        std::move(paths), [this](int64_t p) { return sample_at(p); }, o,
        augment_ && !encoded_ ? data::Loader::Transform(augment)
                              : data::Loader::Transform(normalise));
  }
  auto got = loader_->get(first, count);
  TESSERA_CHECK(got.ok(), "data source ", path_, ": ", got.status().message());
  const data::SampleBatch& b = **got;
  const int64_t S = image_size(), L = manifest_.token_length();
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
                                             const std::string& source, bool training) {
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
  if (manifest.kind() == "text") return std::make_unique<TextData>(config, manifest, source);
  return std::make_unique<ShardData>(config, manifest, source, training);
}

}  // namespace tessera::train
