// The SDPA forward as a cuDNN operation graph, the pattern cuDNN's fused flash-attention engines
// recognise:
//   S = Q K^T (f32) -> S * scale -> [causal: GEN_INDEX row/col, row >= col, select S or -inf]
//   -> softmax with stats: m = max_j S, e = exp(S - m), l = sum_j e, stats = m + log l, P = e / l
//   -> O = P V.
// Q, K, V are strided views of the fused qkv (no copies): Q (B, H, T, D) has strides
// (T*3C, D, 3C, 1), K^T (B, H, D, T) strides (T*3C, D, 1, 3C), from base + C and + 2C for K, V.
#include "ops/cuda/attention_cudnn.h"

#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "ops/cuda/cudnn_graph.h"

namespace tessera::ops::cuda {
namespace {

using cudnn::Desc;
using cudnn::Dims;
using cudnn::GraphBuilder;

enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kScale, kMaskValue };

struct Key {
  int device;
  int64_t B, T, H, D;
  bool causal;
  auto tie() const { return std::tie(device, B, T, H, D, causal); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

// P (the softmax output feeding the second matmul): cuDNN versions differ in what the fused
// engine expects, so the graph is tried with P as bf16 reordered F16x16 (the classic flash
// pattern), then as plain f32.
std::unique_ptr<GraphBuilder> forward_graph(const Key& k, bool p_bf16) {
  auto g = std::make_unique<GraphBuilder>();
  const int64_t B = k.B, T = k.T, H = k.H, D = k.D, C = H * D;
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const Desc& q = g->tensor(kQ, bf, {B, H, T, D}, {T * 3 * C, D, 3 * C, 1}, false);
  const Desc& kt = g->tensor(kK, bf, {B, H, D, T}, {T * 3 * C, D, 1, 3 * C}, false);
  const Desc& v = g->tensor(kV, bf, {B, H, T, D}, {T * 3 * C, D, 3 * C, 1}, false);
  const Desc& o = g->tensor(kO, bf, {B, H, T, D}, {T * C, D, C, 1}, false);
  const Desc& stats = g->tensor(kStats, f32, {B, H, T, 1}, {H * T, T, 1, 1}, false);
  const Desc& scale = g->tensor(kScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  const Dims sd = {B, H, T, T}, rd = {B, H, T, 1};

  const Desc& s = g->virt(f32, sd);
  g->matmul(q, kt, s);
  const Desc* cur = &g->virt(f32, sd);
  g->pointwise(CUDNN_POINTWISE_MUL, s, &scale, *cur);
  if (k.causal) {
    const Desc& mask_value = g->tensor(kMaskValue, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
    const Desc& row = g->virt(f32, sd);
    const Desc& col = g->virt(f32, sd);
    const Desc& keep = g->virt(CUDNN_DATA_BOOLEAN, sd);
    const Desc& masked = g->virt(f32, sd);
    g->pointwise(CUDNN_POINTWISE_GEN_INDEX, *cur, nullptr, row, nullptr, 2);
    g->pointwise(CUDNN_POINTWISE_GEN_INDEX, *cur, nullptr, col, nullptr, 3);
    g->pointwise(CUDNN_POINTWISE_CMP_GE, row, &col, keep);
    g->pointwise(CUDNN_POINTWISE_BINARY_SELECT, *cur, &mask_value, masked, &keep);
    cur = &masked;
  }
  const Desc& m = g->virt(f32, rd);
  const Desc& centered = g->virt(f32, sd);
  const Desc& e = g->virt(f32, sd);
  const Desc& l = g->virt(f32, rd);
  const Desc& log_l = g->virt(f32, rd);
  const Desc& p = g->virt(p_bf16 ? bf : f32, sd, /*reorder_f16x16=*/p_bf16);
  g->reduction(CUDNN_REDUCE_TENSOR_MAX, *cur, m);
  g->pointwise(CUDNN_POINTWISE_SUB, *cur, &m, centered);
  g->pointwise(CUDNN_POINTWISE_EXP, centered, nullptr, e);
  g->reduction(CUDNN_REDUCE_TENSOR_ADD, e, l);
  g->pointwise(CUDNN_POINTWISE_LOG, l, nullptr, log_l);
  g->pointwise(CUDNN_POINTWISE_ADD, m, &log_l, stats);
  g->pointwise(CUDNN_POINTWISE_DIV, e, &l, p);
  g->matmul(p, v, o);
  return g;
}

std::mutex g_mutex;
std::map<Key, std::unique_ptr<GraphBuilder>> g_forward;

}  // namespace

std::string cudnn_sdpa_unsupported(int64_t B, int64_t T, int64_t H, int64_t D) {
  if (cudnnGetVersion() < 90000)
    return absl::StrCat("cuDNN ", cudnnGetVersion(), " is older than 9.0");
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess)
    return "no CUDA device";
  if (major < 8) return absl::StrCat("compute capability ", major, ".x (fused SDPA needs 8.0+)");
  if (D % 8 != 0 || D > 128)
    return absl::StrCat("head dim ", D, " (needs a multiple of 8, <= 128)");
  if ((H * D) % 8 != 0) return "q/k/v offsets are not 16-byte aligned";
  if (B * H * T == 0) return "empty tensors";
  return "";
}

void cudnn_sdpa_forward(const bf16* qkv, bf16* out, float* lse, int64_t B, int64_t T, int64_t H,
                        int64_t D, bool causal, const WorkspaceFn& workspace, cudaStream_t stream) {
  const std::string why = cudnn_sdpa_unsupported(B, T, H, D);
  TESSERA_CHECK(why.empty(), "cuDNN SDPA forward: unsupported: ", why);
  int device = 0;
  cudaGetDevice(&device);
  const Key key{device, B, T, H, D, causal};
  cudnnHandle_t handle = cudnn::handle_for_current_device();
  cudnn::check(cudnnSetStream(handle, stream), "cudnnSetStream");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_forward.find(key);
  if (it == g_forward.end()) {
    const std::string what =
        absl::StrCat("SDPA forward B=", B, " T=", T, " H=", H, " D=", D, causal ? " causal" : "");
    std::unique_ptr<GraphBuilder> g;
    std::string first_error;
    for (bool p_bf16 : {true, false}) {
      try {
        auto candidate = forward_graph(key, p_bf16);
        candidate->build(handle, what);
        g = std::move(candidate);
        break;
      } catch (const Error& e) {
        if (first_error.empty()) first_error = e.what();
      }
    }
    TESSERA_CHECK(g != nullptr, first_error);
    it = g_forward.emplace(key, std::move(g)).first;
  }
  const int64_t C = H * D;
  float scale = 1.0f / std::sqrt(float(D));
  float mask_value = -std::numeric_limits<float>::infinity();
  std::vector<int64_t> uids = {kQ, kK, kV, kO, kStats, kScale};
  std::vector<void*> ptrs = {const_cast<bf16*>(qkv),
                             const_cast<bf16*>(qkv + C),
                             const_cast<bf16*>(qkv + 2 * C),
                             out,
                             lse,
                             &scale};
  if (causal) {
    uids.push_back(kMaskValue);
    ptrs.push_back(&mask_value);
  }
  const int64_t bytes = it->second->workspace_bytes();
  it->second->execute(handle, uids, ptrs, bytes > 0 ? workspace(size_t(bytes)) : nullptr);
}

}  // namespace tessera::ops::cuda
