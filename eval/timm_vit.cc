#include "eval/timm_vit.h"

#include <cmath>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "eval/hf_tensors.h"
#include "eval/vit_format.h"

namespace tessera::eval {
namespace {

// timm VisionTransformer's names. Its pre_norm ViT (CLIP's layout) has a bias-free patch
// convolution: the bias loads as zero and exports folded into the positions (timm_vit_tensors).
// The qkv is one (3d, d) / (3d) Linear of tessera's rows.
const VitFormat kTimmVit = {
    .what = "timm_vit",
    .cls_token = "cls_token",
    .pos_embed = "pos_embed",
    .patch_weight = "patch_embed.proj.weight",
    .patch_bias = "patch_embed.proj.bias",
    .patch_bias_with_pre_norm = false,
    .ln_pre = "norm_pre.",
    .ln_f = "norm.",
    .head = "head.",
    .layer = "blocks.",
    .block = {{"attn.qkv.", nullptr, nullptr},
              {{"attn.proj.", "attn.proj."},
               {"mlp.fc.", "mlp.fc1."},
               {"mlp.proj.", "mlp.fc2."},
               {"ln1.", "norm1."},
               {"ln2.", "norm2."}}},
};

std::vector<HfPiece> pieces(const models::ParamInfo& info, const config::VitConfig& c) {
  return vit_pieces(info, c, kTimmVit);
}

}  // namespace

absl::StatusOr<config::VitConfig> vit_config_from_timm(const NamedTensors& sd,
                                                       const config::VitConfig& base,
                                                       const std::string& where) {
  std::vector<std::string> problems;
  auto shape = [&](const std::string& name, size_t rank) {
    return state_dict_shape(sd, name, rank, problems);
  };
  config::VitConfig v = base;
  const Shape patch = shape("patch_embed.proj.weight", 4);  // (d, C, p, p)
  const Shape pos = shape("pos_embed", 3);                  // (1, 1+N, d)
  int64_t layers = 0;
  while (sd.count(absl::StrCat("blocks.", layers, ".norm1.weight"))) ++layers;
  if (layers == 0) problems.push_back("no tensor blocks.0.norm1.weight (no blocks)");
  const Shape fc1 = layers ? shape("blocks.0.mlp.fc1.weight", 2) : Shape{};  // (hidden, d)
  const Shape head = shape("head.weight", 2);                                // (classes, d)
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": not a timm VisionTransformer state dict: ", absl::StrJoin(problems, "; ")));
  }
  const int64_t d = patch[0], p = patch[2], n = pos[1] - 1;
  const int64_t grid = int64_t(std::lround(std::sqrt(double(n))));
  if (grid * grid != n)
    problems.push_back(absl::StrCat("pos_embed: ", n, " patches, not a square"));
  if (patch[3] != p) problems.push_back("patch_embed.proj.weight: not a square patch");
  if (fc1[0] % d != 0) {
    problems.push_back(absl::StrCat("blocks.0.mlp.fc1.weight: hidden width ", fc1[0],
                                    " is not a multiple of the width ", d));
  }
  if (sd.count("fc_norm.weight")) {
    problems.push_back(
        "fc_norm: average pooling (global_pool \"avg\"); tessera pools the class "
        "token");
  }
  auto* t = v.mutable_transformer();
  if (t->n_heads() <= 0) {
    problems.push_back(
        "the head count is not in a state dict: give --set model.vit.transformer.n_heads=H");
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": not a ViT that tessera's ViT matches: ", absl::StrJoin(problems, "; ")));
  }
  v.set_image_size(int32_t(grid * p));
  v.set_patch(int32_t(p));
  v.set_channels(int32_t(patch[1]));
  v.set_n_classes(int32_t(head[0]));
  v.set_pre_norm(sd.count("norm_pre.weight") > 0);
  t->set_d_model(int32_t(d));
  t->set_n_layers(int32_t(layers));
  t->set_mlp_ratio(int32_t(fc1[0] / d));
  // timm's VisionTransformer defaults: nn.GELU (exact) and LayerNorm eps 1e-6.
  if (!t->has_activation()) t->set_activation(config::TransformerConfig::GELU_ERF);
  if (!t->has_layer_norm_eps()) t->set_layer_norm_eps(1e-6f);
  return v;
}

NamedTensors timm_vit_tensors(const models::ParamStore& params, const config::VitConfig& vit) {
  NamedTensors out = hf_tensors_from_pieces(
      params, [&](const models::ParamInfo& info) { return pieces(info, vit); }, vit.patch(),
      vit.channels(), "timm_vit");
  if (vit.pre_norm()) {
    // No patch bias in timm's pre_norm ViT: (W x + b) + pos = W x + (pos + b) on the patch
    // tokens' rows 1..N, exact (the class token's row 0 never had it).
    const Tensor b = to_device(params.param(params.find("patch_embed.proj.bias")), Device::cpu());
    Tensor& pos = out.at("pos_embed");  // (1, 1+N, d)
    const int64_t d = pos.dim(2);
    for (int64_t r = 1; r < pos.dim(1); ++r) {
      for (int64_t k = 0; k < d; ++k) pos.data<float>()[r * d + k] += b.data<float>()[k];
    }
  }
  return out;
}

absl::Status load_timm_vit(const NamedTensors& sd, models::ParamStore& params,
                           const config::VitConfig& vit, const std::string& where) {
  std::vector<std::string> problems;
  // A tensor tessera's ViT has no place for (LayerScale's ls1.gamma, register tokens, ...) means
  // another architecture: refused, named, rather than silently dropped.
  std::set<std::string> known;
  for (const models::ParamInfo& info : params.infos()) {
    for (const HfPiece& pc : pieces(info, vit)) known.insert(pc.hf);
  }
  for (const auto& [name, t] : sd) {
    if (!known.count(name)) {
      problems.push_back(absl::StrCat("unexpected tensor ", name,
                                      " (not in a plain timm VisionTransformer that tessera's "
                                      "ViT matches)"));
    }
  }
  Tensor host = hf_host_params(params);
  load_hf_pieces(
      sd, params, [&](const models::ParamInfo& info) { return pieces(info, vit); }, vit.patch(),
      vit.channels(), host, problems);
  return finish_hf_load(problems, host, params, where);
}

}  // namespace tessera::eval
