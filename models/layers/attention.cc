#include "models/layers/attention.h"

#include "ops/attention.h"

namespace tessera::models {

Attention::Attention(ParamStore& store, const std::string& name, int64_t dim, int n_heads,
                     bool causal, Init init, Init proj_init)
    : n_heads_(n_heads),
      causal_(causal),
      qkv_(store, name + ".qkv", dim, 3 * dim, true, init, Parallel::kColumn, /*groups=*/3),
      proj_(store, name + ".proj", dim, dim, true, proj_init, Parallel::kRow),
      probs_drop_(name + ".probs.drop") {
  TESSERA_CHECK(n_heads % store.tp_size() == 0, "Attention ", name, ": ", n_heads,
                " heads are not divisible by tensor_parallel = ", store.tp_size());
  local_heads_ = n_heads / store.tp_size();
  head_offset_ = store.tp_rank() * local_heads_;  // the column-parallel qkv holds whole heads
}

void Attention::configure_dropout(float p, const DropoutState* state) {
  probs_drop_.configure(p, 0.0f, state);
}

Tensor Attention::forward(const Tensor& x) {
  qkv_out_ = qkv_.forward(x);
  const int64_t B = x.dim(0), T = x.dim(1), C = qkv_.out_features() / 3;
  attn_out_ = Tensor::empty({B, T, C}, DType::f32, x.device());
  lse_ = Tensor::empty({B, local_heads_, T}, DType::f32, x.device());
  drop_ = {};
  if (probs_drop_.active()) {
    const ops::DropoutKey key = probs_drop_.key();
    drop_.p = probs_drop_.p();
    drop_.seed = key.seed;
    drop_.stream = key.stream;
    drop_.first = key.first;
    drop_.head_offset = head_offset_;
    drop_.heads = n_heads_;
  }
  ops::attention_forward(qkv_out_, attn_out_, lse_, local_heads_, causal_, drop_);
  return proj_.forward(attn_out_);
}

Tensor Attention::backward(const Tensor& dy) {
  Tensor dattn = proj_.backward(dy);
  Tensor dqkv = Tensor::empty(qkv_out_.shape(), DType::f32, dy.device());
  ops::attention_backward(dattn, qkv_out_, attn_out_, lse_, dqkv, local_heads_, causal_, drop_);
  qkv_out_ = attn_out_ = lse_ = Tensor();
  return qkv_.backward(dqkv);
}

void Attention::drop_saved() {
  qkv_out_ = attn_out_ = lse_ = Tensor();
  qkv_.drop_saved();
  proj_.drop_saved();
}

}  // namespace tessera::models
