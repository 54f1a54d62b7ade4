#include "eval/run_eval.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "eval/linear_probe.h"
#include "eval/load.h"
#include "eval/model_eval.h"
#include "eval/probe_features.h"
#include "eval/prompt_tokenizer.h"
#include "eval/split.h"
#include "models/gpt.h"
#include "train/data_source.h"

namespace tessera::eval {
namespace fs = std::filesystem;
namespace {

// The manifest path of `split`, or "" for the synthetic stream.
absl::StatusOr<std::string> split_manifest(const config::Config& c, const std::string& split) {
  const std::string& source = c.data().source();
  if (split != "val" && split != "train") {
    if (!fs::exists(split)) {
      return absl::NotFoundError(absl::StrCat("--split ", split,
                                              ": no such manifest (expected val, train or the "
                                              "path of a SPLIT.pbtxt written by tessera pack)"));
    }
    return split;
  }
  if (split == "val") {
    // The held-out data the trainer evaluated on (eval.source, or val.pbtxt beside data.source).
    const std::string held_out = train::eval_source(c);
    if (!held_out.empty()) return held_out;
  }
  if (source == "synthetic" || source.empty()) return std::string();
  const std::string path = (fs::path(source).parent_path() / (split + ".pbtxt")).string();
  if (!fs::exists(path)) {
    return absl::NotFoundError(absl::StrCat("split '", split, "': ", path,
                                            " does not exist (the run trained on data.source ",
                                            source, "; pass --split PATH)"));
  }
  return path;
}

absl::Status check_split(const EvalSplit& s, const config::ModelConfig& m,
                         const std::string& family) {
  if (family == "gpt") {
    return absl::InvalidArgumentError(
        absl::StrCat("--split ", s.path,
                     ": GPT evaluation reads token streams, not image shards (GPT runs "
                     "train on data.source \"synthetic\"; evaluate with --split val)"));
  }
  if (s.resolution != train::model_image_size(m)) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.path, ": resolution ", s.resolution, " does not match the ", family,
                     " checkpoint's image_size ", train::model_image_size(m)));
  }
  if (m.has_clip() && s.token_length != m.clip().text().context()) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.path, ": token_length ", s.token_length,
                     " does not match the checkpoint's model.clip.text.context ",
                     m.clip().text().context(), s.token_length == 0 ? " (no caption tokens)" : ""));
  }
  if ((m.has_vit() || (m.has_dit() && m.dit().n_classes() > 0)) && s.labels.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.path, ": the split has no labels, which ", family, " evaluation needs"));
  }
  return absl::OkStatus();
}

BatchFn split_batches(const EvalSplit& s, const config::ModelConfig& m) {
  return [&s, &m](int64_t first, int64_t count) {
    models::Batch b{{"images", split_images(s, first, count, m.has_dit())}};
    if (!s.labels.empty()) b["labels"] = split_labels(s, first, count);
    if (m.has_clip()) {
      b["text"] = split_tokens(s, first, count);
      b["text_eot"] = split_eot(s, first, count);
    }
    if (m.has_dit()) {
      Tensor keys = Tensor::empty({count}, DType::i64);
      for (int64_t i = 0; i < count; ++i) keys.data<int64_t>()[i] = first + i;
      b["sample_keys"] = keys;
      if (m.dit().n_classes() == 0) b.erase("labels");
    }
    return b;
  };
}

// One split's samples behind a BatchFn (which points into this object: keep it in place).
struct SplitData {
  std::string manifest;  // "" for the synthetic stream
  std::optional<EvalSplit> split;
  std::unique_ptr<train::DataSource> synthetic;
  BatchFn data;
  int64_t n = 0;
};

absl::StatusOr<std::unique_ptr<SplitData>> open_split(const LoadedModel& lm,
                                                      const std::string& name,
                                                      int64_t max_samples) {
  const config::Config& c = lm.info.config;
  const config::ModelConfig& m = c.model();
  auto manifest = split_manifest(c, name);
  if (!manifest.ok()) return manifest.status();
  auto d = std::make_unique<SplitData>();
  d->manifest = *manifest;
  if (!manifest->empty()) {
    auto s = load_split(*manifest, max_samples, train::model_image_size(m));
    if (!s.ok()) return s.status();
    d->split = std::move(*s);
    if (auto st = check_split(*d->split, m, lm.family); !st.ok()) return st;
    d->data = split_batches(*d->split, m);
    d->n = d->split->n;
  } else {
    config::Config sc = c;
    sc.mutable_data()->set_source("synthetic");
    d->synthetic = train::make_data_source(sc);
    const int64_t offset = name == "val" ? train::kFarAheadPosition : 0;
    const train::DataSource* source = d->synthetic.get();
    d->data = [source, offset](int64_t first, int64_t count) {
      return source->batch(offset + first, count);
    };
    d->n = max_samples > 0 ? max_samples : 512;
  }
  return d;
}

