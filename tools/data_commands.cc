#include "tools/data_commands.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <string>
#include <string_view>

#include "data_pipeline/pack.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/tokenizer.h"

namespace tessera::tools {
namespace {

constexpr const char* kPackUsage =
    R"(usage: tessera pack --index FILE --out DIR [options]

Packs the images of a JSONL index ({"path", "caption", "label", "label_name"} per line, as
scripts/make_demo_data writes) into HDF5 shards DIR/SPLIT-00000.h5 ... (data_pipeline/FORMAT.md)
and one manifest DIR/SPLIT.pbtxt per split (proto/data.proto). Unreadable images and empty
captions are skipped and listed.

  --index FILE             the JSONL index (relative image paths are relative to it)
  --out DIR                output directory (created)
  --resolution N           images are resized + centre-cropped to N x N (default 64)
  --tokenizer MODEL        SentencePiece .model: captions are also stored as tokens
  --context N              tokens per caption, with end-of-text and padding (default 32)
  --samples-per-shard N    (default 1024)
  --val-fraction F         share of images, by a hash of their path, in val (default 0.1)
  --labels FILE            label names, line i = label i (default: from the index)
  --quiet                  no progress lines

Exit status: 0 packed; 1 error (the message names the file, line or shard).
)";

constexpr const char* kTokenizerUsage =
    R"(usage: tessera tokenizer train --input TEXT --out PREFIX [--vocab N] [--model-type T]

Trains a SentencePiece tokenizer on TEXT (one sentence per line) and writes PREFIX.model and
PREFIX.vocab. Ids: pad 0, unk 1, end-of-text 2 (data_pipeline/tokenizer.h).

  --vocab N          vocabulary size, an upper bound on small corpora (default 2048)
  --model-type T     unigram (default) or bpe

Exit status: 0 trained; 1 error.
)";

constexpr const char* kInspectUsage =
    R"(usage: tessera inspect PATH [--verify]

Describes a shard (.h5: counts, resolution, datasets, the first 3 captions) or a manifest
(.pbtxt: shards, counts, and whether it validates: every shard present with its recorded size).

  --verify    also check each shard's content hash against the manifest

Exit status: 0 readable and valid; 1 otherwise.
)";

// Flag parsing shared by the verbs: --name VALUE or --name=VALUE.
struct Args {
  std::map<std::string, std::string> values;
  std::vector<std::string> positional;
  bool help = false;
};

bool parse(int argc, char** argv, int first, const char* verb,
           std::initializer_list<std::string_view> with_value,
           std::initializer_list<std::string_view> switches, Args* out) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out->help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      out->positional.push_back(arg);
      continue;
    }
    std::string name = arg, value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) name = arg.substr(0, eq);
    bool known_value = false, known_switch = false;
    for (auto f : with_value) known_value = known_value || name == f;
    for (auto f : switches) known_switch = known_switch || name == f;
    if (known_switch && eq == std::string::npos) {
      out->values[name] = "1";
    } else if (known_value) {
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        std::fprintf(stderr, "tessera %s: %s needs a value\n", verb, name.c_str());
        return false;
      }
      out->values[name] = value;
    } else {
      std::fprintf(stderr, "tessera %s: unknown option '%s' (see --help)\n", verb, arg.c_str());
      return false;
    }
  }
  return true;
}

// Parses a whole number or fraction, naming the flag on failure.
template <typename T>
bool number(const Args& a, const char* verb, const char* flag, T* out) {
  auto it = a.values.find(flag);
  if (it == a.values.end()) return true;
  char* end = nullptr;
  const char* s = it->second.c_str();
  if constexpr (std::is_floating_point_v<T>) {
    *out = T(std::strtod(s, &end));
  } else {
    *out = T(std::strtoll(s, &end, 10));
  }
  if (end == s || *end != '\0') {
    std::fprintf(stderr, "tessera %s: %s '%s' is not a number\n", verb, flag, s);
    return false;
  }
  return true;
}

