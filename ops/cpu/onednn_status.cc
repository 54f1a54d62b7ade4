#include "ops/cpu/onednn_status.h"

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "dnnl_debug.h"

namespace tessera::ops::cpu {

std::string gemm_description(const GemmShape& s, const std::string& dtype) {
  const std::string batch = s.batch > 1 ? absl::StrCat(s.batch, ", ") : std::string();
  const auto dims = [&](int64_t rows, int64_t cols) {
    return absl::StrCat("(", batch, rows, ", ", cols, ")");
  };
  return absl::StrCat(
      dtype, " matmul", s.batch > 1 ? absl::StrCat(" batch=", s.batch) : std::string(), " m=", s.m,
      " n=", s.n, " k=", s.k, s.trans_a ? " trans_a" : "", s.trans_b ? " trans_b" : "", ": A ",
      s.trans_a ? dims(s.k, s.m) : dims(s.m, s.k), ", B ",
      s.trans_b ? dims(s.n, s.k) : dims(s.k, s.n), ", C ", dims(s.m, s.n));
}

void throw_onednn_error(dnnl_status_t status, const std::string& call, const std::string& op) {
  if (status == dnnl_out_of_memory) {
    throw_error(absl::StrCat("out of memory in oneDNN's ", call,
                             " (dnnl_out_of_memory: it could not allocate its working memory) for ",
                             op));
  }
  throw_error(absl::StrCat("oneDNN's ", call, " failed (", dnnl_status2str(status), ", status ",
                           int(status), ") for ", op));
}

}  // namespace tessera::ops::cpu
