#include "data_pipeline/pack.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/pack_inputs.h"
#include "data_pipeline/pack_parallel.h"
#include "data_pipeline/shard_format.h"
#include "data_pipeline/shard_writer.h"
#include "data_pipeline/tokenizer.h"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}

// The shards of one split on one rank, opened lazily and rotated every samples_per_shard samples.
// `stem` is the split ("train") or, in a parallel pack, the split and the rank ("train-r00001").
class SplitWriter {
 public:
  SplitWriter(std::string stem, const PackOptions& options, ShardWriterOptions shard_options)
      : stem_(std::move(stem)), options_(options), shard_options_(std::move(shard_options)) {}

  absl::Status append(const SampleToWrite& sample) {
    if (writer_ && writer_->num_samples() >= options_.samples_per_shard) {
      if (auto s = close(); !s.ok()) return s;
    }
    if (!writer_) {
      std::string name = absl::StrFormat("%s-%05d.h5", stem_, result_.shards.size());
      auto w = ShardWriter::create((fs::path(options_.out_dir) / name).string(), shard_options_);
      if (!w.ok()) return w.status();
      writer_ = std::move(*w);
      ShardInfo info;
      info.set_path(name);
      result_.shards.push_back(std::move(info));
    }
    ++result_.num_samples;
    return writer_->append(sample);
  }

  // Closes the last shard; the split's shards with their sizes and hashes.
  absl::StatusOr<RankSplit> finish() {
    if (auto s = close(); !s.ok()) return s;
    return result_;
  }

 private:
  absl::Status close() {
    if (!writer_) return absl::OkStatus();
    ShardInfo& info = result_.shards.back();
    info.set_num_samples(writer_->num_samples());
    absl::Status s = writer_->finish();
    const std::string path = writer_->path();
    writer_.reset();
    if (!s.ok()) return s;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec)
      return absl::InternalError(absl::StrCat("pack: cannot stat ", path, ": ", ec.message()));
    info.set_bytes(int64_t(size));
    auto hash = file_content_hash(path);
    if (!hash.ok()) return hash.status();
    info.set_content_hash(*hash);
    return absl::OkStatus();
  }

  std::string stem_;
  const PackOptions& options_;
  ShardWriterOptions shard_options_;
  RankSplit result_;
  std::unique_ptr<ShardWriter> writer_;
};

// Writes DIR/SPLIT.pbtxt for the shards of every rank (in rank order); nothing for an empty split.
absl::StatusOr<SplitReport> write_split_manifest(const std::string& split, const RankSplit& all,
                                                 const PackOptions& options,
                                                 const ShardWriterOptions& shard_options,
                                                 const std::vector<std::string>& label_names) {
  SplitReport report;
  report.split = split;
  report.num_samples = all.num_samples;
  for (const ShardInfo& s : all.shards) report.shards.push_back(s.path());
  if (all.num_samples == 0) return report;
  Manifest m;
  m.set_format_version(int32_t(shard_options.format_version));
  m.set_resolution(int32_t(shard_options.resolution));
  m.set_tokenizer(shard_options.tokenizer);
  m.set_token_length(int32_t(shard_options.token_length));
  if (!options.tokenizer_model.empty()) m.set_tokenizer_model(kTokenizerModelFile);
  for (const std::string& n : label_names) m.add_label_names(n);
  m.set_split(split);
  m.set_num_samples(all.num_samples);
  for (const ShardInfo& s : all.shards) *m.add_shards() = s;
  const std::string path = (fs::path(options.out_dir) / (split + ".pbtxt")).string();
  if (auto st = data::write_manifest(m, path); !st.ok()) return st;
  report.manifest = path;
  return report;
}