// A tessera::Error thrown below a verb (a failed check) ends the verb with its message.
int exception_failure(const char* verb, const std::exception& e) {
  std::fprintf(stderr, "tessera %s: %s\n", verb, e.what());
  return 1;
}

int fail(const char* verb, const absl::Status& s) {
  std::fprintf(stderr, "tessera %s: %s\n", verb, std::string(s.message()).c_str());
  return 1;
}

int inspect_shard(const std::string& path) {
  auto reader = data::ShardReader::open(path);
  if (!reader.ok()) return fail("inspect", reader.status());
  const data::ShardReader& r = **reader;
  std::printf("shard %s\n", path.c_str());
  std::printf("  format_version %lld\n", (long long)r.format_version());
  std::printf("  num_samples %lld\n", (long long)r.num_samples());
  std::printf("  resolution %lld\n", (long long)r.resolution());
  std::printf("  tokenizer \"%s\"\n", r.tokenizer().c_str());
  const long long n = r.num_samples(), s = r.resolution(), L = r.token_length();
  std::printf("  datasets:\n    images (%lld, %lld, %lld, 3) uint8\n", n, s, s);
  std::printf("    captions, caption_offsets (%lld,) int64\n", n + 1);
  if (L > 0)
    std::printf("    tokens (%lld, %lld) int32\n    token_lengths (%lld,) int32\n", n, L, n);
  if (r.has_labels()) std::printf("    labels (%lld,) int32\n", n);
  const int64_t shown = std::min<int64_t>(3, r.num_samples());
  auto samples = (*reader)->read(0, shown);
  if (!samples.ok()) return fail("inspect", samples.status());
  for (int64_t i = 0; i < shown; ++i) {
    std::printf("  [%lld]", (long long)i);
    if (r.has_labels()) std::printf(" label %d", samples->labels[i]);
    if (L > 0) std::printf(" tokens %d", samples->token_lengths[i]);
    std::printf(" \"%s\"\n", samples->captions[i].c_str());
  }
  return 0;
}

int inspect_manifest(const std::string& path, bool verify) {
  auto m = data::load_manifest(path, verify);
  if (!m.ok()) {
    std::printf("manifest %s: INVALID\n", path.c_str());
    return fail("inspect", m.status());
  }
  std::printf("manifest %s: valid%s\n", path.c_str(), verify ? " (content hashes checked)" : "");
  std::printf("  split %s, %lld samples in %d shards\n", m->split().c_str(),
              (long long)m->num_samples(), m->shards_size());
  std::printf("  resolution %d, token_length %d, tokenizer \"%s\"\n", m->resolution(),
              m->token_length(), m->tokenizer().c_str());
  std::printf("  %d label names\n", m->label_names_size());
  for (const auto& s : m->shards())
    std::printf("  %s  %lld samples  %lld bytes  %s\n", s.path().c_str(),
                (long long)s.num_samples(), (long long)s.bytes(), s.content_hash().c_str());
  return 0;
}

}  // namespace

