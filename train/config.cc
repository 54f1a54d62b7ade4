#include "train/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "train/config_defaults.h"

namespace tessera::train {
namespace {

namespace pb = google::protobuf;
using config::Config;

// Collects protobuf's parse errors as "FILE:LINE:COLUMN: message".
class ErrorCollector final : public pb::io::ErrorCollector {
 public:
  explicit ErrorCollector(std::string source) : source_(std::move(source)) {}
  void AddError(int line, int column, const std::string& message) override {
    if (!first_.empty()) return;
    first_ = absl::StrCat(source_, ":", line + 1, ":", column + 1, ": ", message);
    line_ = line;
  }
  const std::string& first() const { return first_; }
  int line() const { return line_; }  // 0-based line of the first error, -1 if none

 private:
  std::string source_;
  std::string first_;
  int line_ = -1;
};

// Validation failures name the field path and, when the file wrote the field, its line.
class Validator {
 public:
  Validator(const Config& config, std::string source, const pb::TextFormat::ParseInfoTree* tree)
      : config_(config), source_(std::move(source)), tree_(tree) {}

  // `path` like "model.gpt.transformer.n_heads".
  absl::Status fail(const std::string& path, const std::string& message) const {
    return absl::InvalidArgumentError(absl::StrCat(where(path), path, ": ", message));
  }

  absl::Status check(bool ok, const std::string& path, const std::string& message) const {
    return ok ? absl::OkStatus() : fail(path, message);
  }

 private:
  std::string where(const std::string& path) const {
    const pb::Descriptor* d = Config::descriptor();
    const pb::TextFormat::ParseInfoTree* tree = tree_;
    std::vector<std::string> parts = absl::StrSplit(path, '.');
    for (size_t i = 0; i < parts.size() && d && tree; ++i) {
      const pb::FieldDescriptor* f = d->FindFieldByName(parts[i]);
      if (f == nullptr) break;
      if (i + 1 == parts.size()) {
        pb::TextFormat::ParseLocation loc = tree->GetLocation(f, -1);
        if (loc.line >= 0) return absl::StrCat(source_, ":", loc.line + 1, ": ");
        break;
      }
      tree = tree->GetTreeForNested(f, -1);
      d = f->message_type();
    }
    return absl::StrCat(source_, ": ");
  }

