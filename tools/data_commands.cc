#include "tools/data_commands.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_split.h"
#include "data_pipeline/contact_sheet.h"
#include "data_pipeline/decode_crop.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/pack_text.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/text_shard.h"
#include "data_pipeline/tokenizer.h"
#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"
#include "tools/checkpoint_commands.h"
#include "tools/cli_args.h"
#include "tools/pack_mpi.h"
#include "tools/verify_command.h"

namespace tessera::tools {
namespace {

constexpr const char* kPackUsage =
    R"(usage: tessera pack --index FILE --out DIR [options]
       tessera pack --tar TARS --out DIR [options]
       tessera pack --text FILE --tokenizer MODEL --out DIR [--tokens-per-shard N]

Packs the images of a JSONL index ({"path", "caption", "label", "label_name"} per line, as
scripts/make_demo_data writes) into HDF5 shards DIR/SPLIT-00000.h5 ... (data_pipeline/FORMAT.md)
and one manifest DIR/SPLIT.pbtxt per split (proto/data.proto). Unreadable images and empty
captions are skipped and listed. Under mpirun (--text: rank 0 alone) each rank packs a block of
the inputs into DIR/SPLIT-rRRRRR-KKKKK.h5 and rank 0 writes the manifests; the progress line
(rank 0: done/total, images/s, ETA) is rewritten in place on a terminal.

  --index FILE             the JSONL index (relative image paths are relative to it)
  --tar TARS               webdataset-style tars instead (img2dataset's output: KEY.jpg|png|webp +
                           KEY.txt|json per sample): comma-separated files, or a directory
                           (its *.tar files in name order)
  --out DIR                output directory (created)
  --resolution N           images are resized + centre-cropped to N x N (default 64)
  --encoded                format version 2: the image files are stored encoded (JPEG/PNG/WebP as
                           they came); the loader decodes and crops them at the model's size
  --max-side N             with --encoded (implied): images whose longer side exceeds N are
                           shrunk to N and re-encoded as JPEG (default 0: none)
  --quality Q              JPEG quality of those re-encoded images (default 90)
  --tokenizer MODEL        SentencePiece .model: captions are also stored as tokens
  --context N              tokens per caption, with end-of-text and padding (default 32)
  --samples-per-shard N    (default 1024)
  --val-fraction F         share of images, by a hash of their path, in val (default 0.1)
  --labels FILE            label names, line i = label i (default: from the index)
  --quiet                  no progress lines

With --text: FILE holds one paragraph per line, documents separated by empty lines; it becomes
token-stream shards for GPT (kind "text", data_pipeline/text_shard.h), split by a hash of each
paragraph (--val-fraction), end-of-text after each document.
  --tokens-per-shard N     (default 1048576)

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
    R"(usage: tessera inspect PATH [--sheet OUT.png [--count N]]
       tessera inspect --verify PATH...      (also under mpirun: each rank a share of the shards)

Describes a shard (.h5: counts, resolution, datasets, the first 3 captions) or a manifest
(.pbtxt: shards, counts, and whether it validates: every shard present with its recorded size).
A directory is read as a checkpoint (a step, checkpoints/ or run directory): layout, tensors,
sizes, and verification of the commit marker and of every checksum.

