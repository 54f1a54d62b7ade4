#include "ops/cpu/isa.h"

#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "dnnl.h"

namespace tessera::ops::cpu {
namespace {

constexpr const char* kEnv = "TESSERA_CPU_ISA";

bool parse(std::string_view s, CpuIsa* out) {
  if (s == "avx512" || s == "x86-64-v4") {
    *out = CpuIsa::kAvx512;
  } else if (s == "avx2" || s == "x86-64-v3") {
    *out = CpuIsa::kAvx2;
  } else if (s == "baseline" || s == "x86-64") {
    *out = CpuIsa::kBaseline;
  } else {
    return false;
  }
  return true;
}

// A forced lower path must hold for oneDNN's kernels too, or a "baseline" test would still run
// oneDNN's AVX-512 GEMM. oneDNN takes the cap only before its first primitive; a user's own
// ONEDNN_MAX_CPU_ISA wins.
void cap_onednn(CpuIsa isa) {
  if (std::getenv("ONEDNN_MAX_CPU_ISA") || std::getenv("DNNL_MAX_CPU_ISA")) return;
  const dnnl_cpu_isa_t cap = isa == CpuIsa::kAvx2 ? dnnl_cpu_isa_avx2 : dnnl_cpu_isa_sse41;
  dnnl_set_max_cpu_isa(cap);  // fails only after oneDNN's first use; then its choice stands
}

CpuIsa select() {
  const CpuIsa detected = detected_cpu_isa();
  const char* env = std::getenv(kEnv);
  if (env == nullptr || *env == '\0') return detected;
  CpuIsa wanted;
  TESSERA_CHECK(parse(env, &wanted), kEnv, "=", env,
                ": unknown instruction-set path; use avx512, avx2 or baseline");
  TESSERA_CHECK(wanted <= detected, kEnv, "=", env, ": this CPU supports at most ",
                cpu_isa_name(detected));
  if (wanted < detected) cap_onednn(wanted);
  return wanted;
}

}  // namespace

CpuIsa detected_cpu_isa() {
#if defined(__x86_64__) && !defined(__clang__)
  if (__builtin_cpu_supports("x86-64-v4")) return CpuIsa::kAvx512;
  if (__builtin_cpu_supports("x86-64-v3")) return CpuIsa::kAvx2;
#endif
  return CpuIsa::kBaseline;
}

CpuIsa cpu_isa() {
  static const CpuIsa isa = select();
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) {
  constexpr const char* kNames[] = {"baseline", "avx2", "avx512"};  // by CpuIsa's value
  return kNames[static_cast<int>(isa)];
}

std::string cpu_isa_summary() {
  const CpuIsa isa = cpu_isa(), detected = detected_cpu_isa();
  std::string s = cpu_isa_name(isa);
  s += isa == detected ? " (the best this CPU has" : " (TESSERA_CPU_ISA; the CPU has ";
  if (isa != detected) s += cpu_isa_name(detected);
#if defined(__x86_64__) && !defined(__clang__)
  if (__builtin_cpu_supports("avx512bf16")) s += ", avx512_bf16";
#endif
  return s + ")";
}

}  // namespace tessera::ops::cpu
