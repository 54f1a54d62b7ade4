// `tessera generate` (GPT) and `tessera sample` (DiT).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "data_pipeline/pack.h"
#include "data_pipeline/tokenizer.h"
#include "eval/clip_eval.h"
#include "eval/generate.h"
#include "eval/load.h"
#include "models/dit.h"
#include "tools/cli_args.h"
#include "tools/eval_command.h"

namespace tessera::tools {
namespace {

constexpr const char* kGenerateUsage =
    R"(usage: tessera generate --checkpoint CKPT --prompt TEXT [--greedy | --top-k K] [options]

Continues a prompt with a GPT checkpoint and prints the prompt and the continuation.
  --prompt TEXT      with --tokenizer: text; without: token ids separated by spaces
  --tokenizer MODEL  SentencePiece .model to encode the prompt and decode the output
  --greedy           the most likely token each step (the default)
  --top-k K          sample among the K most likely tokens
  --temperature T    divides the logits before sampling (default 1)
  --tokens N         new tokens to generate (default 32)
  --seed S           sampling seed (default 0)
  --device D         cpu (default), cuda or cuda:N: where the model runs
  --weights W        ema (the moving average of the weights), raw, or auto (default: ema when
                     the checkpoint holds one)
  --no-clip          do not clamp each step's predicted clean image to [-1, 1] (models/dit.h:
                     plain DDIM; an under-trained model then gives saturated noise)
)";

constexpr const char* kSampleUsage =
    R"(usage: tessera sample --checkpoint CKPT --out grid.png [options]

Draws images from a DiT checkpoint with DDIM and classifier-free guidance, one row per class,
the class name under each row (from the run's data manifest, else "class N").
  --classes A,B,...  class indices (default: up to the first 8 classes)
  --per-class N      images per row (default 6)
  --guidance S       classifier-free guidance scale (default 4; 1 = conditional only)
  --steps N          DDIM steps (default 50)
  --seed S           noise seed (default 0)
  --scale N          pixel magnification in the grid (default: images at least 64 px)
  --device D         cpu (default), cuda or cuda:N: where the model runs
  --weights W        ema (the moving average of the weights), raw, or auto (default: ema when
                     the checkpoint holds one)
  --no-clip          do not clamp each step's predicted clean image to [-1, 1] (models/dit.h:
                     plain DDIM; an under-trained model then gives saturated noise)
)";

// Class names from the manifest the run trained on, when it has them.
std::vector<std::string> class_names(const eval::LoadedModel& m, int n_classes) {
  std::vector<std::string> names;
  const std::string& source = m.info.config.data().source();
  if (source != "synthetic" && !source.empty()) {
    if (auto man = data::load_manifest(source); man.ok()) {
      names.assign(man->label_names().begin(), man->label_names().end());
    } else {
      // data.source is as the run was given it, often relative to the directory it trained in.
      std::fprintf(stderr, "tessera sample: no class names (%s); rows are labelled \"class N\"\n",
                   std::string(man.status().message()).c_str());
    }
  }
  for (int i = int(names.size()); i < n_classes; ++i) names.push_back(absl::StrCat("class ", i));
  return names;
}

}  // namespace

int generate_command(int argc, char** argv) {
  CliArgs a;
  if (!parse_cli_args(argv[0], argc, argv, 1,
                      {"--checkpoint", "--prompt", "--tokenizer", "--top-k", "--temperature",
                       "--tokens", "--seed", "--device", "--weights"},
                      {"--greedy"}, &a)) {
    return 1;
  }
  if (a.help) {
    std::fputs(kGenerateUsage, stdout);
    return 0;
  }
  if (a.get("--checkpoint").empty() || !a.has("--prompt")) {
    std::fprintf(stderr, "tessera generate: --checkpoint and --prompt are required\n%s",
                 kGenerateUsage);
    return 1;
  }
  if (a.has("--greedy") && a.has("--top-k")) {
    std::fprintf(stderr, "tessera generate: --greedy and --top-k exclude each other\n");
    return 1;
  }
  long long top_k, tokens, seed;
  double temperature;
  if (!int_flag(a, "generate", "--top-k", 0, &top_k) ||
      !int_flag(a, "generate", "--tokens", 32, &tokens) ||
      !int_flag(a, "generate", "--seed", 0, &seed) ||
      !float_flag(a, "generate", "--temperature", 1.0, &temperature)) {
    return 1;
  }
  Device device;
  if (!device_flag(a, "generate", &device)) return 1;
  auto m = eval::load_checkpoint_model(a.get("--checkpoint"), device, a.get("--weights", "auto"));
  if (!m.ok()) return fail("generate", m.status());
  if (auto s = eval::expect_family(*m, {"gpt"}, "generate"); !s.ok()) return fail("generate", s);
  const config::GptConfig& g = m->info.config.model().gpt();
  const std::string tokenizer_path = a.get("--tokenizer");
  std::optional<data::Tokenizer> tokenizer;
  if (!tokenizer_path.empty()) {
    auto t = data::Tokenizer::load(tokenizer_path);
    if (!t.ok()) return fail("generate", t.status());
    tokenizer.emplace(std::move(*t));
  }
  std::vector<int32_t> prompt;
  const std::string text = a.get("--prompt");
  if (tokenizer) {
    prompt = tokenizer->encode(text);
  } else {
    const std::vector<std::string> parts = absl::StrSplit(text, ' ', absl::SkipEmpty());
    for (const std::string& p : parts) {
      char* end = nullptr;
      const long v = std::strtol(p.c_str(), &end, 10);
      if (end == p.c_str() || *end != '\0' || v < 0 || v >= g.vocab_size()) {
        std::fprintf(stderr,
                     "tessera generate: --prompt '%s': '%s' is not a token id in [0, %d) (pass "
                     "--tokenizer MODEL to give text)\n",
                     text.c_str(), p.c_str(), g.vocab_size());
        return 1;
      }
      prompt.push_back(int32_t(v));
    }
  }
  if (prompt.empty()) {
    std::fprintf(stderr, "tessera generate: the prompt has no tokens\n");
    return 1;
  }
  eval::GenerateOptions o;
  o.max_new_tokens = int(tokens);
  o.top_k = int(top_k);
  o.temperature = float(temperature);
  o.seed = uint64_t(seed);
  if (tokenizer) o.stop_token = tokenizer->eot_id();
  const std::vector<int32_t> out =
      eval::generate(static_cast<models::Gpt&>(*m->model), prompt, g.context(), o);
  if (tokenizer) {
    std::printf("%s | %s\n", text.c_str(), tokenizer->decode(out).c_str());
  } else {
    std::string ids;
    for (int32_t t : out) absl::StrAppend(&ids, " ", t);
    std::printf("%s |%s\n", text.c_str(), ids.c_str());
  }
  return 0;
}