absl::Status check_options(const PackOptions& o) {
  auto bad = [](const std::string& m) { return absl::InvalidArgumentError("pack: " + m); };
  if (o.index_path.empty() == o.tar_paths.empty())
    return bad("give either an index or webdataset tar files");
  if (o.out_dir.empty()) return bad("no output directory given");
  if (o.format_version != shard::kFormatVersion && o.format_version != shard::kEncodedVersion)
    return bad(absl::StrCat("format version ", o.format_version, " is not 1 or 2"));
  if (o.format_version == shard::kFormatVersion && o.resolution < 1)
    return bad(absl::StrCat("resolution ", o.resolution, " is not positive"));
  if (o.max_side < 0 || o.quality < 1 || o.quality > 100)
    return bad(absl::StrCat("max side ", o.max_side, " or quality ", o.quality,
                            " out of range (max side >= 0, quality in [1, 100])"));
  if (!o.tokenizer_model.empty() && o.context < 2)
    return bad(absl::StrCat("context ", o.context, " leaves no room for text and end-of-text"));
  // The limits a reader enforces (shard_format.h): pack nothing a reader would refuse.
  if (o.resolution > shard::kMaxImagePixels / o.resolution)
    return bad(absl::StrCat("resolution ", o.resolution, " exceeds the limit of ",
                            shard::kMaxImagePixels, " pixels per image"));
  if (o.context > shard::kMaxTokenLength)
    return bad(absl::StrCat("context ", o.context, " exceeds the limit of ", shard::kMaxTokenLength,
                            " tokens"));
  if (o.samples_per_shard < 1)
    return bad(absl::StrCat("samples_per_shard ", o.samples_per_shard, " is not positive"));
  if (!(o.val_fraction >= 0 && o.val_fraction <= 1))
    return bad(absl::StrCat("val_fraction ", o.val_fraction, " is not in [0, 1]"));
  if (o.ranks < 1 || o.rank < 0 || o.rank >= o.ranks)
    return bad(absl::StrCat("rank ", o.rank, " of ", o.ranks, " ranks"));
  if (o.ranks > 1 && !o.gather) return bad("several ranks but no gather function");
  return absl::OkStatus();
}

}  // namespace

const char* split_of(const std::string& path, double val_fraction) {
  // FNV-1a's top bits barely move when keys differ only in their last characters (the keys of
  // one webdataset tar, "part0.tar:s0_000".."s0_019", all fell within 5e-5 of each other: a whole
  // tar went to one split), so the hash is mixed by splitmix64's finaliser first. The top 53
  // bits as a double in [0, 1): exact, so the cut is the same on every machine.
  uint64_t h = fnv1a64(path.data(), path.size());
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  const double u = double(h >> 11) * 0x1.0p-53;
  return u < val_fraction ? "val" : "train";
}

absl::StatusOr<std::string> file_content_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  uint64_t h = kFnvOffset;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    h = fnv1a64(buf.data(), size_t(in.gcount()), h);
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return absl::StrFormat("fnv1a64:%016x", h);
}

namespace {

// This rank's part of a pack: reads the whole index (every rank resolves the labels the same
// way), packs its block of it and fills `report` (inputs, labels, tokenizer) and
// `shard_options` for the manifests.
absl::StatusOr<RankResult> pack_rank(const PackOptions& options, PackReport& report,
                                     ShardWriterOptions& shard_options) {
  auto records =
      options.tar_paths.empty() ? read_index(options.index_path) : read_tars(options.tar_paths);
  if (!records.ok()) return records.status();

  if (records->empty())
    return absl::InvalidArgumentError(absl::StrCat(
        "pack: ", options.tar_paths.empty() ? options.index_path : options.tar_paths[0],
        options.tar_paths.size() > 1 ? " ..." : "", ": no inputs (empty input)"));
  report.inputs = int64_t(records->size());
  auto has_labels = resolve_labels(options, *records, report.label_names);
  if (!has_labels.ok()) return has_labels.status();

  std::optional<Tokenizer> tokenizer;
  shard_options.format_version = options.format_version;
  const bool encoded = options.format_version == shard::kEncodedVersion;
  shard_options.resolution = encoded ? options.max_side : options.resolution;
  shard_options.labels = *has_labels;
  if (!options.tokenizer_model.empty()) {
    auto t = Tokenizer::load(options.tokenizer_model);
    if (!t.ok()) return t.status();
    tokenizer.emplace(std::move(*t));
    // FORMAT.md suggests a sha256; FNV-1a 64 of the .model bytes identifies the model as well
    // for this purpose (telling models apart) without a crypto dependency.
    auto hash = file_content_hash(options.tokenizer_model);
    if (!hash.ok()) return hash.status();
    shard_options.tokenizer = "sentencepiece:" + *hash;
    shard_options.token_length = options.context;
  }
  report.tokenizer = shard_options.tokenizer;

  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec)
    return absl::PermissionDeniedError(
        absl::StrCat("pack: cannot create ", options.out_dir, ": ", ec.message()));

