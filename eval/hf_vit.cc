#include "eval/hf_vit.h"

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/error.h"

namespace tessera::eval {
namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

// One HF tensor filled from (or into) a slice of a tessera parameter.
struct Piece {
  std::string hf;
  Shape hf_shape;
  int64_t begin = 0;  // first element of the tessera parameter (qkv: q, k or v's rows)
  bool conv = false;  // patch embedding: (d, p*p*C) in (py, px, c) <-> conv (d, C, p, p)
};

// The HF tensors that parameter `info` of a ViT `c` consists of.
std::vector<Piece> pieces(const models::ParamInfo& info, const config::VitConfig& c) {
  const std::string& n = info.spec.name;
  const int64_t d = c.transformer().d_model(), p = c.patch(), C = c.channels();
  const int64_t N = int64_t(c.image_size() / p) * (c.image_size() / p);
  if (n == "cls_token.weight") return {{"vit.embeddings.cls_token", {1, 1, d}}};
  if (n == "pos_emb.weight") return {{"vit.embeddings.position_embeddings", {1, N + 1, d}}};
  if (n == "patch_embed.proj.weight") {
    return {{"vit.embeddings.patch_embeddings.projection.weight", {d, C, p, p}, 0, true}};
  }
  if (n == "patch_embed.proj.bias")
    return {{"vit.embeddings.patch_embeddings.projection.bias", {d}}};
  if (starts_with(n, "ln_f.")) return {{"vit.layernorm." + n.substr(5), info.spec.shape}};
  if (starts_with(n, "head.")) return {{"classifier." + n.substr(5), info.spec.shape}};
  std::vector<std::string> parts = absl::StrSplit(n, absl::MaxSplits('.', 2));
  TESSERA_CHECK(parts.size() == 3 && parts[0] == "blocks", "hf_vit: unexpected parameter ", n);
  const std::string layer = absl::StrCat("vit.encoder.layer.", parts[1], ".");
  const std::string& rest = parts[2];
  const bool weight = rest.size() > 7 && rest.substr(rest.size() - 7) == ".weight";
  const std::string leaf = weight ? "weight" : "bias";
  if (starts_with(rest, "attn.qkv.")) {
    std::vector<Piece> out;
    const char* names[] = {"query", "key", "value"};
    for (int g = 0; g < 3; ++g) {
      out.push_back({absl::StrCat(layer, "attention.attention.", names[g], ".", leaf),
                     weight ? Shape{d, d} : Shape{d}, g * (weight ? d * d : d)});
    }
    return out;
  }
  static const std::pair<const char*, const char*> kMap[] = {
      {"attn.proj.", "attention.output.dense."},
      {"mlp.fc.", "intermediate.dense."},
      {"mlp.proj.", "output.dense."},
      {"ln1.", "layernorm_before."},
      {"ln2.", "layernorm_after."}};
  for (const auto& [from, to] : kMap) {
    if (starts_with(rest, from)) return {{layer + to + leaf, info.spec.shape}};
  }
  throw_error("hf_vit: unexpected parameter " + n);
}

std::string shape_text(const Shape& s) {
  return absl::StrCat("(", absl::StrJoin(s, ", "), ")");
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
  const std::string act = hf.value("hidden_act", std::string("gelu"));
  if (act != "gelu_pytorch_tanh" && act != "gelu_new") {
    problems.push_back(absl::StrCat("hidden_act \"", act,
                                    "\": tessera's GELU is the tanh form (gelu_pytorch_tanh)"));
  }
  const double eps = hf.value("layer_norm_eps", 1e-12);
  if (std::fabs(eps - 1e-5) > 1e-12) {
    problems.push_back(absl::StrCat("layer_norm_eps ", eps, ": tessera's LayerNorm uses 1e-5"));
  }
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
  j["hidden_act"] = "gelu_pytorch_tanh";
  j["layer_norm_eps"] = 1e-5;
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
  TESSERA_CHECK(params.tp_size() == 1, "hf_vit: a whole (unsplit) model is needed");
  NamedTensors out;
  const int64_t p = vit.patch(), C = vit.channels();
  for (int id = 0; id < int(params.infos().size()); ++id) {
    const Tensor src = to_device(params.param(id), Device::cpu());
    for (const Piece& pc : pieces(params.info(id), vit)) {
      Tensor t = Tensor::empty(pc.hf_shape, DType::f32);
      const float* s = src.data<float>() + pc.begin;
      float* o = t.data<float>();
      if (pc.conv) {
        const int64_t d = pc.hf_shape[0];
        for (int64_t e = 0; e < d; ++e)
          for (int64_t y = 0; y < p; ++y)
            for (int64_t x = 0; x < p; ++x)
              for (int64_t c = 0; c < C; ++c)
                o[((e * C + c) * p + y) * p + x] = s[e * p * p * C + (y * p + x) * C + c];
      } else {
        std::memcpy(o, s, t.nbytes());
      }
      out[pc.hf] = t;
    }
  }
  return out;
}

absl::Status load_hf_vit(const NamedTensors& hf, models::ParamStore& params,
                         const config::VitConfig& vit, const std::string& where) {
  std::vector<std::string> problems;
  const bool cpu = params.params().device().is_cpu();
  Tensor host = cpu ? params.params() : to_device(params.params(), Device::cpu());
  const int64_t p = vit.patch(), C = vit.channels();
  for (int id = 0; id < int(params.infos().size()); ++id) {
    const models::ParamInfo& info = params.info(id);
    for (const Piece& pc : pieces(info, vit)) {
      auto it = hf.find(pc.hf);
      if (it == hf.end()) {
        problems.push_back(absl::StrCat("no tensor ", pc.hf, " (for ", info.spec.name, ")"));
        continue;
      }
      const Tensor& t = it->second;
      if (t.dtype() != DType::f32 || t.shape() != pc.hf_shape) {
        problems.push_back(absl::StrCat(pc.hf, ": ", t.describe(), ", expected ",
                                        shape_text(pc.hf_shape), " f32"));
        continue;
      }
      float* o = host.data<float>() + info.offset + pc.begin;
      const float* s = t.data<float>();
      if (pc.conv) {
        const int64_t d = pc.hf_shape[0];
        for (int64_t e = 0; e < d; ++e)
          for (int64_t y = 0; y < p; ++y)
            for (int64_t x = 0; x < p; ++x)
              for (int64_t c = 0; c < C; ++c)
                o[e * p * p * C + (y * p + x) * C + c] = s[((e * C + c) * p + y) * p + x];
      } else {
        std::memcpy(o, s, t.nbytes());
      }
    }
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", absl::StrJoin(problems, "; ")));
  }
  if (!cpu) copy(host, params.params());
  params.sync_compute_params();
  return absl::OkStatus();
}

}  // namespace tessera::eval
