#pragma once
// Megatron's tensor-parallel communication (Shoeybi et al. 2019, section 3), the only places TP
// ranks talk inside a model. The group is the ParamStore's TP communicator (param_store.h): no
// globals; with no TP (tp_comm() == nullptr) every call here is a no-op.
//
// Two conjugate pairs, each a forward and a backward half (Megatron core's
// copy_to_tensor_model_parallel_region and reduce_from_tensor_model_parallel_region):
//
//   f, copy to the parallel region (before column-parallel work, whose input is replicated):
//       tp_copy_to_region_forward    identity
//       tp_copy_to_region_backward   all-reduce(sum) of the input gradient
//   g, reduce from the parallel region (after row-parallel work, whose output is a partial sum):
//       tp_reduce_from_region_forward    all-reduce(sum) of the output
//       tp_reduce_from_region_backward   identity
//
// Every call site names both halves, so each forward call has its visible backward partner. The
// identity halves are inline and return their argument itself: no copy, no communication.
//
// Linear (linear.h) makes these calls itself for Parallel::kColumn / kRow, so Attention (heads
// split) and Mlp (hidden split) -- and through them TransformerBlock, the ViT/CLIP towers and
// DiT's AdaLnBlock -- are tensor parallel without further code. A vocab-parallel embedding and
// GPT's vocab-parallel head call them directly.
//
// Replicated state stays replicated: between the g of one layer and the f of the next, every TP
// rank holds the same activations and receives the same gradients, so replicated parameters
// (LayerNorms, row-parallel biases, position/class embeddings, DiT's adaLN modulation and
// timestep/label embedders) get bitwise identical gradients on every TP rank without any sync.
// This relies on all_reduce returning the same bits on every rank (MPI_Allreduce on one
// communicator does; the tests check the replicated gradients bitwise).
//
// The calls block until the all-reduce completed (they sit on the critical path by nature).

#include "distributed/communicator.h"
#include "models/param_store.h"

namespace tessera::models {

// In-place all-reduce of t over the store's TP group, waiting for it; no-op without TP.
void tp_all_reduce(const ParamStore& store, const Tensor& t,
                   distributed::ReduceOp op = distributed::ReduceOp::kSum);

// f forward: the replicated input enters the column-parallel region as it is. Returns x itself
// (bind the result to a reference only when x outlives it).
inline const Tensor& tp_copy_to_region_forward(const ParamStore&, const Tensor& x) {
  return x;
}
// f backward: the replicated input's gradient is the sum of every rank's part; in place.
inline void tp_copy_to_region_backward(const ParamStore& store, const Tensor& dx) {
  tp_all_reduce(store, dx);
}

// g forward: the partial outputs of row-parallel work, summed over ranks; in place.
inline void tp_reduce_from_region_forward(const ParamStore& store, const Tensor& y) {
  tp_all_reduce(store, y);
}
// g backward: the output's gradient is replicated already and passes through. Returns dy itself.
inline const Tensor& tp_reduce_from_region_backward(const ParamStore&, const Tensor& dy) {
  return dy;
}

// L2 norm of the whole model's gradient, as one unsplit process would compute it: the squares of
// split parameters' gradients are summed over the TP group, replicated ones counted once (they
// are identical on every rank). The same value on every TP rank. Without TP: l2_norm(grads()).
double tp_grad_l2_norm(const ParamStore& store);

}  // namespace tessera::models
