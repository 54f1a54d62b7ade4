#include "data_pipeline/pack.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/shard_format.h"
#include "data_pipeline/shard_writer.h"
#include "data_pipeline/tokenizer.h"
#include "nlohmann/json.hpp"

namespace tessera::data {
namespace {

// File name of the tokenizer model copied beside the manifests.
constexpr const char* kTokenizerCopy = "tokenizer.model";

namespace fs = std::filesystem;

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}

// One index line that parsed.
struct Record {
  int64_t line = 0;
  std::string path;  // as written in the index (the split key)
  std::string caption;
  std::optional<int64_t> label;
  std::string label_name;
};

absl::StatusOr<std::vector<Record>> read_index(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("pack: cannot open index ", path));
  std::vector<Record> records;
  std::string text;
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto where = [&] { return absl::StrCat(path, ":", line); };
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      return absl::InvalidArgumentError(absl::StrCat("pack: ", where(), ": not a JSON object"));
    Record r;
    r.line = line;
    auto str = [&](const char* key, std::string* out, bool required) -> absl::Status {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) {
        if (required)
          return absl::InvalidArgumentError(absl::StrCat("pack: ", where(), ": no \"", key, "\""));
        return absl::OkStatus();
      }
      if (!it->is_string())
        return absl::InvalidArgumentError(
            absl::StrCat("pack: ", where(), ": \"", key, "\" is not a string"));
      *out = it->get<std::string>();
      return absl::OkStatus();
    };
    if (auto s = str("path", &r.path, true); !s.ok()) return s;
    if (auto s = str("caption", &r.caption, false); !s.ok()) return s;
    if (auto s = str("label_name", &r.label_name, false); !s.ok()) return s;
    if (auto it = j.find("label"); it != j.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0)
        return absl::InvalidArgumentError(
            absl::StrCat("pack: ", where(), ": \"label\" is not a non-negative integer"));
      r.label = it->get<int64_t>();
    }
    records.push_back(std::move(r));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("pack: error reading index ", path));
  return records;
}

// Resolves every record's label id and the label names. Returns whether the shards have labels
// (any record names one). A record whose label cannot be resolved gets label = nullopt and is
// later skipped.
absl::StatusOr<bool> resolve_labels(const PackOptions& options, std::vector<Record>& records,
                                    std::vector<std::string>& names) {
  bool any = false;
  for (const Record& r : records) any = any || r.label || !r.label_name.empty();
  if (!any) return false;
  std::map<std::string, int64_t> by_name;
  if (!options.labels_path.empty()) {
    std::ifstream in(options.labels_path);
    if (!in)
      return absl::NotFoundError(absl::StrCat("pack: cannot open labels ", options.labels_path));
    for (std::string name; std::getline(in, name);) {
      if (!name.empty() && name.back() == '\r') name.pop_back();
      by_name.emplace(name, int64_t(names.size()));
      names.push_back(name);
    }
  }
  const bool fixed = !options.labels_path.empty();
  for (Record& r : records) {
    if (r.label) {
      if (fixed && *r.label >= int64_t(names.size()))
        return absl::InvalidArgumentError(
            absl::StrCat("pack: ", options.index_path, ":", r.line, ": label ", *r.label,
                         " is not below the ", names.size(), " names of ", options.labels_path));
      if (!fixed && *r.label >= int64_t(names.size())) names.resize(*r.label + 1);
      std::string& known = names[*r.label];
      if (!r.label_name.empty() && known.empty() && !fixed) {
        known = r.label_name;
        by_name.emplace(known, *r.label);
      } else if (!r.label_name.empty() && known != r.label_name) {
        return absl::InvalidArgumentError(
            absl::StrCat("pack: ", options.index_path, ":", r.line, ": label ", *r.label,
                         " is named \"", r.label_name, "\" here but \"", known, "\" before"));
      }
    } else if (!r.label_name.empty()) {
      auto it = by_name.find(r.label_name);
      if (it != by_name.end()) {
        r.label = it->second;
      } else if (fixed) {
        return absl::InvalidArgumentError(absl::StrCat("pack: ", options.index_path, ":", r.line,
                                                       ": label_name \"", r.label_name,
                                                       "\" is not in ", options.labels_path));
      } else {
        r.label = int64_t(names.size());
        by_name.emplace(r.label_name, *r.label);
        names.push_back(r.label_name);
      }
    }
  }
  return true;
}

