#include "eval/hf_gpt2.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/error.h"
#include "distributed/layout.h"
#include "eval/hf_tensors.h"
#include "eval/hf_transformer.h"
#include "models/factory.h"
#include "train/config.h"

namespace tessera::eval {
namespace {

// GPT2LMHeadModel's name of tessera parameter `name`; *transpose: stored as Conv1D (in, out).
std::string hf_name(const std::string& name, bool* transpose) {
  *transpose = false;
  if (name == "tok_emb.weight") return "transformer.wte.weight";
  if (name == "pos_emb.weight") return "transformer.wpe.weight";
  if (name == "head.weight") return "lm_head.weight";
  if (absl::StartsWith(name, "ln_f.")) return "transformer." + name;
  // blocks.I.REST
  std::vector<std::string> parts = absl::StrSplit(name, absl::MaxSplits('.', 2));
  TESSERA_CHECK(parts.size() == 3 && parts[0] == "blocks", "hf_gpt2: unexpected parameter ", name);
  static const std::pair<const char*, const char*> kRest[] = {{"ln1.", "ln_1."},
                                                              {"ln2.", "ln_2."},
                                                              {"attn.qkv.", "attn.c_attn."},
                                                              {"attn.proj.", "attn.c_proj."},
                                                              {"mlp.fc.", "mlp.c_fc."},
                                                              {"mlp.proj.", "mlp.c_proj."}};
  for (const auto& [from, to] : kRest) {
    if (absl::StartsWith(parts[2], from)) {
      const std::string leaf = parts[2].substr(std::strlen(from));
      *transpose = leaf == "weight" && !absl::StartsWith(from, "ln");
      return absl::StrCat("transformer.h.", parts[1], ".", to, leaf);
    }
  }
  throw_error("hf_gpt2: unexpected parameter " + name);
}

// The HF tensor's shape for tessera parameter `info` (whole, unsplit store).
Shape hf_shape(const models::ParamInfo& info, bool transpose, int64_t vocab) {
  const Shape& s = info.spec.shape;
  const int64_t cols = s.back(), rows = shape_numel(s) / std::max<int64_t>(cols, 1);
  if (info.spec.name == "tok_emb.weight" || info.spec.name == "head.weight") return {vocab, cols};
  if (transpose) return {cols, rows};
  // The fused qkv bias: tessera (3, d), HF one (3d) vector.
  if (info.spec.name.find(".qkv.bias") != std::string::npos) return {shape_numel(s)};
  return s;
}

}  // namespace

absl::StatusOr<config::GptConfig> gpt_config_from_hf(const nlohmann::json& hf,
                                                     const std::string& where) {
  std::vector<std::string> problems;
  auto integer = [&](const char* key, const char* alt = nullptr) -> int64_t {
    for (const char* k : {key, alt}) {
      if (k && hf.contains(k) && hf[k].is_number_integer()) return hf[k].get<int64_t>();
    }
    problems.push_back(absl::StrCat(key, ": missing or not an integer"));
    return 0;
  };
  if (hf.contains("model_type") && hf["model_type"] != "gpt2") {
    problems.push_back(absl::StrCat("model_type ", hf["model_type"].dump(), " (only gpt2)"));
  }
  config::GptConfig g;
  g.set_vocab_size(int32_t(integer("vocab_size")));
  g.set_context(int32_t(integer("n_positions", "n_ctx")));
  const int64_t d = integer("n_embd");
  auto* t = g.mutable_transformer();
  t->set_d_model(int32_t(d));
  t->set_n_layers(int32_t(integer("n_layer")));
  t->set_n_heads(int32_t(integer("n_head")));
  int64_t inner = 4 * d;
  if (hf.contains("n_inner") && !hf["n_inner"].is_null()) inner = hf["n_inner"].get<int64_t>();
  if (d > 0 && inner % d != 0) {
    problems.push_back(absl::StrCat("n_inner ", inner, " is not a multiple of n_embd ", d,
                                    " (tessera's MLP width is mlp_ratio * d_model)"));
  }
  t->set_mlp_ratio(d > 0 ? int32_t(inner / d) : 4);
  activation_from_hf(hf.value("activation_function", std::string("gelu_new")),
                     "activation_function", t, problems);
  layer_norm_eps_from_hf(hf.value("layer_norm_epsilon", nlohmann::json(1e-5)), "layer_norm_epsilon",
                         t, problems);
  if (!hf.value("scale_attn_weights", true)) {
    problems.push_back("scale_attn_weights false: tessera scales attention by 1/sqrt(head dim)");
  }
  if (hf.value("scale_attn_by_inverse_layer_idx", false)) {
    problems.push_back("scale_attn_by_inverse_layer_idx true: not supported");
  }
  g.set_tie_embedding(hf.value("tie_word_embeddings", true));
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where,
                                                   ": not a GPT-2 that tessera's GPT "
                                                   "matches: ",
                                                   absl::StrJoin(problems, "; ")));
  }
  return g;
}