int pack_command(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, 1, "pack",
             {"--index", "--out", "--resolution", "--tokenizer", "--context", "--samples-per-shard",
              "--val-fraction", "--labels"},
             {"--quiet"}, &a))
    return 1;
  if (a.help) return std::fputs(kPackUsage, stdout), 0;
  data::PackOptions o;
  o.index_path = a.values["--index"];
  o.out_dir = a.values["--out"];
  o.tokenizer_model = a.values["--tokenizer"];
  o.labels_path = a.values["--labels"];
  if (!number(a, "pack", "--resolution", &o.resolution) ||
      !number(a, "pack", "--context", &o.context) ||
      !number(a, "pack", "--samples-per-shard", &o.samples_per_shard) ||
      !number(a, "pack", "--val-fraction", &o.val_fraction))
    return 1;
  if (o.index_path.empty() || o.out_dir.empty() || !a.positional.empty()) {
    std::fprintf(stderr, "tessera pack: --index and --out are required\n%s", kPackUsage);
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  if (!a.values.count("--quiet")) {
    double last = -1;
    o.progress = [&](int64_t done, int64_t total) {
      const double t = seconds();
      if (done != total && t - last < 1.0) return;  // a line a second, and the last one
      last = t;
      std::printf("pack: %lld/%lld inputs, %.1f/s\n", (long long)done, (long long)total,
                  t > 0 ? done / t : 0.0);
      std::fflush(stdout);
    };
  }
  absl::StatusOr<data::PackReport> report;
  try {
    report = data::pack_images(o);
  } catch (const std::exception& e) {
    return exception_failure("pack", e);
  }
  if (!report.ok()) return fail("pack", report.status());
  std::printf("pack: %lld inputs in %.1f s, %zu skipped, %zu labels, tokenizer \"%s\"\n",
              (long long)report->inputs, seconds(), report->skipped.size(),
              report->label_names.size(), report->tokenizer.c_str());
  for (const auto& s : report->splits)
    std::printf("  %-5s %lld samples in %zu shards  %s\n", s.split.c_str(),
                (long long)s.num_samples, s.shards.size(),
                s.manifest.empty() ? "(no manifest: empty)" : s.manifest.c_str());
  for (const auto& s : report->skipped)
    std::printf("  skipped line %lld (%s): %s\n", (long long)s.line, s.path.c_str(),
                s.reason.c_str());
  return 0;
}

int tokenizer_command(int argc, char** argv) {
  if (argc >= 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h"))
    return std::fputs(kTokenizerUsage, stdout), 0;
  if (argc < 2 || std::string_view(argv[1]) != "train") {
    std::fprintf(stderr, "tessera tokenizer: expected 'train'\n%s", kTokenizerUsage);
    return 1;
  }
  Args a;
  if (!parse(argc, argv, 2, "tokenizer", {"--input", "--out", "--vocab", "--model-type"}, {}, &a))
    return 1;
  if (a.help) return std::fputs(kTokenizerUsage, stdout), 0;
  data::TokenizerTrainOptions o;
  o.vocab_size = 2048;
  if (!number(a, "tokenizer", "--vocab", &o.vocab_size)) return 1;
  if (a.values.count("--model-type")) o.model_type = a.values["--model-type"];
  const std::string input = a.values["--input"], out = a.values["--out"];
  if (input.empty() || out.empty() || !a.positional.empty()) {
    std::fprintf(stderr, "tessera tokenizer: --input and --out are required\n%s", kTokenizerUsage);
    return 1;
  }
  try {
    if (auto s = data::train_tokenizer(input, out, o); !s.ok()) return fail("tokenizer", s);
    auto t = data::Tokenizer::load(out + ".model");
    if (!t.ok()) return fail("tokenizer", t.status());
    std::printf("tokenizer: wrote %s.model (vocabulary %d)\n", out.c_str(), t->vocab_size());
  } catch (const std::exception& e) {
    return exception_failure("tokenizer", e);
  }
  return 0;
}

int inspect_command(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, 1, "inspect", {}, {"--verify"}, &a)) return 1;
  if (a.help) return std::fputs(kInspectUsage, stdout), 0;
  if (a.positional.size() != 1) {
    std::fprintf(stderr, "tessera inspect: expected one PATH\n%s", kInspectUsage);
    return 1;
  }
  const std::string& path = a.positional[0];
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".h5")) return inspect_shard(path);
  if (ends_with(".pbtxt")) return inspect_manifest(path, a.values.count("--verify") > 0);
  std::fprintf(stderr, "tessera inspect: %s: expected a shard (.h5) or a manifest (.pbtxt)\n",
               path.c_str());
  return 1;
}

}  // namespace tessera::tools
