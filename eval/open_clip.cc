#include "eval/open_clip.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "eval/hf_clip.h"
#include "eval/hf_tensors.h"

namespace tessera::eval {
namespace {

// open_clip name prefix <-> HF CLIPModel name prefix, for tensors that only change name.
constexpr std::pair<const char*, const char*> kPrefixes[] = {
    {"visual.class_embedding", "vision_model.embeddings.class_embedding"},
    {"visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"},
    {"visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"},
    {"visual.ln_pre.", "vision_model.pre_layrnorm."},
    {"visual.ln_post.", "vision_model.post_layernorm."},
    {"visual.transformer.resblocks.", "vision_model.encoder.layers."},
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
    {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
    {"ln_final.", "text_model.final_layer_norm."},
    {"transformer.resblocks.", "text_model.encoder.layers."},
    {"logit_scale", "logit_scale"},
};
// Within a block (after "resblocks.I." / "layers.I."), for the tensors that only change name.
constexpr std::pair<const char*, const char*> kBlock[] = {
    {"ln_1.", "layer_norm1."},
    {"ln_2.", "layer_norm2."},
    {"attn.out_proj.", "self_attn.out_proj."},
    {"mlp.c_fc.", "mlp.fc1."},
    {"mlp.c_proj.", "mlp.fc2."},
};
// open_clip's (width, embed) projections <-> HF's (embed, width) weights.
constexpr std::pair<const char*, const char*> kProjections[] = {
    {"visual.proj", "visual_projection.weight"},
    {"text_projection", "text_projection.weight"},
};

Tensor transposed(const Tensor& t) {
  const int64_t r = t.dim(0), c = t.dim(1);
  Tensor out = Tensor::empty({c, r}, DType::f32);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) out.data<float>()[j * r + i] = t.data<float>()[i * c + j];
  return out;
}

// `name` with prefix `from` replaced by `to` in `table`, else empty. Block tensors rename their
// leaf too; the in_proj ones are not in the tables (split / fused by the callers).
template <size_t N, size_t M>
std::string renamed(const std::string& name, const std::pair<const char*, const char*> (&table)[N],
                    const std::pair<const char*, const char*> (&block)[M], bool forward) {
  for (const auto& [a, b] : table) {
    const std::string from = forward ? a : b, to = forward ? b : a;
    if (!absl::StartsWith(name, from)) continue;
    std::string rest = name.substr(from.size());
    if (!absl::EndsWith(from, "resblocks.") && !absl::EndsWith(from, "layers.")) return to + rest;
    const size_t dot = rest.find('.');
    if (dot == std::string::npos) return "";
    const std::string layer = rest.substr(0, dot + 1), leaf = rest.substr(dot + 1);
    for (const auto& [x, y] : block) {
      const std::string bf = forward ? x : y, bt = forward ? y : x;
      if (absl::StartsWith(leaf, bf)) return to + layer + bt + leaf.substr(bf.size());
    }
    return "";
  }
  return "";
}

// open_clip -> HF names; unknown and malformed tensors appended to `problems`.
NamedTensors to_hf(const NamedTensors& sd, std::vector<std::string>& problems) {
  NamedTensors hf;
  for (const auto& [name, t] : sd) {
    bool done = false;
    for (const auto& [oc, h] : kProjections) {
      if (name == oc) {
        if (t.ndim() != 2 || t.dtype() != DType::f32) {
          problems.push_back(absl::StrCat(name, ": ", t.describe(), ", expected 2-D f32"));
        } else {
          hf[h] = transposed(t);
        }
        done = true;
      }
    }
    if (done) continue;
    // in_proj_weight (3d, d) / in_proj_bias (3d) -> q, k, v.
    for (const char* leaf : {"attn.in_proj_weight", "attn.in_proj_bias"}) {
      if (!absl::EndsWith(name, leaf)) continue;
      const std::string block = renamed(
          name.substr(0, name.size() - std::strlen(leaf)) + "ln_1.weight", kPrefixes, kBlock, true);
      const bool weight = absl::EndsWith(leaf, "weight");
      if (block.empty() || t.dtype() != DType::f32 || t.dim(0) % 3 != 0 ||
          t.ndim() != (weight ? 2 : 1)) {
        problems.push_back(absl::StrCat(name, ": ", t.describe(), ", unexpected"));
      } else {
        const std::string layer = block.substr(0, block.size() - std::strlen("layer_norm1.weight"));
        const int64_t d = t.dim(0) / 3, n = t.numel() / 3;
        const char* qkv[] = {"q_proj", "k_proj", "v_proj"};
        for (int g = 0; g < 3; ++g) {
          Tensor part = Tensor::empty(weight ? Shape{d, t.dim(1)} : Shape{d}, DType::f32);
          std::memcpy(part.data<float>(), t.data<float>() + g * n, n * sizeof(float));
          hf[absl::StrCat(layer, "self_attn.", qkv[g], weight ? ".weight" : ".bias")] = part;
        }
      }
      done = true;
    }
    if (done) continue;
    const std::string h = renamed(name, kPrefixes, kBlock, true);
    if (h.empty()) {
      problems.push_back(absl::StrCat("unexpected tensor ", name, " (not in open_clip's CLIP)"));
    } else {
      hf[h] = t;
    }
  }
  return hf;
}

// HF -> open_clip names (the inverse of to_hf).
NamedTensors from_hf(const NamedTensors& hf) {
  NamedTensors sd;
  for (const auto& [name, t] : hf) {
    bool done = false;
    for (const auto& [oc, h] : kProjections) {
      if (name == h) sd[oc] = transposed(t), done = true;
    }
    if (done || absl::StrContains(name, "self_attn.k_proj.") ||
        absl::StrContains(name, "self_attn.v_proj.")) {
      continue;  // k and v join q's in_proj below
    }
    const size_t q = name.find("self_attn.q_proj.");
    if (q != std::string::npos) {
      const std::string layer = name.substr(0, q);
      const bool weight = absl::EndsWith(name, ".weight");
      const std::string suffix = weight ? ".weight" : ".bias";
      const std::string oc =
          renamed(layer + "layer_norm1.weight", kPrefixes, kBlock, false);  // "....ln_1.weight"
      const std::string prefix = oc.substr(0, oc.size() - std::strlen("ln_1.weight"));
      const int64_t n = t.numel();
      Shape shape = t.shape();
      shape[0] *= 3;
      Tensor fused = Tensor::empty(shape, DType::f32);
      const char* parts[] = {"q_proj", "k_proj", "v_proj"};
      for (int g = 0; g < 3; ++g) {
        const Tensor& p = hf.at(absl::StrCat(layer, "self_attn.", parts[g], suffix));
        std::memcpy(fused.data<float>() + g * n, p.data<float>(), n * sizeof(float));
      }
      sd[prefix + (weight ? "attn.in_proj_weight" : "attn.in_proj_bias")] = fused;
      continue;
    }
    const std::string oc = renamed(name, kPrefixes, kBlock, false);
    TESSERA_CHECK(!oc.empty(), "open_clip: no open_clip name for ", name);
    sd[oc] = t;
  }
  return sd;
}

}  // namespace

absl::StatusOr<config::ClipConfig> clip_config_from_open_clip(const NamedTensors& sd,
                                                              const config::ClipConfig& base,
                                                              const std::string& where) {
  std::vector<std::string> problems;
  auto shape = [&](const std::string& name, size_t rank) {
    return state_dict_shape(sd, name, rank, problems);
  };
  auto layers = [&](const std::string& prefix) {
    int64_t n = 0;
    while (sd.count(absl::StrCat(prefix, n, ".ln_1.weight"))) ++n;
    if (n == 0) problems.push_back(absl::StrCat("no tensor ", prefix, "0.ln_1.weight (no blocks)"));
    return n;
  };
  const Shape conv = shape("visual.conv1.weight", 4);          // (d, C, p, p)
  const Shape vpos = shape("visual.positional_embedding", 2);  // (1+N, d)
  const Shape tok = shape("token_embedding.weight", 2);        // (V, d)
  const Shape tpos = shape("positional_embedding", 2);         // (L, d)
  const Shape tproj = shape("text_projection", 2);             // (d, embed)
  const int64_t image_layers = layers("visual.transformer.resblocks.");
  const int64_t text_layers = layers("transformer.resblocks.");
  const Shape vfc = shape("visual.transformer.resblocks.0.mlp.c_fc.weight", 2);  // (hidden, d)
  const Shape tfc = shape("transformer.resblocks.0.mlp.c_fc.weight", 2);
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not an open_clip CLIP state dict: ", absl::StrJoin(problems, "; ")));
  }
  config::ClipConfig c = base;
  c.set_loss(config::ClipConfig::INFONCE);
  c.set_embed_dim(int32_t(tproj[1]));
  auto* image = c.mutable_image();
  const int64_t d = conv[0], p = conv[2], n = vpos[0] - 1;
  const int64_t grid = int64_t(std::lround(std::sqrt(double(n))));
  if (grid * grid != n) {
    problems.push_back(absl::StrCat("visual.positional_embedding: ", n, " patches, not a square"));
  }
  image->set_image_size(int32_t(grid * p));
  image->set_patch(int32_t(p));
  image->set_channels(int32_t(conv[1]));
  image->set_n_classes(0);
  image->set_pre_norm(true);
  auto* text = c.mutable_text();
  text->set_vocab_size(int32_t(tok[0]));
  text->set_context(int32_t(tpos[0]));
  struct Tower {
    config::TransformerConfig* t;
    int64_t width, layers, hidden;
    const char* path;
  };
  for (const Tower& w : {Tower{image->mutable_transformer(), d, image_layers, vfc[0],
                               "model.clip.image.transformer"},
                         Tower{text->mutable_transformer(), tok[1], text_layers, tfc[0],
                               "model.clip.text.transformer"}}) {
    w.t->set_d_model(int32_t(w.width));
    w.t->set_n_layers(int32_t(w.layers));
    if (w.hidden % w.width != 0) {
      problems.push_back(absl::StrCat(w.path, ": MLP width ", w.hidden,
                                      " is not a multiple of the width ", w.width));
    }
    w.t->set_mlp_ratio(int32_t(w.hidden / w.width));
    if (w.t->n_heads() <= 0) {
      problems.push_back(
          absl::StrCat("the head count is not in a state dict: give --set ", w.path, ".n_heads=H"));
    }
    // open_clip's default activation: nn.GELU, the exact form.
    if (!w.t->has_activation()) w.t->set_activation(config::TransformerConfig::GELU_ERF);
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": not a CLIP that tessera's CLIP matches: ", absl::StrJoin(problems, "; ")));
  }
  return c;
}

absl::Status check_open_clip_exportable(const config::ClipConfig& c) {
  if (c.loss() != config::ClipConfig::INFONCE) {
    return absl::InvalidArgumentError("--format open_clip: SigLIP (a logit bias) is not a CLIP");
  }
  if (!c.image().pre_norm()) {
    return absl::InvalidArgumentError(
        "--format open_clip: open_clip's image tower has ln_pre: model.clip.image.pre_norm must "
        "be true");
  }
  return absl::OkStatus();
}

NamedTensors open_clip_tensors(const models::ParamStore& params, const config::ClipConfig& c) {
  return from_hf(hf_clip_tensors(params, c));
}

absl::Status load_open_clip(const NamedTensors& sd, models::ParamStore& params,
                            const config::ClipConfig& c, const std::string& where) {
  std::vector<std::string> problems;
  const NamedTensors hf = to_hf(sd, problems);
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", absl::StrJoin(problems, "; ")));
  }
  // Missing or mis-shaped tensors are named under HF's names by load_hf_clip; say so.
  absl::Status s = load_hf_clip(hf, params, c, where);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.message(), " (as Hugging Face CLIPModel names: see eval/open_clip.h)"));
  }
  return s;
}

}  // namespace tessera::eval
