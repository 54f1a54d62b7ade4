#include "eval/load.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/factory.h"
#include "train/freeze.h"

namespace tessera::eval {

std::string model_family(const config::ModelConfig& m) {
  if (m.has_gpt()) return "gpt";
  if (m.has_vit()) return "vit";
  if (m.has_clip()) return m.clip().loss() == config::ClipConfig::SIGLIP ? "siglip" : "clip";
  if (m.has_dit()) return "dit";
  return "none";
}

absl::StatusOr<std::string> resolve_weights(const checkpoint::CheckpointInfo& info,
                                            const std::string& weights) {
  if (weights != "auto" && weights != "ema" && weights != "raw") {
    return absl::InvalidArgumentError(
        absl::StrCat("--weights must be ema, raw or auto, got '", weights, "'"));
  }
  const bool has_ema = checkpoint::has_role(info, "ema");
  if (weights == "ema" && !has_ema) {
    return absl::FailedPreconditionError(
        absl::StrCat(info.dir,
                     " holds no EMA of the weights (train.ema_decay was 0); use "
                     "--weights raw"));
  }
  return std::string(weights == "raw" || !has_ema ? "raw" : "ema");
}

absl::Status load_weights(const checkpoint::CheckpointInfo& info, const std::string& resolved,
                          models::ParamStore& params) {
  if (resolved != "ema" && resolved != "raw") {
    return absl::InvalidArgumentError(
        absl::StrCat("load_weights: weights must be ema or raw, got '", resolved, "'"));
  }
  if (resolved == "ema") {
    // Parameters the run froze (train.freeze) never moved, so they have no average of their own
    // and keep their saved values; the EMA then loads over the others. (Freezing re-lays out the
    // flat buffers, so it comes before any load.)
    try {
      train::freeze_parameters(info.config, params);
    } catch (const std::exception& e) {
      return absl::FailedPreconditionError(
          absl::StrCat(info.dir, ": the run's train.freeze: ", e.what()));
    }
  }
  if (auto s = checkpoint::load_model_parameters(info, params, "param"); !s.ok()) return s;
  if (resolved == "ema") return checkpoint::load_model_parameters(info, params, "ema");
  return absl::OkStatus();
}

absl::StatusOr<LoadedModel> load_checkpoint_model(const std::string& path, Device device,
                                                  const std::string& weights) {
  auto info = checkpoint::open_checkpoint(path);
  if (!info.ok()) return info.status();
  LoadedModel m;
  m.info = std::move(*info);
  auto resolved = resolve_weights(m.info, weights);
  if (!resolved.ok()) return resolved.status();
  m.weights = *resolved;
  m.family = model_family(m.info.config.model());
  if (m.family == "none") {
    return absl::FailedPreconditionError(
        absl::StrCat(m.info.dir, ": the checkpoint's config names no model"));
  }
  try {
    m.model = models::make_model(m.info.config.model(), nullptr, device);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(absl::StrCat(m.info.dir, ": ", e.what()));
  }
  m.model->set_seed(m.info.config.train().seed());
  if (auto s = load_weights(m.info, m.weights, m.model->params()); !s.ok()) return s;
  m.run_dir = std::filesystem::path(m.info.dir).parent_path().parent_path().string();
  return m;
}

absl::Status expect_family(const LoadedModel& m, const std::vector<std::string>& families,
                           const std::string& verb) {
  for (const std::string& f : families) {
    if (f == m.family || (f == "clip" && m.family == "siglip")) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(m.info.dir, " is a ", m.family, " checkpoint; tessera ", verb, " needs ",
                   absl::StrJoin(families, " or "), " (model.",
                   m.family == "siglip" ? "clip" : m.family, " in its config)"));
}

}  // namespace tessera::eval