// --probe: a linear probe on the image tower's features, fitted on `train` and scored on
// o.split (eval/linear_probe.h).
absl::StatusOr<nlohmann::json> run_probe(LoadedModel& lm, const EvalOptions& o) {
  if (lm.family != "vit" && lm.family != "clip" && lm.family != "siglip") {
    return absl::InvalidArgumentError(absl::StrCat("--probe: ", lm.info.dir, " is a ", lm.family,
                                                   " checkpoint; probes read ViT or CLIP image "
                                                   "towers"));
  }
  auto train_split = open_split(lm, "train", o.probe_train_samples);
  if (!train_split.ok()) return train_split.status();
  auto val_split = open_split(lm, o.split, o.max_samples);
  if (!val_split.ok()) return val_split.status();
  nlohmann::json r;
  try {
    const ProbeData train =
        probe_features(*lm.model, (*train_split)->data, (*train_split)->n, o.batch);
    const ProbeData val = probe_features(*lm.model, (*val_split)->data, (*val_split)->n, o.batch);
    int64_t classes = 2;
    for (const ProbeData* d : {&train, &val}) {
      for (int32_t y : d->y) classes = std::max<int64_t>(classes, y + 1);
    }
    const ProbeResult p = linear_probe(train, val, classes);
    r["probe_top1"] = p.val_top1;
    r["probe_train_top1"] = p.train_top1;
    r["probe_c"] = p.best_c;
    for (const auto& s : p.sweep)
      r[absl::StrFormat("probe_holdout_top1_c%g", s.c)] = s.holdout_top1;
    r["probe_classes"] = p.classes;
    r["probe_dim"] = train.dim;
    r["probe_train_samples"] = train.n;
    r["n_samples"] = val.n;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("probing ", lm.info.dir, ": ", e.what()));
  }
  r["family"] = lm.family;
  r["checkpoint"] = lm.info.dir;
  r["step"] = lm.info.step;
  r["split"] =
      (*val_split)->manifest.empty() ? absl::StrCat("synthetic:", o.split) : (*val_split)->manifest;
  return r;
}

}  // namespace

absl::StatusOr<nlohmann::json> run_eval(const EvalOptions& o) {
  auto loaded = load_checkpoint_model(o.checkpoint, o.device, o.weights);
  if (!loaded.ok()) return loaded.status();
  LoadedModel& lm = *loaded;
  if (o.probe) return run_probe(lm, o);
  const config::Config& c = lm.info.config;
  const config::ModelConfig& m = c.model();
  auto opened = open_split(lm, o.split, o.max_samples);
  if (!opened.ok()) return opened.status();
  const std::optional<EvalSplit>& split = (*opened)->split;
  const std::string* manifest = &(*opened)->manifest;
  const BatchFn& data = (*opened)->data;
  const int64_t n = (*opened)->n;

  nlohmann::json r;
  try {
    if (lm.family == "clip" || lm.family == "siglip") {
      auto& clip = static_cast<models::Clip&>(*lm.model);
      std::optional<ZeroShotPrompts> prompts;
      if (split && !split->labels.empty() && split->manifest.label_names_size() > 0) {
        auto model = find_tokenizer(split->path, split->manifest, o.tokenizer);
        if (!model.ok()) return model.status();
        // Label names are identifiers ("signs_and_symbols"); prompts need the words a caption
        // would use ("signs and symbols").
        std::vector<std::string> names;
        for (const std::string& label : split->manifest.label_names()) {
          names.push_back(absl::StrReplaceAll(label, {{"_", " "}}));
        }
        auto p =
            tokenize_prompts(*model, names, o.templates.empty() ? default_templates() : o.templates,
                             split->token_length);
        if (!p.ok()) return p.status();
        prompts = std::move(*p);
      }
      r = evaluate_clip(clip, data, n, o.batch, prompts ? &*prompts : nullptr);
    } else if (lm.family == "vit") {
      r = evaluate_vit(static_cast<models::Vit&>(*lm.model), data, n, o.batch);
    } else if (lm.family == "gpt") {
      r = evaluate_gpt(*lm.model, data, n, o.batch);
    } else {
      r = evaluate_dit(static_cast<models::Dit&>(*lm.model), data, n, o.batch, o.dit_buckets,
                       m.dit().diffusion_steps());
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("evaluating ", lm.info.dir, ": ", e.what()));
  }
  r["family"] = lm.family;
  r["checkpoint"] = lm.info.dir;
  r["step"] = lm.info.step;
  r["split"] = manifest->empty() ? absl::StrCat("synthetic:", o.split) : *manifest;
  r["weights"] = lm.weights;
  return r;
}

std::string format_eval_table(const nlohmann::json& r) {
  // Metrics first (numbers), then what was evaluated (strings: family, checkpoint, split).
  std::string out = absl::StrFormat("%-22s %s\n", "metric", "value");
  for (const auto& [key, v] : r.items()) {
    if (v.is_number_integer()) {
      absl::StrAppendFormat(&out, "%-22s %d\n", key, v.get<int64_t>());
    } else if (v.is_number()) {
      absl::StrAppendFormat(&out, "%-22s %.4f\n", key, v.get<double>());
    }
  }
  for (const auto& [key, v] : r.items()) {
    if (v.is_string()) absl::StrAppendFormat(&out, "%-22s %s\n", key, v.get<std::string>());
  }
  return out;
}

}  // namespace tessera::eval
