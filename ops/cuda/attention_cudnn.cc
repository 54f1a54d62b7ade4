// cuDNN's fused scaled-dot-product attention for ops/attention.h: plans built once per shape
// and device from the graphs of ops/cuda/attention_cudnn_graphs.h (each form tried in order until
// one finalizes into a plan; the errors of all are kept for the message), cached, and run with
// the qkv / out / dout / dqkv views bound by tensor id. The backward's composite forms keep
// softmax_sum (and the optional dQ accumulator) in the workspace after the plan's own.
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
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/cuda/runtime.h"
#include "core/error.h"
#include "ops/cuda/attention_cudnn_graphs.h"
#include "ops/cuda/cudnn_graph.h"

namespace tessera::ops::cuda {
namespace {

using cudnn::GraphBuilder;
using namespace sdpa;  // tensor ids, Key, the forms and their graphs

std::string describe(const Key& k, const char* what) {
  return absl::StrCat("SDPA ", what, " B=", k.B, " T=", k.T, " H=", k.H, " D=", k.D,
                      k.causal ? " causal" : "");
}

template <typename Form>
struct Plan {
  std::unique_ptr<GraphBuilder> graph;
  Form form{};
};

std::mutex g_mutex;
std::map<Key, Plan<ForwardForm>> g_forward;
std::map<Key, Plan<BackwardForm>> g_backward;

// The first form (and index type) whose graph finalizes into a plan; every failure is kept.
template <typename Form, size_t N>
Plan<Form> first_plan(const Key& key, const Form (&forms)[N], cudnnHandle_t handle,
                      const char* what) {
  const int64_t version = int64_t(cudnnGetVersion());
  std::string errors;
  for (cudnnDataType_t index : kIndexTypes) {
    for (Form form : forms) {
      if (!applicable(form, key, version, index)) continue;
      try {
        Plan<Form> plan{nullptr, form};
        if constexpr (std::is_same_v<Form, ForwardForm>) {
          plan.graph = forward_graph(key, form, index);
        } else {
          plan.graph = backward_graph(key, form, index);
        }
        plan.graph->build(handle, describe(key, what));
        return plan;
      } catch (const Error& e) {
        absl::StrAppend(&errors, errors.empty() ? "" : " | ", name(form),
                        key.causal ? absl::StrCat(", index type ", int(index)) : "", ": ",
                        e.what());
      }
    }
    if (!key.causal) break;  // the index type plays no part without a mask
  }
  throw_error(errors);
}

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
  const int64_t version = int64_t(cudnnGetVersion());
  for (cudnnDataType_t index : kIndexTypes) {
    const std::string idx = causal ? absl::StrCat(", index type ", int(index)) : "";
    for (ForwardForm form : sdpa::kForwardForms) {
      if (!applicable(form, key, version, index)) continue;
      attempt(absl::StrCat("forward ", name(form), idx),
              [&] { return forward_graph(key, form, index); });
    }
    for (BackwardForm form : sdpa::kBackwardForms) {
      if (!applicable(form, key, version, index)) continue;
      attempt(absl::StrCat("backward ", name(form), idx),
              [&] { return backward_graph(key, form, index); });
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
    it = g_forward.emplace(key, first_plan(key, sdpa::kForwardForms, handle, "forward")).first;
  }
  GraphBuilder& graph = *it->second.graph;
  const int64_t C = H * D;
  float scale = 1.0f / std::sqrt(float(D)), one = 1.0f, mask_value = kMaskValueFloat;
  auto p = [](const bf16* x) { return static_cast<void*>(const_cast<bf16*>(x)); };
  std::vector<int64_t> uids = {kQ, kK, kV, kO, kStats, kScale};
  std::vector<void*> ptrs = {p(qkv), p(qkv + C), p(qkv + 2 * C), out, lse, &scale};
  if (it->second.form == ForwardForm::kF32ThenBf16) {
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
    it = g_backward.emplace(key, first_plan(key, sdpa::kBackwardForms, handle, "backward")).first;
  }
  const Plan<BackwardForm>& plan = it->second;
  const int64_t C = H * D;
  const bool dq_accum = plan.form == BackwardForm::kDQAccumulator;
  // Workspace: the plan's, then softmax_sum (B*H*T f32), then the dQ accumulator (B*H*T*D f32;
  // zeroed, as cuDNN before 9.6 needs and later versions do not mind).
  const size_t plan_bytes = size_t((plan.graph->workspace_bytes() + 255) / 256 * 256);
  const size_t sum_bytes = size_t((B * H * T * 4 + 255) / 256 * 256);
  const size_t acc_bytes = dq_accum ? size_t(B * T * C * 4) : 0;
  char* ws = static_cast<char*>(workspace(plan_bytes + sum_bytes + acc_bytes));
  if (dq_accum)
    ::tessera::cuda::check(cudaMemsetAsync(ws + plan_bytes + sum_bytes, 0, acc_bytes, stream),
                           "cuDNN SDPA backward: cudaMemsetAsync");
  float scale = 1.0f / std::sqrt(float(D)), one = 1.0f, mask_value = kMaskValueFloat;
  auto p = [](const bf16* x) { return static_cast<void*>(const_cast<bf16*>(x)); };
  std::vector<int64_t> uids = {kQ, kK, kV, kO, kDO, kStats, kScale, kDQ, kDK, kDV};
  std::vector<void*> ptrs = {
      p(qkv), p(qkv + C), p(qkv + 2 * C), p(out),         p(dout), const_cast<float*>(lse),
      &scale, p(dqkv),    p(dqkv + C),    p(dqkv + 2 * C)};
  uids.push_back(kOne);
  ptrs.push_back(&one);
  uids.push_back(kSoftmaxSum);
  ptrs.push_back(ws + plan_bytes);
  if (dq_accum) {
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
