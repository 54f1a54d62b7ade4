#include "eval/hf_clip.h"

#include <cmath>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/error.h"
#include "eval/hf_tensors.h"
#include "eval/hf_transformer.h"

namespace tessera::eval {
namespace {

// HF tensors of a block parameter `rest` ("attn.qkv.weight", ...) under `layer`.
std::vector<HfPiece> block_pieces(const std::string& layer, const std::string& rest,
                                  const Shape& shape, int64_t d) {
  static const HfBlockNames kBlock = {
      {"self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."},
      {{"attn.proj.", "self_attn.out_proj."},
       {"mlp.fc.", "mlp.fc1."},
       {"mlp.proj.", "mlp.fc2."},
       {"ln1.", "layer_norm1."},
       {"ln2.", "layer_norm2."}}};
  return hf_block_pieces(layer, rest, shape, d, kBlock, "hf_clip");
}

// The HF tensors that tessera CLIP parameter `info` consists of.
std::vector<HfPiece> pieces(const models::ParamInfo& info, const config::ClipConfig& c) {
  const std::string& n = info.spec.name;
  const Shape& s = info.spec.shape;
  if (n == "logit_scale") return {{"logit_scale", {}}};
  if (n == "image.proj.weight") return {{"visual_projection.weight", s}};
  if (n == "text.proj.weight") return {{"text_projection.weight", s}};
  if (absl::StartsWith(n, "image.")) {
    const auto& v = c.image();
    const int64_t d = v.transformer().d_model(), p = v.patch(), C = v.channels();
    const std::string r = n.substr(6);
    if (r == "cls_token.weight") return {{"vision_model.embeddings.class_embedding", {d}}};
    if (r == "pos_emb.weight") return {{"vision_model.embeddings.position_embedding.weight", s}};
    if (r == "patch_embed.proj.weight") {
      return {{"vision_model.embeddings.patch_embedding.weight", {d, C, p, p}, 0, true}};
    }
    if (r == "patch_embed.proj.bias") return {};  // none in HF (see the header)
    if (absl::StartsWith(r, "ln_pre.")) return {{"vision_model.pre_layrnorm." + r.substr(7), s}};
    if (absl::StartsWith(r, "ln_f.")) return {{"vision_model.post_layernorm." + r.substr(5), s}};
    std::vector<std::string> parts = absl::StrSplit(r, absl::MaxSplits('.', 2));
    TESSERA_CHECK(parts.size() == 3 && parts[0] == "blocks", "hf_clip: unexpected parameter ", n);
    return block_pieces(absl::StrCat("vision_model.encoder.layers.", parts[1], "."), parts[2], s,
                        d);
  }
  TESSERA_CHECK(absl::StartsWith(n, "text."), "hf_clip: unexpected parameter ", n);
  const std::string r = n.substr(5);
  if (r == "tok_emb.weight") return {{"text_model.embeddings.token_embedding.weight", s}};
  if (r == "pos_emb.weight") return {{"text_model.embeddings.position_embedding.weight", s}};
  if (absl::StartsWith(r, "ln_f.")) return {{"text_model.final_layer_norm." + r.substr(5), s}};
  std::vector<std::string> parts = absl::StrSplit(r, absl::MaxSplits('.', 2));
  TESSERA_CHECK(parts.size() == 3 && parts[0] == "blocks", "hf_clip: unexpected parameter ", n);
  return block_pieces(absl::StrCat("text_model.encoder.layers.", parts[1], "."), parts[2], s,
                      c.text().transformer().d_model());
}

// A tower's config.json section -> TransformerConfig; problems appended.
void tower_from_hf(const nlohmann::json& t, const std::string& what, config::TransformerConfig* out,
                   std::vector<std::string>& problems) {
  auto integer = [&](const char* key, int64_t fallback) -> int64_t {
    return t.contains(key) && t[key].is_number_integer() ? t[key].get<int64_t>() : fallback;
  };
  const int64_t d = integer("hidden_size", 512);
  out->set_d_model(int32_t(d));
  out->set_n_layers(int32_t(integer("num_hidden_layers", 12)));
  out->set_n_heads(int32_t(integer("num_attention_heads", 8)));
  const int64_t inner = integer("intermediate_size", 4 * d);
  if (d <= 0 || inner % d != 0) {
    problems.push_back(
        absl::StrCat(what, ".intermediate_size ", inner, " is not a multiple of hidden_size ", d));
  }
  out->set_mlp_ratio(d > 0 ? int32_t(inner / d) : 4);
  // HF CLIP's defaults: OpenAI's quick_gelu, eps 1e-5.
  activation_from_hf(t.value("hidden_act", std::string("quick_gelu")), what + ".hidden_act", out,
                     problems);
  layer_norm_eps_from_hf(t.value("layer_norm_eps", nlohmann::json(1e-5)), what + ".layer_norm_eps",
                         out, problems);
}

nlohmann::json tower_to_hf(const config::TransformerConfig& t) {
  nlohmann::json j;
  j["hidden_size"] = t.d_model();
  j["num_hidden_layers"] = t.n_layers();
  j["num_attention_heads"] = t.n_heads();
  j["intermediate_size"] = int64_t(t.mlp_ratio()) * t.d_model();
  j["hidden_act"] = hf_activation(t, "gelu_pytorch_tanh");
  j["layer_norm_eps"] = hf_layer_norm_eps(t);
  j["attention_dropout"] = 0.0;
  j["dropout"] = 0.0;
  return j;
}

}  // namespace

absl::StatusOr<config::ClipConfig> clip_config_from_hf(const nlohmann::json& hf,
                                                       const std::string& where) {
  std::vector<std::string> problems;
  const nlohmann::json tc = hf.value("text_config", nlohmann::json::object());
  const nlohmann::json vc = hf.value("vision_config", nlohmann::json::object());
  config::ClipConfig c;
  c.set_loss(config::ClipConfig::INFONCE);
  c.set_embed_dim(hf.value("projection_dim", 512));
  // HF's clamp of the logit scale is log(100) as tessera's default.
  c.set_init_logit_scale(hf.value("logit_scale_init_value", 2.6592f));
  auto* text = c.mutable_text();
  text->set_vocab_size(tc.value("vocab_size", 49408));
  text->set_context(tc.value("max_position_embeddings", 77));
  tower_from_hf(tc, "text_config", text->mutable_transformer(), problems);
  auto* image = c.mutable_image();
  image->set_image_size(vc.value("image_size", 224));
  image->set_patch(vc.value("patch_size", 32));
  image->set_channels(vc.value("num_channels", 3));
  image->set_n_classes(0);
  image->set_pre_norm(true);
  tower_from_hf(vc, "vision_config", image->mutable_transformer(), problems);
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": not a CLIP that tessera's CLIP matches: ", absl::StrJoin(problems, "; ")));
  }
  return c;
}

