#pragma once
// What the Hugging Face model mappings (eval/hf_gpt2.cc, hf_vit.cc, hf_clip.cc) share: one HF
// tensor as a slice of a tessera parameter, the patch-embedding layout change, the export and
// import loops over a parameter store, and the checks on an HF tensor. Each model's names stay
// in its own file.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "models/param_store.h"

namespace tessera::eval {

// One HF tensor filled from (or into) a slice of a tessera parameter.
struct HfPiece {
  std::string hf;
  Shape hf_shape;
  int64_t begin = 0;  // first element of the tessera parameter this piece covers (qkv: q, k, v)
  bool conv = false;  // patch embedding: (d, p*p*C) in (py, px, c) <-> conv (d, C, p, p)
};

// The HF tensors a tessera parameter consists of; none for a parameter HF has no tensor of.
using HfPieces = std::function<std::vector<HfPiece>(const models::ParamInfo&)>;

// HF's names of one pre-LN transformer block's parameters, after the layer's prefix.
struct HfBlockNames {
  // q, k and v ("self_attn.q_proj.", ...): the fused qkv split in three; or {"attn.qkv.",
  // nullptr, nullptr}: one (3d, d) / (3d) tensor of the same rows (timm's).
  const char* qkv[3];
  // tessera prefix -> HF prefix for the other parameters ("ln1." -> "layer_norm1.", ...)
  std::vector<std::pair<const char*, const char*>> others;
};

// The HF pieces of block parameter `rest` (its name after "blocks.I.", e.g. "attn.qkv.weight";
// `shape` its tessera shape) under the HF prefix `layer`; `d` the model width. `what` names the
// mapping in the error for a parameter `names` does not cover.
std::vector<HfPiece> hf_block_pieces(const std::string& layer, const std::string& rest,
                                     const Shape& shape, int64_t d, const HfBlockNames& names,
                                     const char* what);

// "(a, b, c)" for error messages.
std::string hf_shape_text(const Shape& s);

// A patch embedding's weight between tessera (d, p*p*C) in (py, px, c) order and HF's conv
// (d, C, p, p). `d` rows, patch side `p`, `C` channels.
void patch_weight_to_hf(const float* tessera, float* hf, int64_t d, int64_t p, int64_t C);
void patch_weight_from_hf(const float* hf, float* tessera, int64_t d, int64_t p, int64_t C);

// Every piece of every parameter of `params` (whole, unsplit) as an f32 tensor under its HF name.
// `p` and `C`: the patch side and channels for conv pieces.
NamedTensors hf_tensors_from_pieces(const models::ParamStore& params, const HfPieces& pieces,
                                    int64_t p, int64_t C, const char* what);

// `params` as a writable host tensor: the parameters themselves on the CPU, else a copy that
// finish_hf_load writes back.
Tensor hf_host_params(models::ParamStore& params);

// Tensor `name` of `hf` (else `alt`, when not empty) when it is f32 of shape `want`; else null
// with the problem appended, naming `param`, the tessera parameter it is wanted for.
const Tensor* hf_tensor(const NamedTensors& hf, const std::string& name, const Shape& want,
                        const std::string& param, std::vector<std::string>& problems,
                        const std::string& alt = "");

// The parameters of `params` from `hf` piece by piece into `host` (hf_host_params); a parameter
// with no pieces is set to zero. Problems are appended.
void load_hf_pieces(const NamedTensors& hf, const models::ParamStore& params,
                    const HfPieces& pieces, int64_t p, int64_t C, Tensor& host,
                    std::vector<std::string>& problems);

// The shape of state-dict tensor `name` when it has `rank` dimensions; otherwise appends the
// problem (missing, or of another rank) to `problems` and returns `rank` ones, so that an import
// can read every shape it needs first and then refuse once, naming all that is wrong.
Shape state_dict_shape(const NamedTensors& sd, const std::string& name, size_t rank,
                       std::vector<std::string>& problems);

// The end of an import: an error naming `where` and every problem, else `host` written back to
// the parameters (when it is a copy) and the compute copies refreshed.
absl::Status finish_hf_load(const std::vector<std::string>& problems, const Tensor& host,
                            models::ParamStore& params, const std::string& where);

}  // namespace tessera::eval
