#include "eval/vit_format.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/error.h"

namespace tessera::eval {

std::vector<HfPiece> vit_pieces(const models::ParamInfo& info, const config::VitConfig& c,
                                const VitFormat& f) {
  const std::string& n = info.spec.name;
  const int64_t d = c.transformer().d_model(), p = c.patch(), C = c.channels();
  const int64_t N = int64_t(c.image_size() / p) * (c.image_size() / p);
  if (n == "cls_token.weight") return {{f.cls_token, {1, 1, d}}};
  if (n == "pos_emb.weight") return {{f.pos_embed, {1, N + 1, d}}};
  if (n == "patch_embed.proj.weight") return {{f.patch_weight, {d, C, p, p}, 0, true}};
  if (n == "patch_embed.proj.bias") {
    if (c.pre_norm() && !f.patch_bias_with_pre_norm) return {};
    return {{f.patch_bias, {d}}};
  }
  auto renamed = [&](const char* from, const char* to) -> std::vector<HfPiece> {
    return {{to + n.substr(std::string(from).size()), info.spec.shape}};
  };
  if (f.ln_pre != nullptr && absl::StartsWith(n, "ln_pre.")) return renamed("ln_pre.", f.ln_pre);
  if (absl::StartsWith(n, "ln_f.")) return renamed("ln_f.", f.ln_f);
  if (absl::StartsWith(n, "head.")) return renamed("head.", f.head);
  std::vector<std::string> parts = absl::StrSplit(n, absl::MaxSplits('.', 2));
  TESSERA_CHECK(parts.size() == 3 && parts[0] == "blocks", f.what, ": unexpected parameter ", n);
  return hf_block_pieces(absl::StrCat(f.layer, parts[1], "."), parts[2], info.spec.shape, d,
                         f.block, f.what);
}

}  // namespace tessera::eval
