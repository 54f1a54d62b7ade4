#pragma once
// The operation graphs of cuDNN's fused scaled-dot-product attention (internal to
// ops/cuda/attention_cudnn.cc, which caches and runs them). Layouts are tessera's: Q, K, V are
// strided views of the fused qkv (B, T, 3*H*D) bf16 (no copies), O and dO (B, T, H*D) bf16, the
// softmax stats (B, H, T, 1) f32.
//
// What is built follows what cuDNN frontend 1.x emits for cuDNN 9 before 9.21
// (node/scaled_dot_product_flash_attention.h, softmax.h, diagonal_band_mask.h,
// sdpa_support_surface.h): its AUTO implementation picks the single fused SDPA forward operation
// (CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR, cuDNN >= 9.13.1) where that supports the
// features, which before 9.21 means without masks, and otherwise the composite graph of matmuls,
// pointwise ops and reductions. Older composite forms are kept as fallbacks: each form is tried
// in order until one finalizes into a plan. (The fused backward operation, SDPA_BWD, is not used:
// described as the frontend describes it, cuDNN 9.19 rejects its graph on the host,
// "outputGraph.buildDAG()"; CudnnSdpaGraphs.FinalizeOnTheHost would show a fix.)
#include <cudnn.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <tuple>

#include "ops/cuda/cudnn_graph.h"

namespace tessera::ops::cuda::sdpa {

// Tensor ids, bound to pointers at execution. kK and kV are the K and V slices of qkv, described
// as K^T / V^T (B, H, D, T) in the composite graphs (the composite forward's V as stored) and as
// stored (B, H, T, D) in the fused operation; kOne is a by-value 1.0 where the classic pattern
// has a dropout scale; kSoftmaxSum and kDQAccum live in the backward's workspace.
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

// How the forward is expressed; see forward_graph().
enum class ForwardForm {
  kUnified,        // one SDPA_FWD operation (cuDNN >= 9.13.1, no mask)
  kBf16,           // composite, P bf16 straight from the division (frontend 1.x: "bmm2 aType
                   // is the i/o type", no reordering)
  kBf16Reordered,  // composite, P bf16 with F16x16 reordering (cuDNN 8.9-era fused attention)
  kF32ThenBf16,    // composite, P f32 reordered F16x16, then a multiply by one into bf16 (where
                   // a dropout scale sits in the classic pattern)
  kF32,            // composite, P plain f32
};
inline constexpr ForwardForm kForwardForms[] = {ForwardForm::kUnified, ForwardForm::kBf16,
                                                ForwardForm::kBf16Reordered,
                                                ForwardForm::kF32ThenBf16, ForwardForm::kF32};

// How the backward is expressed; see backward_graph().
enum class BackwardForm {
  kDirectDQ,       // composite, dQ straight into dqkv (the frontend's dP-workspace form)
  kDQAccumulator,  // composite, dQ through an f32 accumulator in the workspace
};
inline constexpr BackwardForm kBackwardForms[] = {BackwardForm::kDirectDQ,
                                                  BackwardForm::kDQAccumulator};

// The causal mask's index tensors: cuDNN frontend 1.x makes them INT32 with FLOAT math; cuDNN
// 8.9's samples made them FLOAT. Tried in this order.
inline constexpr cudnnDataType_t kIndexTypes[] = {CUDNN_DATA_INT32, CUDNN_DATA_FLOAT};

const char* name(ForwardForm form);
const char* name(BackwardForm form);
// Whether the form can express this call with this cuDNN version at all, and whether it is worth
// trying with this index type (forms without a mask do not use it: only the first).
bool applicable(ForwardForm form, const Key& key, int64_t cudnn_version,
                cudnnDataType_t index_type);
bool applicable(BackwardForm form, const Key& key, int64_t cudnn_version,
                cudnnDataType_t index_type);

std::unique_ptr<cudnn::GraphBuilder> forward_graph(const Key& k, ForwardForm form,
                                                   cudnnDataType_t index_type);
std::unique_ptr<cudnn::GraphBuilder> backward_graph(const Key& k, BackwardForm form,
                                                    cudnnDataType_t index_type);

}  // namespace tessera::ops::cuda::sdpa
