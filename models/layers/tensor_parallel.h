#pragma once
// Megatron's tensor-parallel communication (Shoeybi et al. 2019, section 3), the only places TP
// ranks talk inside a model. The group is the ParamStore's TP communicator (param_store.h): no
// globals; with no TP (tp_comm() == nullptr) every call here is a no-op.
//
//   f (before a column-parallel linear, whose input is replicated):
//       forward identity, backward all-reduce(sum) of the input gradient  -> tp_f_backward
//   g (after a row-parallel linear, whose output is a partial sum):
//       forward all-reduce(sum) of the output, backward identity           -> tp_g_forward
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

// f's backward: the gradient of a replicated input of column-parallel work, summed over ranks.
inline void tp_f_backward(const ParamStore& store, const Tensor& dx) {
  tp_all_reduce(store, dx);
}
// g's forward: the partial outputs of row-parallel work, summed over ranks.
inline void tp_g_forward(const ParamStore& store, const Tensor& y) {
  tp_all_reduce(store, y);
}

// L2 norm of the whole model's gradient, as one unsplit process would compute it: the squares of
// split parameters' gradients are summed over the TP group, replicated ones counted once (they
// are identical on every rank). The same value on every TP rank. Without TP: l2_norm(grads()).
double tp_grad_l2_norm(const ParamStore& store);

}  // namespace tessera::models
