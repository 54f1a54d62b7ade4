#include "eval/hf_format.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/safetensors.h"
#include "distributed/layout.h"
#include "eval/hf_clip.h"
#include "eval/hf_gpt2.h"
#include "eval/hf_vit.h"
#include "eval/load.h"
#include "models/factory.h"
#include "train/config.h"

namespace tessera::eval {
namespace {

absl::StatusOr<nlohmann::json> read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  try {
    return nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

}  // namespace

absl::Status import_hf(const std::string& hf_dir, const std::string& run_dir, config::Config base,
                       const std::vector<std::string>& overrides) {
  const std::string config_path = hf_dir + "/config.json";
  const std::string weights_path = hf_dir + "/model.safetensors";
  auto hf = read_json(config_path);
  if (!hf.ok()) return hf.status();
  const std::string type = hf->value("model_type", std::string());
  if (type == "gpt2") {
    auto g = gpt_config_from_hf(*hf, config_path);
    if (!g.ok()) return g.status();
    *base.mutable_model()->mutable_gpt() = *g;
  } else if (type == "vit") {
    auto v = vit_config_from_hf(*hf, config_path);
    if (!v.ok()) return v.status();
    *base.mutable_model()->mutable_vit() = *v;
  } else if (type == "clip") {
    auto c = clip_config_from_hf(*hf, config_path);
    if (!c.ok()) return c.status();
    *base.mutable_model()->mutable_clip() = *c;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": model_type \"", type,
                                                   "\" (tessera imports gpt2, vit and clip)"));
  }
  // Validates the combination (and fills the model's defaults) as a config file would be.
  auto cfg = train::parse_config(train::config_to_text(base), config_path, overrides);
  if (!cfg.ok()) return cfg.status();
  auto tensors = read_safetensors(weights_path);
  if (!tensors.ok()) return tensors.status();
  try {
    auto model = models::make_model(cfg->model());
    models::ParamStore& params = model->params();
    const config::ModelConfig& mc = cfg->model();
    const absl::Status s = mc.has_gpt()   ? load_hf_gpt2(*tensors, params, mc.gpt(), weights_path)
                           : mc.has_vit() ? load_hf_vit(*tensors, params, mc.vit(), weights_path)
                                          : load_hf_clip(*tensors, params, mc.clip(), weights_path);
    if (!s.ok()) return s;
    return write_imported_run(*cfg, params, run_dir);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("importing ", hf_dir, ": ", e.what()));
  }
}

absl::Status write_imported_run(const config::Config& cfg, models::ParamStore& params,
                                const std::string& run_dir) {
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(run_dir, ": ", ec.message()));
  std::ofstream(run_dir + "/config.pbtxt") << train::config_to_text(cfg);
  // A step-0 checkpoint with zero optimizer state.
  const distributed::ParallelLayout layout = distributed::ParallelLayout::local();
  checkpoint::Checkpointer saver(cfg, run_dir, layout, false);
  const Tensor m = Tensor::zeros({params.trainable_numel()}, DType::f32);
  const Tensor v = Tensor::zeros({params.trainable_numel()}, DType::f32);
  saver.save(params, {m, v, nullptr}, checkpoint::TrainProgress{});
  saver.finish();
  return absl::OkStatus();
}

absl::Status export_hf(const checkpoint::CheckpointInfo& ckpt, const std::string& out_dir,
                       const std::string& weights) {
  const config::ModelConfig& mc = ckpt.config.model();
  if (!mc.has_gpt() && !mc.has_clip() && !(mc.has_vit() && mc.vit().n_classes() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        ckpt.dir, ": --format hf exports GPT, ViT classifier and CLIP checkpoints (this one is ",
        ckpt.metadata.model_kind(), ")"));
  }
  nlohmann::json hf_config;
  if (mc.has_clip()) {
    auto j = hf_config_from_clip(mc.clip());
    if (!j.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(ckpt.dir, ": ", j.status().message()));
    }
    hf_config = *j;
  } else {
    hf_config = mc.has_gpt() ? hf_config_from_gpt(mc.gpt()) : hf_config_from_vit(mc.vit());
  }
  try {
    auto model = models::make_model(mc);
    if (auto s = load_weights(ckpt, weights, model->params()); !s.ok()) return s;
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) return absl::InternalError(absl::StrCat(out_dir, ": ", ec.message()));
    const NamedTensors tensors = mc.has_gpt()   ? hf_gpt2_tensors(model->params(), mc.gpt())
                                 : mc.has_vit() ? hf_vit_tensors(model->params(), mc.vit())
                                                : hf_clip_tensors(model->params(), mc.clip());
    if (auto s = write_safetensors(out_dir + "/model.safetensors", tensors, {{"format", "pt"}});
        !s.ok()) {
      return s;
    }
    std::ofstream f(out_dir + "/config.json");
    f << hf_config.dump(2) << "\n";
    if (!f.good()) return absl::InternalError(out_dir + "/config.json: write failed");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("exporting ", ckpt.dir, ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace tessera::eval