nlohmann::json hf_config_from_gpt(const config::GptConfig& g) {
  const auto& t = g.transformer();
  nlohmann::json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = g.vocab_size();
  j["n_positions"] = g.context();
  j["n_ctx"] = g.context();
  j["n_embd"] = t.d_model();
  j["n_layer"] = t.n_layers();
  j["n_head"] = t.n_heads();
  j["n_inner"] = int64_t(t.mlp_ratio()) * t.d_model();
  j["activation_function"] = hf_activation(t, "gelu_new");
  j["layer_norm_epsilon"] = hf_layer_norm_eps(t);
  j["resid_pdrop"] = 0.0;
  j["embd_pdrop"] = 0.0;
  j["attn_pdrop"] = 0.0;
  j["initializer_range"] = 0.02;
  j["scale_attn_weights"] = true;
  j["tie_word_embeddings"] = g.tie_embedding();
  j["bos_token_id"] = g.vocab_size() - 1;
  j["eos_token_id"] = g.vocab_size() - 1;
  j["torch_dtype"] = "float32";
  return j;
}

NamedTensors hf_gpt2_tensors(const models::ParamStore& params, const config::GptConfig& gpt) {
  TESSERA_CHECK(params.tp_size() == 1, "hf_gpt2: a whole (unsplit) model is needed");
  NamedTensors out;
  for (int id = 0; id < int(params.infos().size()); ++id) {
    const models::ParamInfo& info = params.info(id);
    bool transpose = false;
    const std::string name = hf_name(info.spec.name, &transpose);
    const Shape shape = hf_shape(info, transpose, gpt.vocab_size());
    const Tensor p = to_device(params.param(id), Device::cpu());
    Tensor t = Tensor::empty(shape, DType::f32);
    const float* src = p.data<float>();
    float* dst = t.data<float>();
    if (transpose) {
      const int64_t in = shape[0], outf = shape[1];  // tessera (outf, in) -> HF (in, outf)
      for (int64_t o = 0; o < outf; ++o) {
        for (int64_t i = 0; i < in; ++i) dst[i * outf + o] = src[o * in + i];
      }
    } else {
      std::memcpy(dst, src, t.nbytes());  // the first rows (vocabulary padding dropped)
    }
    out[name] = t;
  }
  return out;
}

absl::Status load_hf_gpt2(const NamedTensors& hf, models::ParamStore& params,
                          const config::GptConfig& gpt, const std::string& where) {
  std::vector<std::string> problems;
  Tensor host = hf_host_params(params);
  for (int id = 0; id < int(params.infos().size()); ++id) {
    const models::ParamInfo& info = params.info(id);
    bool transpose = false;
    const std::string name = hf_name(info.spec.name, &transpose);
    const Shape want = hf_shape(info, transpose, gpt.vocab_size());
    // Some GPT-2 files store the transformer's tensors without the "transformer." prefix.
    const Tensor* t = hf_tensor(hf, name, want, info.spec.name, problems,
                                absl::StartsWith(name, "transformer.") ? name.substr(12) : "");
    if (!t) continue;
    float* dst = host.data<float>() + info.offset;
    const float* src = t->data<float>();
    if (transpose) {
      const int64_t in = want[0], outf = want[1];
      for (int64_t o = 0; o < outf; ++o) {
        for (int64_t i = 0; i < in; ++i) dst[o * in + i] = src[i * outf + o];
      }
    } else {
      std::memset(dst, 0, info.numel * sizeof(float));  // padded vocabulary rows stay zero
      std::memcpy(dst, src, t->nbytes());
    }
  }
  return finish_hf_load(problems, host, params, where);
}

}  // namespace tessera::eval