int sample_command(int argc, char** argv) {
  CliArgs a;
  if (!parse_cli_args(argv[0], argc, argv, 1,
                      {"--checkpoint", "--out", "--classes", "--per-class", "--guidance", "--steps",
                       "--seed", "--scale", "--device", "--weights"},
                      {"--no-clip"}, &a)) {
    return 1;
  }
  if (a.help) {
    std::fputs(kSampleUsage, stdout);
    return 0;
  }
  if (a.get("--checkpoint").empty() || a.get("--out").empty()) {
    std::fprintf(stderr, "tessera sample: --checkpoint and --out are required\n%s", kSampleUsage);
    return 1;
  }
  long long per_class, steps, seed, scale;
  double guidance;
  if (!int_flag(a, "sample", "--per-class", 6, &per_class) ||
      !int_flag(a, "sample", "--steps", 50, &steps) || !int_flag(a, "sample", "--seed", 0, &seed) ||
      !int_flag(a, "sample", "--scale", 0, &scale) ||
      !float_flag(a, "sample", "--guidance", 4.0, &guidance)) {
    return 1;
  }
  Device device;
  if (!device_flag(a, "sample", &device)) return 1;
  auto m = eval::load_checkpoint_model(a.get("--checkpoint"), device, a.get("--weights", "auto"));
  if (!m.ok()) return fail("sample", m.status());
  if (auto s = eval::expect_family(*m, {"dit"}, "sample"); !s.ok()) return fail("sample", s);
  const config::DitConfig& d = m->info.config.model().dit();
  const int n_classes = d.n_classes();
  std::vector<int> classes;
  if (a.has("--classes")) {
    const std::vector<std::string> parts = absl::StrSplit(a.get("--classes"), ',');
    for (const std::string& p : parts) {
      char* end = nullptr;
      const long v = std::strtol(p.c_str(), &end, 10);
      if (end == p.c_str() || *end != '\0' || v < 0 || v >= std::max(1, n_classes)) {
        std::fprintf(stderr, "tessera sample: --classes: '%s' is not a class in [0, %d)\n",
                     p.c_str(), std::max(1, n_classes));
        return 1;
      }
      classes.push_back(int(v));
    }
  } else {
    for (int c = 0; c < std::min(8, std::max(1, n_classes)); ++c) classes.push_back(c);
  }
  if (per_class < 1 || steps < 1) {
    std::fprintf(stderr, "tessera sample: --per-class and --steps must be at least 1\n");
    return 1;
  }
  const int rows = int(classes.size()), cols = int(per_class);
  Tensor labels = Tensor::empty({int64_t(rows) * cols}, DType::i32);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      labels.data<int32_t>()[r * cols + c] = n_classes > 0 ? classes[r] : 0;
  auto& dit = static_cast<models::Dit&>(*m->model);
  const Tensor x =
      dit.sample(labels, float(guidance), int(steps), uint64_t(seed), !a.has("--no-clip"));
  const std::vector<float> pixels = eval::host_floats(x);  // (N, H, W, C)
  const std::vector<std::string> all = class_names(*m, n_classes);
  std::vector<std::string> names;
  for (int c : classes) names.push_back(n_classes > 0 ? all[c] : "unconditional");
  const int S = d.image_size();
  const int sc = scale > 0 ? int(scale) : std::max(1, (64 + S - 1) / S);
  const eval::Canvas grid = eval::image_grid(pixels, S, S, x.dim(3), rows, cols, names, sc);
  if (auto s = eval::write_png(a.get("--out"), grid); !s.ok()) return fail("sample", s);
  std::printf("wrote %s (%d classes x %d samples, %lld DDIM steps, guidance %.2f%s)\n",
              a.get("--out").c_str(), rows, cols, steps, guidance,
              a.has("--no-clip") ? ", no clipping" : "");
  return 0;
}

}  // namespace tessera::tools
