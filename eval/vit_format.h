#pragma once
// One mapping of tessera's ViT classifier parameters to another library's state-dict names,
// served by a table per format: Hugging Face's ViTForImageClassification (eval/hf_vit.cc) and
// timm's VisionTransformer (eval/timm_vit.cc). The layouts are the same; only the names and two
// details differ (whether the fused qkv is split in three, and timm's pre_norm ViT having no
// patch bias), so they are fields of the table rather than two copies of the mapping.

#include <vector>

#include "eval/hf_tensors.h"
#include "models/param_store.h"
#include "proto/config.pb.h"

namespace tessera::eval {

struct VitFormat {
  const char* what;               // the mapping's name in errors ("hf_vit", "timm_vit")
  const char* cls_token;          // (1, 1, d)
  const char* pos_embed;          // (1, 1+N, d)
  const char* patch_weight;       // conv (d, C, p, p)
  const char* patch_bias;         // (d)
  bool patch_bias_with_pre_norm;  // false: no patch bias when pre_norm (the caller folds it)
  const char* ln_pre;             // prefix of ln_pre's tensors; nullptr: the format has none
  const char* ln_f;               // prefix of ln_f's tensors ("norm.")
  const char* head;               // prefix of the head's tensors ("head.")
  const char* layer;              // prefix of block I's tensors, before "I." ("blocks.")
  HfBlockNames block;             // within a block
};

// The state-dict tensors that parameter `info` of ViT `c` consists of under `format`; none for a
// parameter the format has no tensor of. Throws naming format.what for a parameter outside it.
std::vector<HfPiece> vit_pieces(const models::ParamInfo& info, const config::VitConfig& c,
                                const VitFormat& format);

}  // namespace tessera::eval
