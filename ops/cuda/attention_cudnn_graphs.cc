// The SDPA operation graphs (ops/cuda/attention_cudnn_graphs.h).
#include "ops/cuda/attention_cudnn_graphs.h"

namespace tessera::ops::cuda::sdpa {
namespace {

using cudnn::Desc;
using cudnn::Dims;
using cudnn::GraphBuilder;

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

std::unique_ptr<GraphBuilder> composite_forward(const Key& k, ForwardForm form,
                                                cudnnDataType_t index_type) {
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
  const bool p_bf16 = form == ForwardForm::kBf16 || form == ForwardForm::kBf16Reordered;
  const bool p_reordered = form == ForwardForm::kBf16Reordered || form == ForwardForm::kF32ThenBf16;
  const Desc& p = g->virt(p_bf16 ? bf : f32, sd, p_reordered);
  g->reduction(CUDNN_REDUCE_TENSOR_MAX, *cur, m);
  g->pointwise(CUDNN_POINTWISE_SUB, *cur, &m, centered);
  g->pointwise(CUDNN_POINTWISE_EXP, centered, nullptr, e);
  g->reduction(CUDNN_REDUCE_TENSOR_ADD, e, l);
  g->pointwise(CUDNN_POINTWISE_LOG, l, nullptr, log_l);
  g->pointwise(CUDNN_POINTWISE_ADD, m, &log_l, stats);
  g->pointwise(CUDNN_POINTWISE_DIV, e, &l, p);
  if (form == ForwardForm::kF32ThenBf16) {
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
std::unique_ptr<GraphBuilder> composite_backward(const Key& k, bool dq_accum,
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

// The single fused forward operation. K and V are given as stored, (B, H, T, D) (the frontend's
// unified node passes them untransposed), the scale by value, the stats as in the composite form.
std::unique_ptr<GraphBuilder> unified_forward(const Key& k) {
  auto g = std::make_unique<GraphBuilder>();
  const int64_t B = k.B, T = k.T, H = k.H, D = k.D, C = H * D;
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const Dims bhtd = {B, H, T, D}, qkv_strides = {T * 3 * C, D, 3 * C, 1};
  const Desc& q = g->tensor(kQ, bf, bhtd, qkv_strides, false);
  const Desc& kk = g->tensor(kK, bf, bhtd, qkv_strides, false);
  const Desc& v = g->tensor(kV, bf, bhtd, qkv_strides, false);
  const Desc& o = g->tensor(kO, bf, bhtd, {T * C, D, C, 1}, false);
  const Desc& stats = g->tensor(kStats, f32, {B, H, T, 1}, {H * T, T, 1, 1}, false);
  const Desc& scale = g->tensor(kScale, f32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  g->operation(CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR,
               {{CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, &q},
                {CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, &kk},
                {CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, &v},
                {CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, &o},
                {CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC, &stats},
                {CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, &scale}},
               "SDPA_FWD operation");
  return g;
}

}  // namespace

const char* name(ForwardForm form) {
  switch (form) {
    case ForwardForm::kUnified:
      return "unified SDPA_FWD op";
    case ForwardForm::kBf16:
      return "composite, P bf16";
    case ForwardForm::kBf16Reordered:
      return "composite, P bf16 reordered";
    case ForwardForm::kF32ThenBf16:
      return "composite, P f32 then bf16";
    case ForwardForm::kF32:
      return "composite, P f32";
  }
  return "?";
}

const char* name(BackwardForm form) {
  switch (form) {
    case BackwardForm::kDirectDQ:
      return "composite, direct dQ";
    case BackwardForm::kDQAccumulator:
      return "composite, dQ accumulator";
  }
  return "?";
}

bool applicable(ForwardForm form, const Key& key, int64_t cudnn_version,
                cudnnDataType_t index_type) {
  if (form != ForwardForm::kUnified) return true;
  return !key.causal && cudnn_version >= 91301 && index_type == kIndexTypes[0];
}

bool applicable(BackwardForm, const Key&, int64_t, cudnnDataType_t) {
  return true;
}

std::unique_ptr<GraphBuilder> forward_graph(const Key& k, ForwardForm form,
                                            cudnnDataType_t index_type) {
  return form == ForwardForm::kUnified ? unified_forward(k)
                                       : composite_forward(k, form, index_type);
}

std::unique_ptr<GraphBuilder> backward_graph(const Key& k, BackwardForm form,
                                             cudnnDataType_t index_type) {
  return composite_backward(k, form == BackwardForm::kDQAccumulator, index_type);
}

}  // namespace tessera::ops::cuda::sdpa
