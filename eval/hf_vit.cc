#include "eval/hf_vit.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "eval/hf_tensors.h"
#include "eval/hf_transformer.h"
#include "eval/vit_format.h"

namespace tessera::eval {
namespace {

// Hugging Face ViTForImageClassification's names. It has no LayerNorm before the blocks: a pre_norm
// ViT's ln_pre is refused as an unexpected parameter.
const VitFormat kHfVit = {
    .what = "hf_vit",
    .cls_token = "vit.embeddings.cls_token",
    .pos_embed = "vit.embeddings.position_embeddings",
    .patch_weight = "vit.embeddings.patch_embeddings.projection.weight",
    .patch_bias = "vit.embeddings.patch_embeddings.projection.bias",
    .patch_bias_with_pre_norm = true,
    .ln_pre = nullptr,
    .ln_f = "vit.layernorm.",
    .head = "classifier.",
    .layer = "vit.encoder.layer.",
    .block = {{"attention.attention.query.", "attention.attention.key.",
               "attention.attention.value."},
              {{"attn.proj.", "attention.output.dense."},
               {"mlp.fc.", "intermediate.dense."},
               {"mlp.proj.", "output.dense."},
               {"ln1.", "layernorm_before."},
               {"ln2.", "layernorm_after."}}},
};

std::vector<HfPiece> pieces(const models::ParamInfo& info, const config::VitConfig& c) {
  return vit_pieces(info, c, kHfVit);
}

}  // namespace

absl::StatusOr<config::VitConfig> vit_config_from_hf(const nlohmann::json& hf,
                                                     const std::string& where) {
  std::vector<std::string> problems;
  auto integer = [&](const char* key, int64_t fallback) -> int64_t {
    if (!hf.contains(key)) return fallback;
    if (!hf[key].is_number_integer()) {
      problems.push_back(absl::StrCat(key, ": not an integer"));
      return fallback;
    }
    return hf[key].get<int64_t>();
  };
  config::VitConfig v;
  v.set_image_size(int32_t(integer("image_size", 224)));
  v.set_patch(int32_t(integer("patch_size", 16)));
  v.set_channels(int32_t(integer("num_channels", 3)));
  const int64_t d = integer("hidden_size", 768);
  auto* t = v.mutable_transformer();
  t->set_d_model(int32_t(d));
  t->set_n_layers(int32_t(integer("num_hidden_layers", 12)));
  t->set_n_heads(int32_t(integer("num_attention_heads", 12)));
  const int64_t inner = integer("intermediate_size", 4 * d);
  if (d <= 0 || inner % d != 0) {
    problems.push_back(absl::StrCat("intermediate_size ", inner,
                                    " is not a multiple of "
                                    "hidden_size ",
                                    d));
  }
  t->set_mlp_ratio(d > 0 ? int32_t(inner / d) : 4);
  int64_t classes = 0;
  if (hf.contains("id2label") && hf["id2label"].is_object()) classes = hf["id2label"].size();
  if (classes == 0) classes = integer("num_labels", 2);
  v.set_n_classes(int32_t(classes));
  // HF ViT's defaults: erf GELU, eps 1e-12.
  activation_from_hf(hf.value("hidden_act", std::string("gelu")), "hidden_act", t, problems);
  layer_norm_eps_from_hf(hf.value("layer_norm_eps", nlohmann::json(1e-12)), "layer_norm_eps", t,
                         problems);
  if (!hf.value("qkv_bias", true)) problems.push_back("qkv_bias false: tessera's qkv has a bias");
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": not a ViT that tessera's ViT matches: ", absl::StrJoin(problems, "; ")));
  }
  return v;
}

nlohmann::json hf_config_from_vit(const config::VitConfig& v) {
  const auto& t = v.transformer();
  nlohmann::json j;
  j["architectures"] = {"ViTForImageClassification"};
  j["model_type"] = "vit";
  j["image_size"] = v.image_size();
  j["patch_size"] = v.patch();
  j["num_channels"] = v.channels();
  j["hidden_size"] = t.d_model();
  j["num_hidden_layers"] = t.n_layers();
  j["num_attention_heads"] = t.n_heads();
  j["intermediate_size"] = int64_t(t.mlp_ratio()) * t.d_model();
  j["hidden_act"] = hf_activation(t, "gelu_pytorch_tanh");
  j["layer_norm_eps"] = hf_layer_norm_eps(t);
  j["qkv_bias"] = true;
  j["hidden_dropout_prob"] = 0.0;
  j["attention_probs_dropout_prob"] = 0.0;
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (int k = 0; k < v.n_classes(); ++k) {
    id2label[std::to_string(k)] = absl::StrCat("LABEL_", k);
    label2id[absl::StrCat("LABEL_", k)] = k;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  j["torch_dtype"] = "float32";
  return j;
}

NamedTensors hf_vit_tensors(const models::ParamStore& params, const config::VitConfig& vit) {
  return hf_tensors_from_pieces(
      params, [&](const models::ParamInfo& info) { return pieces(info, vit); }, vit.patch(),
      vit.channels(), "hf_vit");
}

absl::Status load_hf_vit(const NamedTensors& hf, models::ParamStore& params,
                         const config::VitConfig& vit, const std::string& where) {
  std::vector<std::string> problems;
  Tensor host = hf_host_params(params);
  load_hf_pieces(
      hf, params, [&](const models::ParamInfo& info) { return pieces(info, vit); }, vit.patch(),
      vit.channels(), host, problems);
  return finish_hf_load(problems, host, params, where);
}

}  // namespace tessera::eval