// The shards of one split, opened lazily and rotated every samples_per_shard samples.
class SplitWriter {
 public:
  SplitWriter(std::string split, const PackOptions& options, ShardWriterOptions shard_options)
      : options_(options), shard_options_(std::move(shard_options)) {
    report_.split = std::move(split);
  }

  absl::Status append(const SampleToWrite& sample) {
    if (writer_ && writer_->num_samples() >= options_.samples_per_shard) {
      if (auto s = close(); !s.ok()) return s;
    }
    if (!writer_) {
      std::string name = absl::StrFormat("%s-%05d.h5", report_.split, report_.shards.size());
      auto w = ShardWriter::create((fs::path(options_.out_dir) / name).string(), shard_options_);
      if (!w.ok()) return w.status();
      writer_ = std::move(*w);
      report_.shards.push_back(name);
    }
    ++report_.num_samples;
    return writer_->append(sample);
  }

  absl::Status close() {
    if (!writer_) return absl::OkStatus();
    ShardInfo info;
    info.set_path(report_.shards.back());
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
    shards_.push_back(std::move(info));
    return absl::OkStatus();
  }

  // Writes SPLIT.pbtxt (via a .tmp and a rename, so a reader never sees half a manifest).
  absl::Status write_manifest(const std::vector<std::string>& label_names) {
    if (auto s = close(); !s.ok()) return s;
    if (report_.num_samples == 0) return absl::OkStatus();
    Manifest m;
    m.set_format_version(int32_t(shard::kFormatVersion));
    m.set_resolution(int32_t(shard_options_.resolution));
    m.set_tokenizer(shard_options_.tokenizer);
    m.set_token_length(int32_t(shard_options_.token_length));
    if (!options_.tokenizer_model.empty()) m.set_tokenizer_model(kTokenizerCopy);
    for (const std::string& n : label_names) m.add_label_names(n);
    m.set_split(report_.split);
    m.set_num_samples(report_.num_samples);
    for (const ShardInfo& s : shards_) *m.add_shards() = s;
    std::string text;
    if (!google::protobuf::TextFormat::PrintToString(m, &text))
      return absl::InternalError("pack: cannot print the manifest");
    const std::string path = (fs::path(options_.out_dir) / (report_.split + ".pbtxt")).string();
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << "# tessera pack manifest (proto/data.proto tessera.data.Manifest)\n" << text;
      if (!out.flush())
        return absl::PermissionDeniedError(absl::StrCat("pack: cannot write ", tmp));
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec)
      return absl::InternalError(absl::StrCat("pack: cannot rename ", tmp, ": ", ec.message()));
    report_.manifest = path;
    return absl::OkStatus();
  }

  const SplitReport& report() const { return report_; }

 private:
  const PackOptions& options_;
  ShardWriterOptions shard_options_;
  SplitReport report_;
  std::unique_ptr<ShardWriter> writer_;
  std::vector<ShardInfo> shards_;
};

absl::Status check_options(const PackOptions& o) {
  auto bad = [](const std::string& m) { return absl::InvalidArgumentError("pack: " + m); };
  if (o.index_path.empty()) return bad("no index given");
  if (o.out_dir.empty()) return bad("no output directory given");
  if (o.resolution < 1) return bad(absl::StrCat("resolution ", o.resolution, " is not positive"));
  if (!o.tokenizer_model.empty() && o.context < 2)
    return bad(absl::StrCat("context ", o.context, " leaves no room for text and end-of-text"));
  if (o.samples_per_shard < 1)
    return bad(absl::StrCat("samples_per_shard ", o.samples_per_shard, " is not positive"));
  if (!(o.val_fraction >= 0 && o.val_fraction <= 1))
    return bad(absl::StrCat("val_fraction ", o.val_fraction, " is not in [0, 1]"));
  return absl::OkStatus();
}

}  // namespace