  const Config& config_;
  std::string source_;
  const pb::TextFormat::ParseInfoTree* tree_;
};

absl::Status validate_transformer(const Validator& v, const std::string& p,
                                  const config::TransformerConfig& t) {
  for (auto [name, value] : {std::pair<const char*, int>{"d_model", t.d_model()},
                             {"n_layers", t.n_layers()},
                             {"n_heads", t.n_heads()},
                             {"mlp_ratio", t.mlp_ratio()}}) {
    if (value <= 0)
      return v.fail(absl::StrCat(p, ".", name), absl::StrCat("must be > 0, got ", value));
  }
  if (t.d_model() % t.n_heads() != 0) {
    return v.fail(p + ".n_heads", absl::StrCat(t.n_heads(), " heads do not divide ", p,
                                               ".d_model = ", t.d_model()));
  }
  if (!config::TransformerConfig::Activation_IsValid(t.activation())) {
    return v.fail(p + ".activation", absl::StrCat("unknown value ", int(t.activation())));
  }
  // Unset: the model's own eps (models/transformer_options.h).
  return v.check(
      !t.has_layer_norm_eps() || (t.layer_norm_eps() > 0 && std::isfinite(t.layer_norm_eps())),
      p + ".layer_norm_eps", absl::StrCat("must be a finite number > 0, got ", t.layer_norm_eps()));
}

absl::Status validate_image(const Validator& v, const std::string& p, int image_size, int patch,
                            int channels) {
  if (patch <= 0) return v.fail(p + ".patch", absl::StrCat("must be > 0, got ", patch));
  if (image_size <= 0)
    return v.fail(p + ".image_size", absl::StrCat("must be > 0, got ", image_size));
  if (channels <= 0) return v.fail(p + ".channels", absl::StrCat("must be > 0, got ", channels));
  return v.check(
      image_size % patch == 0, p + ".patch",
      absl::StrCat("patch ", patch, " does not divide ", p, ".image_size = ", image_size));
}

#define RETURN_IF_ERROR(expr)  \
  do {                         \
    absl::Status _st = (expr); \
    if (!_st.ok()) return _st; \
  } while (0)

absl::Status validate(const Config& c, const Validator& v) {
  const auto& m = c.model();
  switch (m.kind_case()) {
    case config::ModelConfig::kGpt:
      RETURN_IF_ERROR(v.check(m.gpt().vocab_size() > 0, "model.gpt.vocab_size", "must be > 0"));
      RETURN_IF_ERROR(v.check(m.gpt().context() > 0, "model.gpt.context", "must be > 0"));
      RETURN_IF_ERROR(validate_transformer(v, "model.gpt.transformer", m.gpt().transformer()));
      break;
    case config::ModelConfig::kVit:
      RETURN_IF_ERROR(validate_image(v, "model.vit", m.vit().image_size(), m.vit().patch(),
                                     m.vit().channels()));
      RETURN_IF_ERROR(v.check(m.vit().n_classes() > 0, "model.vit.n_classes", "must be > 0"));
      RETURN_IF_ERROR(validate_transformer(v, "model.vit.transformer", m.vit().transformer()));
      break;
    case config::ModelConfig::kClip: {
      const auto& cl = m.clip();
      RETURN_IF_ERROR(validate_image(v, "model.clip.image", cl.image().image_size(),
                                     cl.image().patch(), cl.image().channels()));
      RETURN_IF_ERROR(
          validate_transformer(v, "model.clip.image.transformer", cl.image().transformer()));
      RETURN_IF_ERROR(
          v.check(cl.text().vocab_size() > 0, "model.clip.text.vocab_size", "must be > 0"));
      RETURN_IF_ERROR(v.check(cl.text().context() > 0, "model.clip.text.context", "must be > 0"));
      RETURN_IF_ERROR(
          validate_transformer(v, "model.clip.text.transformer", cl.text().transformer()));
      RETURN_IF_ERROR(v.check(cl.embed_dim() > 0, "model.clip.embed_dim", "must be > 0"));
      break;
    }
    case config::ModelConfig::kDit:
      RETURN_IF_ERROR(validate_image(v, "model.dit", m.dit().image_size(), m.dit().patch(),
                                     m.dit().channels()));
      RETURN_IF_ERROR(validate_transformer(v, "model.dit.transformer", m.dit().transformer()));
      RETURN_IF_ERROR(v.check(m.dit().n_classes() >= 0, "model.dit.n_classes", "must be >= 0"));
      RETURN_IF_ERROR(v.check(m.dit().class_dropout() >= 0 && m.dit().class_dropout() < 1,
                              "model.dit.class_dropout", "must be in [0, 1)"));
      break;
    case config::ModelConfig::KIND_NOT_SET:
      return v.fail("model", "no model given (one of gpt, vit, clip, dit)");
  }
  RETURN_IF_ERROR(v.check(c.train().steps() > 0, "train.steps", "must be > 0"));
  RETURN_IF_ERROR(v.check(c.train().micro_batches() > 0, "train.micro_batches", "must be > 0"));
  RETURN_IF_ERROR(v.check(c.train().threads() >= 0, "train.threads", "must be >= 0"));
  RETURN_IF_ERROR(v.check(c.optim().lr() >= 0, "optim.lr", "must be >= 0"));
  RETURN_IF_ERROR(v.check(c.optim().grad_clip() >= 0, "optim.grad_clip", "must be >= 0"));
  RETURN_IF_ERROR(
      v.check(c.data().global_batch_size() > 0, "data.global_batch_size", "must be > 0"));
  RETURN_IF_ERROR(v.check(
      c.data().global_batch_size() % c.train().micro_batches() == 0, "train.micro_batches",
      absl::StrCat(
          c.train().micro_batches(),
          " micro-batches do not divide data.global_batch_size = ", c.data().global_batch_size())));
  RETURN_IF_ERROR(v.check(!c.data().source().empty(), "data.source",
                          "must be \"synthetic\" or a manifest path"));
  RETURN_IF_ERROR(
      v.check(c.parallel().tensor_parallel() >= 1, "parallel.tensor_parallel", "must be >= 1"));
  RETURN_IF_ERROR(v.check(c.parallel().zero_stage() >= 0 && c.parallel().zero_stage() <= 3,
                          "parallel.zero_stage",
                          absl::StrCat("must be 0, 1, 2 or 3, got ", c.parallel().zero_stage())));
  RETURN_IF_ERROR(v.check(
      c.parallel().vocab_slice_bytes() >= 0, "parallel.vocab_slice_bytes",
      absl::StrCat("must be >= 0 (0 = no slicing), got ", c.parallel().vocab_slice_bytes())));
  if (c.parallel().zero_stage() == 3) {
    // ZeRO-3 (docs/DISTRIBUTED.md "Stage 3"): what it does not handle yet is refused here rather
    // than trained wrongly.
    const char* kNotYet = "is not supported with parallel.zero_stage = 3 yet";
    // CUDA/NCCL: built and compiled, but it has not run on a GPU. Validation runs (the GPU
    // bundle's tests, a first run on a lent GPU) opt in with the environment variable, never a
    // config field, so no saved config can depend on it.
    RETURN_IF_ERROR(
        v.check(c.train().device() != config::TrainConfig::CUDA || zero3_cuda_validation_enabled(),
                "train.device",
                absl::StrCat("CUDA ", kNotYet,
                             " (CPU/MPI only: its NCCL path has not run on a GPU; for "
                             "a validation run set ",
                             kZero3CudaValidationEnv, "=1, docs/DISTRIBUTED.md \"Stage 3\")")));
  }
  RETURN_IF_ERROR(
      v.check(c.checkpoint().every_steps() >= 0, "checkpoint.every_steps", "must be >= 0"));
  RETURN_IF_ERROR(v.check(c.checkpoint().keep_last() >= 1, "checkpoint.keep_last", "must be >= 1"));
  RETURN_IF_ERROR(v.check(c.log().every_steps() >= 1, "log.every_steps", "must be >= 1"));
  // Training recipes (docs/RECIPES.md).
  const bool classifier = m.has_vit() || m.has_gpt();
  RETURN_IF_ERROR(v.check(c.optim().label_smoothing() >= 0 && c.optim().label_smoothing() < 1,
                          "optim.label_smoothing", "must be in [0, 1)"));
  RETURN_IF_ERROR(v.check(c.optim().label_smoothing() == 0 || classifier, "optim.label_smoothing",
                          "applies to ViT and GPT only"));
  RETURN_IF_ERROR(v.check(c.data().mixup_alpha() >= 0, "data.mixup_alpha", "must be >= 0"));
  RETURN_IF_ERROR(v.check(c.data().cutmix_alpha() >= 0, "data.cutmix_alpha", "must be >= 0"));
  RETURN_IF_ERROR(v.check(c.data().mix_prob() >= 0 && c.data().mix_prob() <= 1, "data.mix_prob",
                          "must be in [0, 1]"));
  RETURN_IF_ERROR(
      v.check((c.data().mixup_alpha() == 0 && c.data().cutmix_alpha() == 0) || m.has_vit(),
              c.data().mixup_alpha() > 0 ? "data.mixup_alpha" : "data.cutmix_alpha",
              "applies to ViT only"));
  for (const auto& [rate, path] :
       {std::pair{m.dropout(), "model.dropout"}, std::pair{m.drop_path(), "model.drop_path"},
        std::pair{m.attention_dropout(), "model.attention_dropout"},
        std::pair{m.embedding_dropout(), "model.embedding_dropout"}}) {
    RETURN_IF_ERROR(v.check(rate >= 0 && rate < 1, path, "must be in [0, 1)"));
    RETURN_IF_ERROR(v.check(rate == 0 || !m.has_dit(), path, "applies to GPT, ViT and CLIP only"));
  }
  if (!c.distill().teacher().empty()) {
    RETURN_IF_ERROR(v.check(m.has_vit() || m.has_gpt() || m.has_clip(), "distill.teacher",
                            "applies to ViT, GPT and CLIP students only"));
    RETURN_IF_ERROR(v.check(c.distill().alpha() >= 0 && c.distill().alpha() <= 1, "distill.alpha",
                            "must be in [0, 1]"));
    RETURN_IF_ERROR(v.check(c.distill().temperature() > 0, "distill.temperature", "must be > 0"));
  }
  RETURN_IF_ERROR(v.check(c.train().ema_decay() >= 0 && c.train().ema_decay() < 1,
                          "train.ema_decay", "must be in [0, 1)"));
  return absl::OkStatus();
}

}  // namespace

absl::Status apply_override(Config* config, const std::string& assignment) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("--set ", assignment, ": ", why));
  };
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) return bad("expected PATH=VALUE");
  std::string path = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  pb::Message* msg = config;
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::Descriptor* d = msg->GetDescriptor();
    const pb::Reflection* r = msg->GetReflection();
    const pb::FieldDescriptor* f = d->FindFieldByName(parts[i]);
    if (f == nullptr) return bad(absl::StrCat(d->name(), " has no field '", parts[i], "'"));
    if (f->is_repeated())
      return bad(absl::StrCat("'", parts[i], "' is a list; edit the file instead"));
    if (const pb::OneofDescriptor* o = f->containing_oneof()) {
      const pb::FieldDescriptor* set = r->GetOneofFieldDescriptor(*msg, o);
      if (set != nullptr && set != f) {
        return bad(absl::StrCat("the config's ", o->name(), " is '", set->name(), "', not '",
                                f->name(), "'"));
      }
    }
    if (i + 1 < parts.size()) {
      if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
        return bad(absl::StrCat("'", parts[i], "' is not a message"));
      }
      msg = r->MutableMessage(msg, f);
      continue;
    }
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      return bad(absl::StrCat("'", parts[i], "' is a message; set one of its fields"));
    }
    // Reuse protobuf's own text parser for the value, so every scalar and enum spelling that a
    // config file accepts is accepted here too.
    std::string text = absl::StrCat(f->name(), ": ",
                                    f->type() == pb::FieldDescriptor::TYPE_STRING
                                        ? absl::StrCat("\"", absl::CEscape(value), "\"")
                                        : value);
    ErrorCollector errors(absl::StrCat("--set ", assignment));
    pb::TextFormat::Parser parser;
    parser.RecordErrorsTo(&errors);
    if (!parser.MergeFromString(text, msg)) {
      return bad(absl::StrCat("'", value, "' is not a valid ", f->type_name(),
                              f->enum_type() ? absl::StrCat(" of ", f->enum_type()->name()) : ""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> parse_config(const std::string& text, const std::string& source_name,
                                    const std::vector<std::string>& overrides) {
  Config config;
  if (!pb::TextFormat::ParseFromString(kConfigDefaults, &config)) {
    return absl::InternalError("built-in config defaults do not parse");
  }
  ErrorCollector errors(source_name);
  pb::TextFormat::ParseInfoTree tree;
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.MergeFromString(text, &config)) {
    // protobuf names the position but not always the field: quote the offending line.
    std::string message =
        errors.first().empty() ? absl::StrCat(source_name, ": parse error") : errors.first();
    if (errors.line() >= 0) {
      std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
      if (errors.line() < static_cast<int>(lines.size())) {
        absl::StrAppend(&message, " (in: ", absl::StripAsciiWhitespace(lines[errors.line()]), ")");
      }
    }
    return absl::InvalidArgumentError(message);
  }
  for (const std::string& o : overrides) {
    absl::Status st = apply_override(&config, o);
    if (!st.ok()) return st;
  }
  fill_model_defaults(config.mutable_model());
  Validator validator(config, source_name, &tree);
  absl::Status st = validate(config, validator);
  if (!st.ok()) return st;
  return config;
}

bool zero3_cuda_validation_enabled() {
  const char* v = std::getenv(kZero3CudaValidationEnv);
  return v != nullptr && std::string(v) == "1";
}

absl::StatusOr<Config> load_config(const std::string& path,
                                   const std::vector<std::string>& overrides) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open config file"));
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path, overrides);
}

std::string config_to_text(const Config& config) {
  std::string out;
  pb::TextFormat::PrintToString(config, &out);
  return out;
}

}  // namespace tessera::train
