// The SDPA forward and backward as cuDNN operation graphs, the patterns cuDNN's fused
// flash-attention engines recognise: the op sequence, dtypes and strides follow what cuDNN
// frontend 1.x's composite SDPA nodes emit for cuDNN 9 before 9.21 (scaled_dot_product_flash_
// attention.h, softmax.h, diagonal_band_mask.h), with older forms as fallbacks. Forward:
//   S = Q K^T (f32) -> S * scale -> [causal: GEN_INDEX row/col, row >= col, select S or -max]
//   -> softmax with stats: m = max_j S, e = exp(S - m), l = sum_j e, stats = m + log l, P = e / l
//   -> O = P V.
// Q, K, V are strided views of the fused qkv (no copies): Q (B, H, T, D) has strides
// (T*3C, D, 3C, 1), K^T (B, H, D, T) strides (T*3C, D, 1, 3C), from base + C and + 2C for K, V.
// The backward graph is described at backward_graph(). Plans are built once per shape (trying
// the variants below until one finalizes) and cached.
#include "ops/cuda/attention_cudnn.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/cuda/runtime.h"
#include "core/error.h"
#include "ops/cuda/cudnn_graph.h"

namespace tessera::ops::cuda {
namespace {

using cudnn::Desc;
using cudnn::Dims;
using cudnn::GraphBuilder;

// Tensor ids. kK and kV bind the K^T and V^T views (the forward's V is a plain view); kOne is a
// by-value 1.0 where the classic pattern has a dropout scale; kSoftmaxSum and kDQAccum live in
// the backward's workspace.
enum Uid : int64_t {
  kQ = 1,
  kK,
  kV,
  kO,
  kStats,
  kScale,
  kMaskValue,
  kDO,
  kDQ,
  kDK,
  kDV,
  kSoftmaxSum,
  kOne,
  kDQAccum,
};

// Masked scores: the most negative float rather than -inf, so no inf - inf can appear.
constexpr float kMaskValueFloat = -std::numeric_limits<float>::max();

struct Key {
  int device;
  int64_t B, T, H, D;
  bool causal;
  auto tie() const { return std::tie(device, B, T, H, D, causal); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

// Keeps s where row >= column (query t sees keys <= t), else the mask value. The index tensors
// are `index_type`: cuDNN frontend 1.x (the pattern cuDNN 9's fused engines are tuned for) makes
// them INT32 with FLOAT math; cuDNN 8.9's samples made them FLOAT. Both forms are tried.
const Desc& causal_mask(GraphBuilder& g, const Desc& s, const Dims& sd,
                        cudnnDataType_t index_type) {
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  const Desc& mask_value = g.tensor(kMaskValue, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  const Desc& row = g.virt(index_type, sd);
  const Desc& col = g.virt(index_type, sd);
  const Desc& keep = g.virt(CUDNN_DATA_BOOLEAN, sd);
  const Desc& masked = g.virt(f32, sd);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, s, nullptr, row, nullptr, 2);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, s, nullptr, col, nullptr, 3);
  g.pointwise(CUDNN_POINTWISE_CMP_GE, row, &col, keep, nullptr, -1, CUDNN_DATA_BOOLEAN);
  // y = keep ? s : mask value.
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, s, &mask_value, masked, &keep);
  return masked;
}

// P, the softmax output feeding the second matmul: cuDNN versions differ in the form their
// fused engines recognise, so the graph is tried with P in each of these forms, in this order.
enum class PForm {
  kBf16,           // bf16 straight from the division (cuDNN frontend 1.x: "bmm2 aType is the
                   // i/o type", no reordering)
  kBf16Reordered,  // bf16 with F16x16 reordering (cuDNN 8.9-era fused attention)
  kF32ThenBf16,    // f32 reordered F16x16, then a multiply by one into bf16 (where a dropout
                   // scale sits in the classic pattern)
  kF32,            // plain f32
};
constexpr PForm kPForms[] = {PForm::kBf16, PForm::kBf16Reordered, PForm::kF32ThenBf16, PForm::kF32};
constexpr cudnnDataType_t kIndexTypes[] = {CUDNN_DATA_INT32, CUDNN_DATA_FLOAT};

std::unique_ptr<GraphBuilder> forward_graph(const Key& k, PForm form, cudnnDataType_t index_type) {
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
  if (k.causal) cur = &causal_mask(*g, *cur, sd, index_type);
  const Desc& m = g->virt(f32, rd);
  const Desc& centered = g->virt(f32, sd);
  const Desc& e = g->virt(f32, sd);
  const Desc& l = g->virt(f32, rd);
  const Desc& log_l = g->virt(f32, rd);
  const bool p_bf16 = form == PForm::kBf16 || form == PForm::kBf16Reordered;
  const bool p_reordered = form == PForm::kBf16Reordered || form == PForm::kF32ThenBf16;
  const Desc& p = g->virt(p_bf16 ? bf : f32, sd, p_reordered);
  g->reduction(CUDNN_REDUCE_TENSOR_MAX, *cur, m);
  g->pointwise(CUDNN_POINTWISE_SUB, *cur, &m, centered);
  g->pointwise(CUDNN_POINTWISE_EXP, centered, nullptr, e);
  g->reduction(CUDNN_REDUCE_TENSOR_ADD, e, l);
  g->pointwise(CUDNN_POINTWISE_LOG, l, nullptr, log_l);
  g->pointwise(CUDNN_POINTWISE_ADD, m, &log_l, stats);
  g->pointwise(CUDNN_POINTWISE_DIV, e, &l, p);
  if (form == PForm::kF32ThenBf16) {
    const Desc& one = g->tensor(kOne, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
    const Desc& p16 = g->virt(bf, sd, /*reorder_f16x16=*/true);
    g->pointwise(CUDNN_POINTWISE_MUL, p, &one, p16);
    g->matmul(p16, v, o);
  } else {
    g->matmul(p, v, o);
  }
  return g;
}

// The SDPA backward in the form cuDNN frontend 1.x builds for cuDNN 9 (its composite SDPA
// backward node), which the fused flash-attention backward engines recognise:
//   softmax_sum = rowsum(dO * O) * 1 (non-virtual, in the workspace)
//   P = exp([causal mask](scale * Q K^T - stats)); dV = P^T dO (P^T: a transposing reshape whose
//   output is bf16, the i/o type)
//   dS = (dO V^T - softmax_sum) * P * scale; dK = dS^T Q (dS^T again a bf16 reshape);
//   dQ = dS K (K from the K^T view by a reshape), straight into dqkv or (`dq_accum`) through an
//   f32 (B, H, T, D) accumulator in the workspace and an identity op.
std::unique_ptr<GraphBuilder> backward_graph(const Key& k, bool dq_accum,
                                             cudnnDataType_t index_type) {
  auto g = std::make_unique<GraphBuilder>();
  const int64_t B = k.B, T = k.T, H = k.H, D = k.D, C = H * D;
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const Dims qkv_strides = {T * 3 * C, D, 3 * C, 1}, qkv_t_strides = {T * 3 * C, D, 1, 3 * C};
  const Dims o_strides = {T * C, D, C, 1};
  const Dims sd = {B, H, T, T}, st = {H * T * T, T * T, 1, T}, rd = {B, H, T, 1};
  const Dims rs = {H * T, T, 1, 1};
  const Desc& q = g->tensor(kQ, bf, {B, H, T, D}, qkv_strides, false);
  const Desc& kt = g->tensor(kK, bf, {B, H, D, T}, qkv_t_strides, false);
  const Desc& vt = g->tensor(kV, bf, {B, H, D, T}, qkv_t_strides, false);
  const Desc& o = g->tensor(kO, bf, {B, H, T, D}, o_strides, false);
  const Desc& dO = g->tensor(kDO, bf, {B, H, T, D}, o_strides, false);
  const Desc& stats = g->tensor(kStats, f32, rd, rs, false);
  const Desc& scale = g->tensor(kScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  const Desc& one = g->tensor(kOne, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  const Desc& softmax_sum = g->tensor(kSoftmaxSum, f32, rd, rs, false);
  const Desc& dq = g->tensor(kDQ, bf, {B, H, T, D}, qkv_strides, false);
  const Desc& dk = g->tensor(kDK, bf, {B, H, T, D}, qkv_strides, false);
  const Desc& dv = g->tensor(kDV, bf, {B, H, T, D}, qkv_strides, false);

  // softmax_sum = rowsum(dO * O) * 1 (the 1 is where a dropout scale would sit)
  const Desc& prod = g->virt_strided(f32, {B, H, T, D}, o_strides);
  const Desc& row_sum = g->virt(f32, rd);
  g->pointwise(CUDNN_POINTWISE_MUL, dO, &o, prod);
  g->reduction(CUDNN_REDUCE_TENSOR_ADD, prod, row_sum);
  g->pointwise(CUDNN_POINTWISE_MUL, row_sum, &one, softmax_sum);

  // P = exp(mask(scale * Q K^T - stats)); masked entries are the most negative float, so
  // exp gives 0 there as it would with the mask before the subtraction.
  const Desc& s = g->virt(f32, sd);
  g->matmul(q, kt, s);
  const Desc& scaled = g->virt(f32, sd);
  g->pointwise(CUDNN_POINTWISE_MUL, s, &scale, scaled);
  const Desc* cur = &g->virt(f32, sd);
  g->pointwise(CUDNN_POINTWISE_SUB, scaled, &stats, *cur);
  if (k.causal) cur = &causal_mask(*g, *cur, sd, index_type);
  const Desc& p = g->virt(f32, sd);
  g->pointwise(CUDNN_POINTWISE_EXP, *cur, nullptr, p);

  // dV = P^T dO
  const Desc& pt = g->virt_strided(bf, {B, H, T, T}, st);
  g->reshape(p, pt);
  g->matmul(pt, dO, dv);

  // dS = (dO V^T - softmax_sum) * P * scale
  const Desc& dp = g->virt(f32, sd);
  const Desc& dp_centered = g->virt(f32, sd);
  const Desc& ds_unscaled = g->virt(f32, sd);
  const Desc& ds = g->virt(f32, sd);
  g->matmul(dO, vt, dp);
  g->pointwise(CUDNN_POINTWISE_SUB, dp, &softmax_sum, dp_centered);
  g->pointwise(CUDNN_POINTWISE_MUL, dp_centered, &p, ds_unscaled);
  g->pointwise(CUDNN_POINTWISE_MUL, ds_unscaled, &scale, ds);

  // dK = dS^T Q
  const Desc& dst = g->virt_strided(bf, {B, H, T, T}, st);
  g->reshape(ds, dst);
  g->matmul(dst, q, dk);

  // dQ = dS K
  const Desc& kk = g->virt_strided(bf, {B, H, T, D}, qkv_strides);
  g->reshape(kt, kk);
  if (dq_accum) {
    const Desc& acc = g->tensor(kDQAccum, f32, {B, H, T, D}, {H * T * D, T * D, D, 1}, false);
    g->matmul(ds, kk, acc);
    g->pointwise(CUDNN_POINTWISE_IDENTITY, acc, nullptr, dq);
  } else {
    g->matmul(ds, kk, dq);
  }
  return g;
}

struct Plan {
  std::unique_ptr<GraphBuilder> graph;
  bool dq_accum = false;
};

std::mutex g_mutex;
std::map<Key, std::pair<std::unique_ptr<GraphBuilder>, PForm>> g_forward;
std::map<Key, Plan> g_backward;

// Every tensor is declared 16-byte aligned (CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT): a view at an odd
// element offset would be read misaligned, so it is refused (under kAuto: the own kernel runs).
void check_aligned(std::initializer_list<const void*> pointers, const char* what) {
  for (const void* ptr : pointers) {
    TESSERA_CHECK((reinterpret_cast<uintptr_t>(ptr) & 15u) == 0, "cuDNN SDPA ", what,
                  ": unsupported: a tensor is not 16-byte aligned (a view at an odd offset)");
  }
}

Key key_for(int64_t B, int64_t T, int64_t H, int64_t D, bool causal, const char* what) {
  const std::string why = cudnn_sdpa_unsupported(B, T, H, D);
  TESSERA_CHECK(why.empty(), "cuDNN SDPA ", what, ": unsupported: ", why);
  int device = 0;
  cudaGetDevice(&device);
  return Key{device, B, T, H, D, causal};
}

std::string describe(const Key& k, const char* what) {
  return absl::StrCat("SDPA ", what, " B=", k.B, " T=", k.T, " H=", k.H, " D=", k.D,
                      k.causal ? " causal" : "");
}

}  // namespace

std::vector<std::string> cudnn_sdpa_graph_report(int64_t B, int64_t T, int64_t H, int64_t D,
                                                 bool causal) {
  const Key key{-1, B, T, H, D, causal};
  std::vector<std::string> lines;
  auto attempt = [&](const std::string& name,
                     const std::function<std::unique_ptr<GraphBuilder>()>& make) {
    try {
      make()->finalize_graph(nullptr, name);
      lines.push_back(name + ": ok");
    } catch (const Error& e) {
      lines.push_back(name + ": " + e.what());
    }
  };
  for (cudnnDataType_t index : kIndexTypes) {
    const std::string idx = causal ? absl::StrCat(" index type ", int(index)) : "";
    for (PForm form : kPForms) {
      attempt(absl::StrCat("forward P form ", int(form), idx),
              [&] { return forward_graph(key, form, index); });
    }
    for (bool dq_accum : {false, true}) {
      attempt(absl::StrCat("backward ", dq_accum ? "dQ accumulator" : "direct dQ", idx),
              [&] { return backward_graph(key, dq_accum, index); });
    }
    if (!causal) break;
  }
  return lines;
}

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
  const Key key = key_for(B, T, H, D, causal, "forward");
  check_aligned({qkv, out, lse}, "forward");
  cudnnHandle_t handle = cudnn::handle_for_current_device();
  cudnn::check(cudnnSetStream(handle, stream), "cudnnSetStream");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_forward.find(key);
  if (it == g_forward.end()) {
    std::unique_ptr<GraphBuilder> g;
    PForm chosen = PForm::kBf16;
    std::string errors;
    // Without a mask the index type plays no part: one pass over the P forms.
    for (cudnnDataType_t index : kIndexTypes) {
      for (PForm form : kPForms) {
        if (g) break;
        try {
          auto candidate = forward_graph(key, form, index);
          candidate->build(handle, describe(key, "forward"));
          g = std::move(candidate);
          chosen = form;
        } catch (const Error& e) {
          absl::StrAppend(&errors, errors.empty() ? "" : " | ", "P form ", int(form),
                          causal ? absl::StrCat(", index type ", int(index)) : "", ": ", e.what());
        }
      }
      if (g || !causal) break;
    }
    TESSERA_CHECK(g != nullptr, errors);
    it = g_forward.emplace(key, std::make_pair(std::move(g), chosen)).first;
  }
  GraphBuilder& graph = *it->second.first;
  const int64_t C = H * D;
  float scale = 1.0f / std::sqrt(float(D)), one = 1.0f, mask_value = kMaskValueFloat;
  auto p = [](const bf16* x) { return static_cast<void*>(const_cast<bf16*>(x)); };
  std::vector<int64_t> uids = {kQ, kK, kV, kO, kStats, kScale};
  std::vector<void*> ptrs = {p(qkv), p(qkv + C), p(qkv + 2 * C), out, lse, &scale};
  if (it->second.second == PForm::kF32ThenBf16) {
    uids.push_back(kOne);
    ptrs.push_back(&one);
  }
  if (causal) {
    uids.push_back(kMaskValue);
    ptrs.push_back(&mask_value);
  }
  const int64_t bytes = graph.workspace_bytes();
  graph.execute(handle, uids, ptrs, bytes > 0 ? workspace(size_t(bytes)) : nullptr);
}

}  // namespace tessera::ops::cuda

namespace tessera::ops::cuda {

void cudnn_sdpa_backward(const bf16* dout, const bf16* qkv, const bf16* out, const float* lse,
                         bf16* dqkv, int64_t B, int64_t T, int64_t H, int64_t D, bool causal,
                         const WorkspaceFn& workspace, cudaStream_t stream) {
  const Key key = key_for(B, T, H, D, causal, "backward");
  check_aligned({dout, qkv, out, lse, dqkv}, "backward");
  cudnnHandle_t handle = cudnn::handle_for_current_device();
  cudnn::check(cudnnSetStream(handle, stream), "cudnnSetStream");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_backward.find(key);
  if (it == g_backward.end()) {
    Plan plan;
    std::string errors;
    for (cudnnDataType_t index : kIndexTypes) {
      for (bool dq_accum : {false, true}) {
        if (plan.graph) break;
        try {
          auto candidate = backward_graph(key, dq_accum, index);
          candidate->build(handle, describe(key, "backward"));
          plan = Plan{std::move(candidate), dq_accum};
        } catch (const Error& e) {
          absl::StrAppend(&errors, errors.empty() ? "" : " | ",
                          dq_accum ? "dQ accumulator" : "direct dQ",
                          causal ? absl::StrCat(", index type ", int(index)) : "", ": ", e.what());
        }
      }
      if (plan.graph || !causal) break;
    }
    TESSERA_CHECK(plan.graph != nullptr, errors);
    it = g_backward.emplace(key, std::move(plan)).first;
  }
  const Plan& plan = it->second;
  const int64_t C = H * D;
  // Workspace: the plan's, then softmax_sum (B*H*T f32), then the dQ accumulator (B*H*T*D f32;
  // zeroed, as cuDNN before 9.6 needs and later versions do not mind).
  const size_t plan_bytes = size_t((plan.graph->workspace_bytes() + 255) / 256 * 256);
  const size_t sum_bytes = size_t((B * H * T * 4 + 255) / 256 * 256);
  const size_t acc_bytes = plan.dq_accum ? size_t(B * T * C * 4) : 0;
  char* ws = static_cast<char*>(workspace(plan_bytes + sum_bytes + acc_bytes));
  if (plan.dq_accum)
    ::tessera::cuda::check(cudaMemsetAsync(ws + plan_bytes + sum_bytes, 0, acc_bytes, stream),
                           "cuDNN SDPA backward: cudaMemsetAsync");
  float scale = 1.0f / std::sqrt(float(D)), one = 1.0f, mask_value = kMaskValueFloat;
  auto p = [](const bf16* x) { return static_cast<void*>(const_cast<bf16*>(x)); };
  std::vector<int64_t> uids = {kQ, kK, kV, kO, kDO, kStats, kScale, kOne, kDQ, kDK, kDV};
  std::vector<void*> ptrs = {
      p(qkv), p(qkv + C), p(qkv + 2 * C), p(out),      p(dout),        const_cast<float*>(lse),
      &scale, &one,       p(dqkv),        p(dqkv + C), p(dqkv + 2 * C)};
  uids.push_back(kSoftmaxSum);
  ptrs.push_back(ws + plan_bytes);
  if (plan.dq_accum) {
    uids.push_back(kDQAccum);
    ptrs.push_back(ws + plan_bytes + sum_bytes);
  }
  if (causal) {
    uids.push_back(kMaskValue);
    ptrs.push_back(&mask_value);
  }
  plan.graph->execute(handle, uids, ptrs, plan_bytes > 0 ? ws : nullptr);
}

}  // namespace tessera::ops::cuda