const char* split_of(const std::string& path, double val_fraction) {
  // The top 53 bits as a double in [0, 1): exact, so the cut is the same on every machine.
  const double u = double(fnv1a64(path.data(), path.size()) >> 11) * 0x1.0p-53;
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

absl::StatusOr<PackReport> pack_images(const PackOptions& options) {
  if (auto s = check_options(options); !s.ok()) return s;
  auto records = read_index(options.index_path);
  if (!records.ok()) return records.status();

  PackReport report;
  report.inputs = int64_t(records->size());
  auto has_labels = resolve_labels(options, *records, report.label_names);
  if (!has_labels.ok()) return has_labels.status();

  std::optional<Tokenizer> tokenizer;
  ShardWriterOptions shard_options;
  shard_options.resolution = options.resolution;
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

  if (!options.tokenizer_model.empty()) {
    // The manifests name the model beside them (Manifest.tokenizer_model).
    const fs::path copy = fs::path(options.out_dir) / kTokenizerCopy;
    if (!fs::exists(copy) || !fs::equivalent(copy, options.tokenizer_model))
      fs::copy_file(options.tokenizer_model, copy, fs::copy_options::overwrite_existing, ec);
    if (ec)
      return absl::PermissionDeniedError(absl::StrCat("pack: cannot copy ", options.tokenizer_model,
                                                      " to ", copy.string(), ": ", ec.message()));
  }

  SplitWriter train("train", options, shard_options), val("val", options, shard_options);
  const fs::path index_dir = fs::path(options.index_path).parent_path();
  int64_t done = 0;
  for (const Record& r : *records) {
    auto skip = [&](std::string reason) {
      report.skipped.push_back({r.line, r.path, std::move(reason)});
    };
    const fs::path file = fs::path(r.path).is_absolute() ? fs::path(r.path) : index_dir / r.path;
    if (r.caption.empty()) {
      skip("empty caption");
    } else if (*has_labels && !r.label) {
      skip("no label");
    } else if (auto image = read_image_file(file.string()); !image.ok()) {
      skip(std::string(image.status().message()));
    } else {
      RgbImage sample = resize_and_center_crop(*image, options.resolution);
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
      SampleToWrite ref{sample.pixels, r.caption, tokens, int32_t(r.label.value_or(0))};
      SplitWriter& w =
          std::string_view(split_of(r.path, options.val_fraction)) == "val" ? val : train;
      if (auto s = w.append(ref); !s.ok()) return s;
    }
    ++done;
    if (options.progress) options.progress(done, report.inputs);
  }
  for (SplitWriter* w : {&train, &val}) {
    if (auto s = w->write_manifest(report.label_names); !s.ok()) return s;
    report.splits.push_back(w->report());
  }
  return report;
}

absl::StatusOr<Manifest> load_manifest(const std::string& path, bool verify_hashes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("manifest ", path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();

  // Parse errors go to a collector so the message carries the line and column.
  struct Collector : google::protobuf::io::ErrorCollector {
    std::string errors;
    void AddError(int line, int column, const std::string& message) override {
      absl::StrAppend(&errors, errors.empty() ? "" : "; ", "line ", line + 1, ":", column + 1, ": ",
                      message);
    }
  } collector;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  Manifest m;
  if (!parser.ParseFromString(text.str(), &m))
    return absl::InvalidArgumentError(absl::StrCat("manifest ", path, ": ", collector.errors));

  auto bad = [&](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat("manifest ", path, ": ", what));
  };
  if (m.format_version() != shard::kFormatVersion)
    return bad(absl::StrCat("format_version ", m.format_version(), ", this build reads ",
                            shard::kFormatVersion));
  if (m.resolution() < 1) return bad(absl::StrCat("resolution ", m.resolution()));
  if (m.shards().empty()) return bad("no shards");
  const fs::path dir = fs::path(path).parent_path();
  int64_t total = 0;
  for (const ShardInfo& s : m.shards()) {
    const std::string file = (dir / s.path()).string();
    auto shard_bad = [&](const std::string& what) {
      return bad(absl::StrCat("shard ", file, ": ", what));
    };
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (ec) return shard_bad(absl::StrCat("missing (", ec.message(), ")"));
    if (int64_t(size) != s.bytes())
      return shard_bad(absl::StrCat("size ", size, " bytes, manifest records ", s.bytes()));
    if (s.num_samples() < 1) return shard_bad(absl::StrCat("num_samples ", s.num_samples()));
    if (verify_hashes) {
      auto h = file_content_hash(file);
      if (!h.ok()) return shard_bad(std::string(h.status().message()));
      if (*h != s.content_hash())
        return shard_bad(
            absl::StrCat("content hash ", *h, ", manifest records ", s.content_hash()));
    }
    total += s.num_samples();
  }
  if (total != m.num_samples())
    return bad(absl::StrCat("shards hold ", total, " samples, num_samples says ", m.num_samples()));
  return m;
}

}  // namespace tessera::data
