#include "eval/split.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "data_pipeline/augment.h"
#include "data_pipeline/decode_crop.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/shard_format.h"
#include "data_pipeline/shard_reader.h"

namespace tessera::eval {

absl::StatusOr<EvalSplit> load_split(const std::string& manifest_path, int64_t max_samples,
                                     int image_size) {
  if (!std::filesystem::exists(manifest_path)) {
    return absl::NotFoundError(absl::StrCat(manifest_path, ": no such split manifest"));
  }
  auto m = data::load_manifest(manifest_path);
  if (!m.ok()) return m.status();
  EvalSplit s;
  s.path = manifest_path;
  s.manifest = *m;
  const bool encoded = m->format_version() == data::shard::kEncodedVersion;
  if (encoded && image_size <= 0)
    return absl::InvalidArgumentError(absl::StrCat(
        manifest_path, ": encoded images (format_version 2) need the model's image size"));
  s.resolution = encoded ? image_size : m->resolution();
  s.token_length = m->token_length();
  const auto dir = std::filesystem::path(manifest_path).parent_path();
  const int64_t want = max_samples > 0 ? std::min(max_samples, m->num_samples()) : m->num_samples();
  bool labels = true;
  for (const auto& info : m->shards()) {
    if (s.n >= want) break;
    auto r = data::ShardReader::open((dir / info.path()).string());
    if (!r.ok()) return r.status();
    const int64_t count = std::min((*r)->num_samples(), want - s.n);
    auto rows = (*r)->read(0, count);
    if (!rows.ok()) return rows.status();
    if (encoded) {
      const size_t px = size_t(image_size) * image_size * 3, at = s.images.size();
      s.images.resize(at + size_t(count) * px);
      data::AugmentConfig centre;
      centre.random_crop = false;
      data::DecodeScratch scratch;
      for (int64_t i = 0; i < count; ++i) {
        const int h = rows->image_sizes[2 * i], w = rows->image_sizes[2 * i + 1];
        if (auto st = data::decode_crop(rows->encoded(i), h, w, data::sample_crop(h, w, centre, {}),
                                        image_size, s.images.data() + at + size_t(i) * px, &scratch,
                                        absl::StrCat("shard ", (*r)->path(), ", sample ", i));
            !st.ok())
          return st;
      }
    } else {
      s.images.insert(s.images.end(), rows->images.begin(), rows->images.end());
    }
    s.captions.insert(s.captions.end(), rows->captions.begin(), rows->captions.end());
    if (s.token_length > 0) {
      if (rows->tokens.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat(manifest_path, ": shard ", info.path(), " has no tokens"));
      }
      s.tokens.insert(s.tokens.end(), rows->tokens.begin(), rows->tokens.end());
      for (int32_t len : rows->token_lengths) {
        // token_lengths count the end-of-text token, the last one (as train/shard_data.cc).
        s.eot.push_back(std::max(0, std::min<int32_t>(len, s.token_length) - 1));
      }
    }
    labels = labels && !rows->labels.empty();
    if (labels) s.labels.insert(s.labels.end(), rows->labels.begin(), rows->labels.end());
    s.n += count;
  }
  if (!labels) s.labels.clear();
  if (s.n == 0) return absl::FailedPreconditionError(absl::StrCat(manifest_path, ": no samples"));
  return s;
}

Tensor split_images(const EvalSplit& s, int64_t first, int64_t count, bool dit) {
  // The normalisation training applies (train/shard_data.cc): CLIP's image statistics, the
  // augmentation config's defaults; DiT works on [-1, 1].
  const data::AugmentConfig stats;
  const int64_t S = s.resolution, pixels = S * S * 3;
  Tensor out = Tensor::empty({count, S, S, 3}, DType::f32);
  float* o = out.data<float>();
  const uint8_t* px = s.images.data() + first * pixels;
  for (int64_t i = 0; i < count * pixels; ++i) {
    const float v = float(px[i]) / 255.0f;
    o[i] = dit ? 2.0f * v - 1.0f : (v - stats.mean[i % 3]) / stats.std[i % 3];
  }
  return out;
}

Tensor split_tokens(const EvalSplit& s, int64_t first, int64_t count) {
  const int64_t L = s.token_length;
  Tensor out = Tensor::empty({count, L}, DType::i32);
  std::copy_n(s.tokens.data() + first * L, count * L, out.data<int32_t>());
  return out;
}

Tensor split_eot(const EvalSplit& s, int64_t first, int64_t count) {
  Tensor out = Tensor::empty({count}, DType::i32);
  std::copy_n(s.eot.data() + first, count, out.data<int32_t>());
  return out;
}

Tensor split_labels(const EvalSplit& s, int64_t first, int64_t count) {
  Tensor out = Tensor::empty({count}, DType::i32);
  std::copy_n(s.labels.data() + first, count, out.data<int32_t>());
  return out;
}

}  // namespace tessera::eval
