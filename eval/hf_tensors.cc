#include "eval/hf_tensors.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/error.h"

namespace tessera::eval {

std::string hf_shape_text(const Shape& s) {
  return absl::StrCat("(", absl::StrJoin(s, ", "), ")");
}

std::vector<HfPiece> hf_block_pieces(const std::string& layer, const std::string& rest,
                                     const Shape& shape, int64_t d, const HfBlockNames& names,
                                     const char* what) {
  const bool weight = absl::EndsWith(rest, ".weight");
  const std::string leaf = weight ? "weight" : "bias";
  if (absl::StartsWith(rest, "attn.qkv.")) {
    if (names.qkv[1] == nullptr) {  // fused: tessera's (3, d, d) / (3, d) as one tensor
      return {{absl::StrCat(layer, names.qkv[0], leaf), weight ? Shape{3 * d, d} : Shape{3 * d}}};
    }
    std::vector<HfPiece> out;
    for (int g = 0; g < 3; ++g) {
      out.push_back({absl::StrCat(layer, names.qkv[g], leaf), weight ? Shape{d, d} : Shape{d},
                     g * (weight ? d * d : d)});
    }
    return out;
  }
  for (const auto& [from, to] : names.others) {
    if (absl::StartsWith(rest, from)) return {{layer + to + leaf, shape}};
  }
  throw_error(absl::StrCat(what, ": unexpected block parameter ", rest));
}

void patch_weight_to_hf(const float* tessera, float* hf, int64_t d, int64_t p, int64_t C) {
  for (int64_t e = 0; e < d; ++e)
    for (int64_t y = 0; y < p; ++y)
      for (int64_t x = 0; x < p; ++x)
        for (int64_t c = 0; c < C; ++c)
          hf[((e * C + c) * p + y) * p + x] = tessera[e * p * p * C + (y * p + x) * C + c];
}

void patch_weight_from_hf(const float* hf, float* tessera, int64_t d, int64_t p, int64_t C) {
  for (int64_t e = 0; e < d; ++e)
    for (int64_t y = 0; y < p; ++y)
      for (int64_t x = 0; x < p; ++x)
        for (int64_t c = 0; c < C; ++c)
          tessera[e * p * p * C + (y * p + x) * C + c] = hf[((e * C + c) * p + y) * p + x];
}

NamedTensors hf_tensors_from_pieces(const models::ParamStore& params, const HfPieces& pieces,
                                    int64_t p, int64_t C, const char* what) {
  TESSERA_CHECK(params.tp_size() == 1, what, ": a whole (unsplit) model is needed");
  NamedTensors out;
  for (int id = 0; id < int(params.infos().size()); ++id) {
    const Tensor src = to_device(params.param(id), Device::cpu());
    for (const HfPiece& pc : pieces(params.info(id))) {
      Tensor t = Tensor::empty(pc.hf_shape, DType::f32);
      const float* s = src.data<float>() + pc.begin;
      if (pc.conv) {
        patch_weight_to_hf(s, t.data<float>(), pc.hf_shape[0], p, C);
      } else {
        std::memcpy(t.data<float>(), s, t.nbytes());
      }
      out[pc.hf] = t;
    }
  }
  return out;
}

Tensor hf_host_params(models::ParamStore& params) {
  return params.params().device().is_cpu() ? params.params()
                                           : to_device(params.params(), Device::cpu());
}

const Tensor* hf_tensor(const NamedTensors& hf, const std::string& name, const Shape& want,
                        const std::string& param, std::vector<std::string>& problems,
                        const std::string& alt) {
  auto it = hf.find(name);
  if (it == hf.end() && !alt.empty()) it = hf.find(alt);
  if (it == hf.end()) {
    problems.push_back(absl::StrCat("no tensor ", name, " (for ", param, ")"));
    return nullptr;
  }
  const Tensor& t = it->second;
  // A scalar (want empty) may come as shape () or (1).
  if (t.dtype() != DType::f32 || t.numel() != shape_numel(want) ||
      (!want.empty() && t.shape() != want)) {
    problems.push_back(
        absl::StrCat(name, ": ", t.describe(), ", expected ", hf_shape_text(want), " f32"));
    return nullptr;
  }
  return &t;
}

void load_hf_pieces(const NamedTensors& hf, const models::ParamStore& params,
                    const HfPieces& pieces, int64_t p, int64_t C, Tensor& host,
                    std::vector<std::string>& problems) {
  for (int id = 0; id < int(params.infos().size()); ++id) {
    const models::ParamInfo& info = params.info(id);
    const std::vector<HfPiece> parts = pieces(info);
    if (parts.empty()) {
      std::memset(host.data<float>() + info.offset, 0, info.numel * sizeof(float));
      continue;
    }
    for (const HfPiece& pc : parts) {
      const Tensor* t = hf_tensor(hf, pc.hf, pc.hf_shape, info.spec.name, problems);
      if (!t) continue;
      float* o = host.data<float>() + info.offset + pc.begin;
      if (pc.conv) {
        patch_weight_from_hf(t->data<float>(), o, pc.hf_shape[0], p, C);
      } else {
        std::memcpy(o, t->data<float>(), t->nbytes());
      }
    }
  }
}

absl::Status finish_hf_load(const std::vector<std::string>& problems, const Tensor& host,
                            models::ParamStore& params, const std::string& where) {
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", absl::StrJoin(problems, "; ")));
  }
  if (!params.params().device().is_cpu()) copy(host, params.params());
  params.sync_compute_params();
  return absl::OkStatus();
}

Shape state_dict_shape(const NamedTensors& sd, const std::string& name, size_t rank,
                       std::vector<std::string>& problems) {
  auto it = sd.find(name);
  if (it == sd.end()) {
    problems.push_back(absl::StrCat("no tensor ", name));
    return Shape(rank, 1);
  }
  if (it->second.shape().size() != rank) {
    problems.push_back(
        absl::StrCat(name, ": ", it->second.describe(), ", expected ", rank, " dimensions"));
    return Shape(rank, 1);
  }
  return it->second.shape();
}

}  // namespace tessera::eval