absl::StatusOr<nlohmann::json> hf_config_from_clip(const config::ClipConfig& c) {
  if (c.loss() != config::ClipConfig::INFONCE) {
    return absl::InvalidArgumentError("--format hf: SigLIP (a logit bias) is not a CLIPModel");
  }
  if (!c.image().pre_norm()) {
    return absl::InvalidArgumentError(
        "--format hf: CLIPModel's image tower has a LayerNorm before its blocks; this model has "
        "none (model.clip.image.pre_norm is false)");
  }
  nlohmann::json j;
  j["architectures"] = {"CLIPModel"};
  j["model_type"] = "clip";
  j["projection_dim"] = c.embed_dim();
  j["logit_scale_init_value"] = c.init_logit_scale();
  nlohmann::json t = tower_to_hf(c.text().transformer());
  t["vocab_size"] = c.text().vocab_size();
  t["max_position_embeddings"] = c.text().context();
  // tessera pools at a given end-of-text position; HF finds the first eos_token_id in the ids.
  t["eos_token_id"] = c.text().vocab_size() - 1;
  t["projection_dim"] = c.embed_dim();
  nlohmann::json v = tower_to_hf(c.image().transformer());
  v["image_size"] = c.image().image_size();
  v["patch_size"] = c.image().patch();
  v["num_channels"] = c.image().channels();
  v["projection_dim"] = c.embed_dim();
  j["text_config"] = t;
  j["vision_config"] = v;
  j["torch_dtype"] = "float32";
  return j;
}

NamedTensors hf_clip_tensors(const models::ParamStore& params, const config::ClipConfig& c) {
  NamedTensors out = hf_tensors_from_pieces(
      params, [&](const models::ParamInfo& info) { return pieces(info, c); }, c.image().patch(),
      c.image().channels(), "hf_clip");
  // The patch bias into the patch tokens' positions (rows 1..N): (W x + b) + pos = W x + (pos + b).
  const models::ParamId bias = params.find("image.patch_embed.proj.bias");
  const Tensor b = to_device(params.param(bias), Device::cpu());
  Tensor& pos = out.at("vision_model.embeddings.position_embedding.weight");
  const int64_t d = pos.dim(1);
  for (int64_t r = 1; r < pos.dim(0); ++r) {
    for (int64_t k = 0; k < d; ++k) pos.data<float>()[r * d + k] += b.data<float>()[k];
  }
  return out;
}

absl::Status load_hf_clip(const NamedTensors& hf, models::ParamStore& params,
                          const config::ClipConfig& c, const std::string& where) {
  std::vector<std::string> problems;
  Tensor host = hf_host_params(params);
  // image.patch_embed.proj.bias has no pieces (folded into the positions): it loads as zero.
  load_hf_pieces(
      hf, params, [&](const models::ParamInfo& info) { return pieces(info, c); }, c.image().patch(),
      c.image().channels(), host, problems);
  return finish_hf_load(problems, host, params, where);
}

}  // namespace tessera::eval