  if (!options.tokenizer_model.empty() && options.rank == 0) {
    // The manifests name the model beside them (Manifest.tokenizer_model).
    const fs::path copy = fs::path(options.out_dir) / kTokenizerModelFile;
    if (!fs::exists(copy) || !fs::equivalent(copy, options.tokenizer_model))
      fs::copy_file(options.tokenizer_model, copy, fs::copy_options::overwrite_existing, ec);
    if (ec)
      return absl::PermissionDeniedError(absl::StrCat("pack: cannot copy ", options.tokenizer_model,
                                                      " to ", copy.string(), ": ", ec.message()));
  }

  auto stem = [&](const char* split) {
    return options.ranks == 1 ? std::string(split)
                              : absl::StrFormat("%s-r%05d", split, options.rank);
  };
  SplitWriter train(stem("train"), options, shard_options),
      val(stem("val"), options, shard_options);
  const fs::path index_dir = fs::path(options.index_path).parent_path();
  // Rank r's block: inputs [n r / ranks, n (r + 1) / ranks); blocks in rank order are the index.
  const int64_t n = int64_t(records->size());
  const int64_t begin = n * options.rank / options.ranks;
  const int64_t end = n * (options.rank + 1) / options.ranks;
  RankResult result;
  int64_t done = 0;
  for (int64_t i = begin; i < end; ++i) {
    const Record& r = (*records)[size_t(i)];
    auto skip = [&](std::string reason) {
      result.skipped.push_back({r.line, r.path, std::move(reason)});
    };
    const fs::path file = fs::path(r.path).is_absolute() ? fs::path(r.path) : index_dir / r.path;
    absl::StatusOr<RgbImage> image = absl::UnknownError("");
    std::vector<uint8_t> file_bytes;  // version 2, index inputs: the file as it is
    auto decode = [&]() -> absl::StatusOr<RgbImage> {
      if (!encoded)
        return r.image_bytes.empty() ? read_image_file(file.string())
                                     : decode_image(r.image_bytes, r.path);
      if (r.image_bytes.empty()) {
        auto bytes = read_file_bytes(file.string());
        if (!bytes.ok()) return bytes.status();
        file_bytes = std::move(*bytes);
      }
      return decode_image(r.image_bytes.empty() ? file_bytes : r.image_bytes,
                          r.image_bytes.empty() ? file.string() : r.path);
    };
    if (!r.problem.empty()) {
      skip(r.problem);
    } else if (r.caption.empty()) {
      skip("empty caption");
    } else if (int64_t(r.caption.size()) > shard::kMaxCaptionBytes) {
      skip(absl::StrCat("caption of ", r.caption.size(), " bytes exceeds the limit of ",
                        shard::kMaxCaptionBytes));
    } else if (*has_labels && !r.label) {
      skip("no label");
    } else if (image = decode(); !image.ok()) {
      skip(std::string(image.status().message()));
    } else {
      RgbImage sample;
      std::vector<uint8_t> reencoded;
      std::span<const uint8_t> stored;
      int32_t stored_h = image->height, stored_w = image->width;
      if (!encoded) {
        sample = resize_and_center_crop(*image, options.resolution);
      } else if (options.max_side > 0 && std::max(image->height, image->width) > options.max_side) {
        // Longer side -> max_side, the shorter scaled alike (at least one pixel).
        const double f = double(options.max_side) / std::max(image->height, image->width);
        stored_h = std::max(1, int(std::lround(image->height * f)));
        stored_w = std::max(1, int(std::lround(image->width * f)));
        auto jpeg = encode_jpeg(resize_image(*image, stored_h, stored_w), options.quality);
        if (!jpeg.ok()) return jpeg.status();
        reencoded = std::move(*jpeg);
        stored = reencoded;
      } else {
        stored = r.image_bytes.empty() ? std::span<const uint8_t>(file_bytes)
                                       : std::span<const uint8_t>(r.image_bytes);
      }
      std::vector<int32_t> tokens;
      if (tokenizer) {
        tokens = tokenizer->encode_padded(r.caption, options.context);
        // Stored length: through the first end-of-text (encode_padded always has one).
        for (size_t i = 0; i < tokens.size(); ++i) {
          if (tokens[i] == tokenizer->eot_id()) {
            tokens.resize(i + 1);
            break;
          }
        }
      }
      SampleToWrite ref{sample.pixels, r.caption, tokens,   int32_t(r.label.value_or(0)),
                        stored,        stored_h,  stored_w, image->height,
                        image->width};
      SplitWriter& w =
          std::string_view(split_of(r.path, options.val_fraction)) == "val" ? val : train;
      if (auto s = w.append(ref); !s.ok()) return s;
    }
    ++done;
    if (options.progress && options.rank == 0)
      options.progress(std::min(done * options.ranks, n), n);
  }
  auto t = train.finish();
  if (!t.ok()) return t.status();
  auto v = val.finish();
  if (!v.ok()) return v.status();
  result.train = std::move(*t);
  result.val = std::move(*v);
  return result;
}