  --verify        verify everything given: for a shard (image or text) every chunk of every
                  dataset is read, so each chunk's Fletcher32 checksum is checked; for a manifest
                  also each shard's content hash; for a checkpoint as above. Each bad chunk is
                  listed (file, dataset, samples) and the rest still checked. Several PATHs may
                  be given; under mpirun shard i is verified by rank i mod size and rank 0
                  prints the report.
  --sheet OUT.png shard only: a contact sheet of its first images (PNG)
  --count N       images on the sheet (default 64)

Exit status: 0 readable and valid (with --verify: everything verified); 1 otherwise.
)";

// A tessera::Error thrown below a verb (a failed check) ends the verb with its message.
int exception_failure(const char* verb, const std::exception& e) {
  std::fprintf(stderr, "tessera %s: %s\n", verb, e.what());
  return 1;
}

// A text shard (token stream): counts and the first tokens.
int inspect_text_shard(const data::TextShardReader& r) {
  std::printf(
      "text shard %s\n  num_tokens %lld, eot_id %d\n  datasets:\n    text_tokens (%lld,) int32\n",
      r.path().c_str(), (long long)r.num_tokens(), r.eot_id(), (long long)r.num_tokens());
  auto head = r.read(0, std::min<int64_t>(16, r.num_tokens()));
  if (!head.ok()) return fail("inspect", head.status());
  std::printf("  first tokens:");
  for (int32_t t : *head) std::printf(" %d", t);
  std::printf("\n");
  return 0;
}

int inspect_shard(const std::string& path, const std::string& sheet, int64_t count) {
  auto reader = data::ShardReader::open(path);
  if (!reader.ok()) {
    if (auto text = data::TextShardReader::open(path); text.ok()) return inspect_text_shard(**text);
    return fail("inspect", reader.status());
  }
  const data::ShardReader& r = **reader;
  std::printf("shard %s\n", path.c_str());
  std::printf("  format_version %lld\n", (long long)r.format_version());
  std::printf("  num_samples %lld\n", (long long)r.num_samples());
  std::printf("  resolution %lld\n", (long long)r.resolution());
  std::printf("  tokenizer \"%s\"\n", r.tokenizer().c_str());
  const long long n = r.num_samples(), s = r.resolution(), L = r.token_length();
  if (r.encoded())
    std::printf(
        "  datasets:\n    image_bytes, image_offsets (%lld,) int64\n    image_sizes, "
        "original_sizes (%lld, 2) int32\n",
        n + 1, n);
  else
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
  if (!sheet.empty()) {
    const int64_t n = std::min<int64_t>(count, r.num_samples());
    if (n < 1) return fail("inspect", absl::InvalidArgumentError("no images for --sheet"));
    auto first = (*reader)->read(0, n);
    if (!first.ok()) return fail("inspect", first.status());
    const int columns = int(std::ceil(std::sqrt(double(n))));
    // Encoded images: each decoded and centre-cropped (as evaluation does) to 96 x 96.
    const int tile = r.encoded() ? 96 : int(r.resolution());
    std::vector<uint8_t> tiles;
    if (r.encoded()) {
      tiles.resize(size_t(n) * tile * tile * 3);
      data::DecodeScratch scratch;
      for (int64_t i = 0; i < n; ++i) {
        const int h = first->image_sizes[2 * i], w = first->image_sizes[2 * i + 1];
        data::AugmentConfig centre;
        centre.random_crop = false;
        const data::CropBox box = data::sample_crop(h, w, centre, {});
        if (auto st = data::decode_crop(first->encoded(i), h, w, box, tile,
                                        tiles.data() + size_t(i) * tile * tile * 3, &scratch,
                                        absl::StrCat("shard ", path, ", sample ", i));
            !st.ok())
          return fail("inspect", st);
      }
    }
    const data::RgbImage image =
        data::contact_sheet(r.encoded() ? tiles.data() : first->images.data(), n, tile, columns);
    if (auto s = data::write_png(sheet, image); !s.ok()) return fail("inspect", s);
    std::printf("  contact sheet of samples [0, %lld): %s (%dx%d)\n", (long long)n, sheet.c_str(),
                image.width, image.height);
  }
  return 0;
}

int inspect_manifest(const std::string& path) {
  auto m = data::load_manifest(path);
  if (!m.ok()) {
    std::printf("manifest %s: INVALID\n", path.c_str());
    return fail("inspect", m.status());
  }
  std::printf("manifest %s: valid\n", path.c_str());
  std::printf("  split %s, %lld samples in %d shards\n", m->split().c_str(),
              (long long)m->num_samples(), m->shards_size());
  std::printf("  kind %s, resolution %d, token_length %d, tokenizer \"%s\" (model %s)\n",
              m->kind().empty() ? "images" : m->kind().c_str(), m->resolution(), m->token_length(),
              m->tokenizer().c_str(),
              m->tokenizer_model().empty() ? "none" : m->tokenizer_model().c_str());
  std::printf("  %d label names\n", m->label_names_size());
  for (const auto& s : m->shards())
    std::printf("  %s  %lld samples  %lld bytes  %s\n", s.path().c_str(),
                (long long)s.num_samples(), (long long)s.bytes(), s.content_hash().c_str());
  return 0;
}

int pack_text_command(CliArgs& a) {
  data::TextPackOptions o;
  o.text_path = a.get("--text");
  o.out_dir = a.get("--out");
  o.tokenizer_model = a.get("--tokenizer");
  if (!number_flag(a, "pack", "--tokens-per-shard", &o.tokens_per_shard) ||
      !number_flag(a, "pack", "--val-fraction", &o.val_fraction))
    return 1;
  if (o.out_dir.empty() || o.tokenizer_model.empty()) {
    std::fprintf(stderr, "tessera pack: --text needs --tokenizer and --out\n%s", kPackUsage);
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<data::TextPackReport> report;
  try {
    report = data::pack_text(o);
  } catch (const std::exception& e) {
    return exception_failure("pack", e);
  }
  if (!report.ok()) return fail("pack", report.status());
  std::printf("pack: %lld paragraphs in %lld documents in %.1f s, tokenizer \"%s\"\n",
              (long long)report->paragraphs, (long long)report->documents,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
              report->tokenizer.c_str());
  for (const auto& s : report->splits)
    std::printf("  %-5s %lld tokens in %zu shards  %s\n", s.split.c_str(), (long long)s.num_samples,
                s.shards.size(), s.manifest.empty() ? "(no manifest: empty)" : s.manifest.c_str());
  return 0;
}

}  // namespace

int pack_command(int argc, char** argv) {
  CliArgs a;
  if (!parse_cli_args("pack", argc, argv, 1,
                      {"--index", "--out", "--resolution", "--tokenizer", "--context",
                       "--samples-per-shard", "--val-fraction", "--labels", "--text",
                       "--tokens-per-shard", "--tar", "--max-side", "--quality"},
                      {"--quiet", "--encoded"}, &a))
    return 1;
  if (a.help) return std::fputs(kPackUsage, stdout), 0;
  if (a.has("--text")) {
    // Text packing is one sequential token stream: under mpirun rank 0 does it all alone (two
    // ranks writing the same shards would clobber each other).
    if (distributed::launched_by_mpi() && distributed::world_rank_for_messages() != 0) return 0;
    return pack_text_command(a);
  }
  data::PackOptions o;
  o.index_path = a.get("--index");
  o.out_dir = a.get("--out");
  o.tokenizer_model = a.get("--tokenizer");
  o.labels_path = a.get("--labels");
  if (!number_flag(a, "pack", "--resolution", &o.resolution) ||
      !number_flag(a, "pack", "--context", &o.context) ||
      !number_flag(a, "pack", "--samples-per-shard", &o.samples_per_shard) ||
      !number_flag(a, "pack", "--val-fraction", &o.val_fraction) ||
      !number_flag(a, "pack", "--max-side", &o.max_side) ||
      !number_flag(a, "pack", "--quality", &o.quality))
    return 1;
  if (a.has("--encoded") || a.has("--max-side") || a.has("--quality")) {
    if (a.has("--resolution")) {
      std::fprintf(
          stderr,
          "tessera pack: --resolution sizes decoded pixels (format 1); encoded shards "
          "(--encoded, --max-side, --quality) are cropped to the model's size in training\n");
      return 1;
    }
    o.format_version = 2;
  }
  const std::vector<std::string> tars = absl::StrSplit(a.get("--tar"), ',', absl::SkipEmpty());
  for (const std::string& t : tars) {
    if (std::filesystem::is_directory(t)) {
      std::vector<std::string> found;
      for (const auto& e : std::filesystem::directory_iterator(t))
        if (e.path().extension() == ".tar") found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      if (found.empty()) {
        std::fprintf(stderr, "tessera pack: --tar %s: no .tar files in this directory\n",
                     t.c_str());
        return 1;
      }
      o.tar_paths.insert(o.tar_paths.end(), found.begin(), found.end());
    } else {
      o.tar_paths.push_back(t);
    }
  }
  if (o.index_path.empty() == o.tar_paths.empty() || o.out_dir.empty()) {
    std::fprintf(stderr, "tessera pack: --out and one of --index or --tar are required\n%s",
                 kPackUsage);
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // Under mpirun every rank packs a block of the inputs and rank 0 writes the manifests.
  std::unique_ptr<distributed::MpiEnvironment> mpi;
  if (distributed::launched_by_mpi()) {
    mpi = std::make_unique<distributed::MpiEnvironment>();
    MPI_Comm_rank(MPI_COMM_WORLD, &o.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &o.ranks);
    o.gather = mpi_gather_to_root;
  }
  ProgressLine line(stdout);
  if (!a.has("--quiet") && o.rank == 0)
    o.progress = [&](int64_t done, int64_t total) { line.update(done, total); };
  absl::StatusOr<data::PackReport> report;
  try {
    report = data::pack_images(o);
  } catch (const std::exception& e) {
    return exception_failure("pack", e);
  }
  line.finish();
  if (!report.ok()) return fail("pack", report.status());
  if (o.rank != 0) return 0;  // rank 0 prints the summary of all ranks
  std::printf(
      "pack: %lld inputs in %.1f s on %d ranks, %zu skipped, %zu labels, tokenizer \"%s\"\n",
      (long long)report->inputs, seconds(), o.ranks, report->skipped.size(),
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
  CliArgs a;
  if (!parse_cli_args("tokenizer", argc, argv, 2, {"--input", "--out", "--vocab", "--model-type"},
                      {}, &a))
    return 1;
  if (a.help) return std::fputs(kTokenizerUsage, stdout), 0;
  data::TokenizerTrainOptions o;
  o.vocab_size = 2048;
  if (!number_flag(a, "tokenizer", "--vocab", &o.vocab_size)) return 1;
  if (a.has("--model-type")) o.model_type = a.get("--model-type");
  const std::string input = a.get("--input"), out = a.get("--out");
  if (input.empty() || out.empty()) {
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
  CliArgs a;
  if (!parse_cli_args("inspect", argc, argv, 1, {"--sheet", "--count"}, {"--verify"}, &a,
                      /*max_positional=*/1 << 20))
    return 1;
  int64_t count = 64;
  if (!number_flag(a, "inspect", "--count", &count)) return 1;
  if (a.help) return std::fputs(kInspectUsage, stdout), 0;
  const bool verify = a.has("--verify");
  if (a.positional.empty() || (a.positional.size() > 1 && !verify)) {
    std::fprintf(stderr, "tessera inspect: expected one PATH (several with --verify)\n%s",
                 kInspectUsage);
    return 1;
  }
  const std::string& path = a.positional[0];
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (verify) {
    // One shard or manifest is described first (rank 0 under mpirun), as without --verify; its
    // verdict is the verification's (a description that fails on a bad chunk does not stop it).
    if (a.positional.size() == 1 && distributed::world_rank_for_messages() == 0) {
      if (ends_with(".h5")) inspect_shard(path, a.get("--sheet"), count);
      if (ends_with(".pbtxt")) inspect_manifest(path);
      std::fflush(stdout);
    }
    return verify_command(a.positional);
  }
  if (ends_with(".h5")) return inspect_shard(path, a.get("--sheet"), count);
  if (ends_with(".pbtxt")) return inspect_manifest(path);
  if (std::filesystem::is_directory(path)) return inspect_checkpoint(path);
  std::fprintf(stderr,
               "tessera inspect: %s: expected a shard (.h5), a manifest (.pbtxt) or a checkpoint "
               "directory\n",
               path.c_str());
  return 1;
}

}  // namespace tessera::tools
