#pragma once
// adaLN modulation projection (DiT): the SiLU'd conditioning vector c (B, d) -> Linear(d -> n*d),
// cut into n (B, d) chunks (shift, scale, gate, ...), in the order of torch's .chunk(n, dim=1).
//
// The weight is one (n*d, d) parameter as in DiT, but each chunk k is computed by its own linear
// with the contiguous row block k of the weight into a contiguous (B, d) slab of a (n, B, d)
// output: the ops take contiguous (B, d) tensors, and a (B, n*d) output would interleave the
// chunks. Zero-initialised (adaLN-Zero): at init every shift, scale and gate is 0. Replicated
// under tensor parallelism (the residual stream it modulates is replicated).

#include <string>

#include "models/param_store.h"

namespace tessera::models {

class Modulation {
 public:
  Modulation(ParamStore& store, const std::string& name, int64_t dim, int chunks);

  Tensor forward(const Tensor& c);  // c (B, d), already SiLU'd -> (n, B, d)
  // Chunk k of a forward's output or of its gradient, as a (B, d) view.
  static Tensor chunk(const Tensor& out, int k) {
    return out.slice(k, k + 1).view(chunk_shape(out));
  }
  // Contract: dweight, dbias ACCUMULATE; the returned dc (B, d) is written.
  Tensor backward(const Tensor& dout);  // dout (n, B, d)
  void drop_saved() { c_ = Tensor(); }

 private:
  static Shape chunk_shape(const Tensor& out) { return {out.dim(1), out.dim(2)}; }

  ParamStore& store_;
  int64_t dim_;
  int chunks_;
  ParamId weight_, bias_;
  Tensor c_;  // saved input (B, d)
};

}  // namespace tessera::models