void append_split(RankSplit& to, RankSplit from) {
  to.num_samples += from.num_samples;
  for (ShardInfo& s : from.shards) to.shards.push_back(std::move(s));
}

}  // namespace

absl::StatusOr<PackReport> pack_images(const PackOptions& options) {
  if (auto s = check_options(options); !s.ok()) return s;
  PackReport report;
  ShardWriterOptions shard_options;
  absl::StatusOr<RankResult> mine = absl::UnknownError("");
  try {
    mine = pack_rank(options, report, shard_options);
  } catch (const std::exception& e) {  // must still reach the gather below
    mine = absl::InternalError(absl::StrCat("pack: ", e.what()));
  }
  RankResult all;
  if (options.ranks == 1) {
    if (!mine.ok()) return mine.status();
    all = std::move(*mine);
  } else {
    // Every rank gets here, failed or not, so rank 0 never waits for a rank that gave up.
    const std::vector<std::string> results = options.gather(encode_rank_result(mine));
    if (options.rank != 0) {
      if (!mine.ok()) return decode_rank_result(encode_rank_result(mine), options.rank).status();
      report.splits = {{"train", mine->train.num_samples, {}, ""},
                       {"val", mine->val.num_samples, {}, ""}};
      report.skipped = std::move(mine->skipped);
      return report;
    }
    std::string errors;
    for (int r = 0; r < int(results.size()); ++r) {
      auto one = decode_rank_result(results[size_t(r)], r);
      if (!one.ok()) {
        absl::StrAppend(&errors, errors.empty() ? "" : "; ", one.status().message());
        continue;
      }
      append_split(all.train, std::move(one->train));
      append_split(all.val, std::move(one->val));
      for (SkippedInput& s : one->skipped) all.skipped.push_back(std::move(s));
    }
    if (int(results.size()) != options.ranks)
      absl::StrAppend(&errors, errors.empty() ? "" : "; ", "pack: gathered ", results.size(),
                      " results from ", options.ranks, " ranks");
    if (!errors.empty()) return absl::InternalError(errors);
  }
  report.skipped = std::move(all.skipped);
  for (auto [split, part] : {std::pair{"train", &all.train}, std::pair{"val", &all.val}}) {
    auto written = write_split_manifest(split, *part, options, shard_options, report.label_names);
    if (!written.ok()) return written.status();
    report.splits.push_back(std::move(*written));
  }
  // Rank 0 saw only its own block; now all are done.
  if (options.progress && options.ranks > 1) options.progress(report.inputs, report.inputs);
  return report;
}

}  // namespace tessera::data
