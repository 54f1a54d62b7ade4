#include "eval/state_dict_format.h"

#include "absl/strings/str_cat.h"
#include "core/safetensors.h"
#include "eval/hf_format.h"
#include "eval/load.h"
#include "eval/open_clip.h"
#include "eval/timm_vit.h"
#include "models/factory.h"
#include "train/config.h"

namespace tessera::eval {
namespace {

absl::Status unknown_format(const std::string& format) {
  return absl::InvalidArgumentError(
      absl::StrCat("--format ", format, ": a state dict format is timm or open_clip"));
}

}  // namespace

absl::Status import_state_dict(const std::string& format, const std::string& file,
                               const std::string& run_dir, config::Config base,
                               const std::vector<std::string>& overrides) {
  if (format != "timm" && format != "open_clip") return unknown_format(format);
  auto sd = read_safetensors(file);
  if (!sd.ok()) return sd.status();
  // The head counts may come from --set alone: the overrides on the base first (unvalidated;
  // parse_config below validates the whole).
  config::Config with_sets = base;
  for (const std::string& o : overrides) {
    if (auto s = train::apply_override(&with_sets, o); !s.ok()) return s;
  }
  if (format == "timm") {
    auto v = vit_config_from_timm(*sd, with_sets.model().vit(), file);
    if (!v.ok()) return v.status();
    *base.mutable_model()->mutable_vit() = *v;
  } else {
    auto c = clip_config_from_open_clip(*sd, with_sets.model().clip(), file);
    if (!c.ok()) return c.status();
    *base.mutable_model()->mutable_clip() = *c;
  }
  auto cfg = train::parse_config(train::config_to_text(base), file, overrides);
  if (!cfg.ok()) return cfg.status();
  try {
    auto model = models::make_model(cfg->model());
    const absl::Status s = format == "timm"
                               ? load_timm_vit(*sd, model->params(), cfg->model().vit(), file)
                               : load_open_clip(*sd, model->params(), cfg->model().clip(), file);
    if (!s.ok()) return s;
    return write_imported_run(*cfg, model->params(), run_dir);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("importing ", file, ": ", e.what()));
  }
}

absl::Status export_state_dict(const std::string& format, const checkpoint::CheckpointInfo& ckpt,
                               const std::string& out_file, const std::string& weights) {
  const config::ModelConfig& mc = ckpt.config.model();
  if (format == "timm") {
    if (!mc.has_vit() || mc.vit().n_classes() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(ckpt.dir, ": --format timm exports ViT classifier checkpoints (this one is ",
                       ckpt.metadata.model_kind(), ")"));
    }
  } else if (format == "open_clip") {
    if (!mc.has_clip()) {
      return absl::InvalidArgumentError(
          absl::StrCat(ckpt.dir, ": --format open_clip exports CLIP checkpoints (this one is ",
                       ckpt.metadata.model_kind(), ")"));
    }
    if (auto s = check_open_clip_exportable(mc.clip()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(ckpt.dir, ": ", s.message()));
    }
  } else {
    return unknown_format(format);
  }
  try {
    auto model = models::make_model(mc);
    if (auto s = load_weights(ckpt, weights, model->params()); !s.ok()) return s;
    const NamedTensors tensors = format == "timm" ? timm_vit_tensors(model->params(), mc.vit())
                                                  : open_clip_tensors(model->params(), mc.clip());
    return write_safetensors(out_file, tensors, {{"format", "pt"}});
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("exporting ", ckpt.dir, ": ", e.what()));
  }
}

}  // namespace tessera::eval
