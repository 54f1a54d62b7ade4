#include "eval/timm_vit.h"

#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/error.h"
#include "eval/hf_tensors.h"

namespace tessera::eval {
namespace {

// The timm tensors that parameter `info` of a ViT `c` consists of.
std::vector<HfPiece> pieces(const models::ParamInfo& info, const config::VitConfig& c) {
  const std::string& n = info.spec.name;
  const int64_t d = c.transformer().d_model(), p = c.patch(), C = c.channels();
  const int64_t N = int64_t(c.image_size() / p) * (c.image_size() / p);
  if (n == "cls_token.weight") return {{"cls_token", {1, 1, d}}};
  if (n == "pos_emb.weight") return {{"pos_embed", {1, N + 1, d}}};
  if (n == "patch_embed.proj.weight") return {{"patch_embed.proj.weight", {d, C, p, p}, 0, true}};
  if (n == "patch_embed.proj.bias") {
    // timm's pre_norm ViT (CLIP's layout) has a bias-free patch convolution: the bias loads as
    // zero and exports folded into the positions (timm_vit_tensors).
    if (c.pre_norm()) return {};
    return {{"patch_embed.proj.bias", {d}}};
  }
  if (absl::StartsWith(n, "ln_pre.")) return {{"norm_pre." + n.substr(7), info.spec.shape}};
  if (absl::StartsWith(n, "ln_f.")) return {{"norm." + n.substr(5), info.spec.shape}};
  if (absl::StartsWith(n, "head.")) return {{n, info.spec.shape}};
  std::vector<std::string> parts = absl::StrSplit(n, absl::MaxSplits('.', 2));
  TESSERA_CHECK(parts.size() == 3 && parts[0] == "blocks", "timm_vit: unexpected parameter ", n);
  static const std::pair<const char*, const char*> kBlock[] = {{"ln1.", "norm1."},
                                                               {"ln2.", "norm2."},
                                                               {"attn.proj.", "attn.proj."},
                                                               {"mlp.fc.", "mlp.fc1."},
                                                               {"mlp.proj.", "mlp.fc2."}};
  // tessera's qkv is (3, d, d) / (3, d); timm's the same rows as one (3d, d) / (3d) Linear.
  if (absl::StartsWith(parts[2], "attn.qkv.")) {
    const bool weight = absl::EndsWith(parts[2], ".weight");
    return {{absl::StrCat("blocks.", parts[1], ".", parts[2]),
             weight ? Shape{3 * d, d} : Shape{3 * d}}};
  }
  for (const auto& [from, to] : kBlock) {
    if (absl::StartsWith(parts[2], from)) {
      return {{absl::StrCat("blocks.", parts[1], ".", to, parts[2].substr(std::strlen(from))),
               info.spec.shape}};
    }
  }
  throw_error(absl::StrCat("timm_vit: unexpected block parameter ", n));
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
