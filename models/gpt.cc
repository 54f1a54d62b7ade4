#include "models/gpt.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "distributed/communicator.h"
#include "models/device_batch.h"
#include "models/distillation.h"
#include "models/layers/tensor_parallel.h"
#include "models/transformer_options.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/tokens.h"
#include "ops/vocab_parallel.h"

namespace tessera::models {
namespace {

// t in `dtype`: a converted copy, or t itself when it already is.
Tensor in_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = Tensor::empty(t.shape(), dtype, t.device());
  ops::convert(t, out);
  return out;
}

constexpr int kIgnoreIndex = -100;

// Column blocks of row-major matrices (the vocabulary slices of the logits): dst's columns
// [dst_col, dst_col + cols) = src's [src_col, src_col + cols), for each of the N rows: a token-row
// copy with one-element tokens (ops::copy_tokens, one strided 2-D copy on either device).
void copy_column_block(const Tensor& src,  // (N, Vs)
                       int64_t src_col,
                       const Tensor& dst,  // (N, Vd), src's dtype
                       int64_t dst_col, int64_t cols) {
  TESSERA_CHECK(src.ndim() == 2 && dst.ndim() == 2, "Gpt: column block of ", cols, " from ",
                src.describe(), " to ", dst.describe());
  ops::copy_tokens(src.view({src.dim(0), src.dim(1), 1}), src_col,
                   dst.view({dst.dim(0), dst.dim(1), 1}), dst_col, cols);
}

BlockOptions block_options(const config::GptConfig& c, bool recompute) {
  const auto& t = c.transformer();
  BlockOptions o;
  o.dim = t.d_model();
  o.n_heads = t.n_heads();
  o.mlp_ratio = t.mlp_ratio();
  o.causal = true;
  o.recompute = recompute;
  o.init = Init::normal(0.02f);
  // GPT-2: residual projections scaled by 1/sqrt(2 * n_layers) (two residual adds per block).
  o.proj_init = Init::normal(0.02f / std::sqrt(2.0f * float(t.n_layers())));
  o.activation = block_activation(t);
  o.ln_eps = block_layer_norm_eps(t);
  return o;
}

// Vp checked against the TP size (the ParamStore would only name the tensor): the error names the
// fields to change.
int64_t checked_padded_vocab(const config::GptConfig& c, distributed::Communicator* tp) {
  const int64_t vp = Gpt::padded_vocab(c);
  const int t = tp ? tp->size() : 1;
  if (t > 1 && c.vocab_pad_multiple() > 1 && vp % t != 0) {
    throw_error(absl::StrCat("model.gpt.vocab_size = ", c.vocab_size(),
                             " padded to model.gpt.vocab_pad_multiple = ", c.vocab_pad_multiple(),
                             " is ", vp, ", not divisible by tensor_parallel = ", t,
                             " (tok_emb.weight): make vocab_pad_multiple a multiple of ", t));
  }
  return vp;
}

}  // namespace

int64_t Gpt::padded_vocab(const config::GptConfig& c) {
  TESSERA_CHECK(c.vocab_pad_multiple() >= 0, "model.gpt.vocab_pad_multiple must be >= 0, got ",
                c.vocab_pad_multiple());
  const int64_t v = c.vocab_size(), m = std::max(1, c.vocab_pad_multiple());
  return (v + m - 1) / m * m;
}

Gpt::Gpt(const config::GptConfig& c, bool recompute, distributed::Communicator* tp, Device device)
    : config_(c),
      store_(tp),
      tok_(store_, "tok_emb", checked_padded_vocab(c, tp), c.transformer().d_model(),
           Init::normal(0.02f), /*vocab_parallel=*/true, /*padding_from=*/c.vocab_size()),
      pos_(store_, "pos_emb", c.context(), c.transformer().d_model(), Init::normal(0.01f)),
      embed_drop_("embed.drop") {
  // The vocabulary tables' readers (the lookup, the head's logits and dh) work slice by slice
  // when the trainer asks for row slices (ParamStore::set_slice_bytes: ZeRO-3 then gathers them
  // one slice at a time).
  store_.allow_row_slices(tok_.table_id());
  // Registered in forward order, so the gradient buffer starts with the head and ln_f: the first
  // gradients backward produces.
  BlockOptions o = block_options(c, recompute);
  for (int i = 0; i < c.transformer().n_layers(); ++i) {
    blocks_.push_back(std::make_unique<TransformerBlock>(store_, absl::StrCat("blocks.", i), o));
  }
  ln_f_ = std::make_unique<LayerNorm>(store_, "ln_f", c.transformer().d_model(), o.ln_eps);
  if (!c.tie_embedding()) {
    // Split along the vocabulary like tok_emb: this rank's logits are its vocabulary slice.
    head_ = store_.add({"head.weight",
                        {tok_.num(), c.transformer().d_model()},
                        0,
                        Init::normal(0.02f),
                        ParamGroup::kWeight,
                        /*zero_rows_from=*/c.vocab_size()});
    store_.allow_row_slices(head_);
  }
  store_.finalize(device);
}

Tensor Gpt::head_weight() const {
  return head_ >= 0 ? store_.compute_param(head_) : tok_.table_compute();
}
Tensor Gpt::head_grad() const {
  return head_ >= 0 ? store_.grad(head_) : tok_.table_grad();
}

Tensor Gpt::forward_logits(const Tensor& tokens_in) {
  TESSERA_CHECK(tokens_in.ndim() == 2 && tokens_in.dtype() == DType::i32,
                "Gpt: tokens must be (B, T) i32, got ", tokens_in.describe());
  const Tensor tokens = on_device(tokens_in, store_.device());
  const int64_t B = tokens.dim(0), T = tokens.dim(1), C = config_.transformer().d_model(),
                V = tok_.local_num();  // this rank's vocabulary slice
  TESSERA_CHECK(T <= config_.context(), "Gpt: sequence length ", T, " exceeds the context ",
                config_.context());
  if (positions_.numel() != B * T || !(positions_.device() == tokens.device())) {
    Tensor host = Tensor::empty({B * T}, DType::i32);
    for (int64_t i = 0; i < B * T; ++i) host.data<int32_t>()[i] = static_cast<int32_t>(i % T);
    positions_ = tokens.device().is_cpu() ? host : to_device(host, tokens.device());
  }
  Tensor x = tok_.forward(tokens);                   // (B, T, C)
  Tensor p = pos_.forward(positions_.view({B, T}));  // (B, T, C)
  ops::add(x, p, x);
  embed_drop_.apply(x);  // model.embedding_dropout (GPT-2's embd_pdrop); training only
  for (auto& block : blocks_) x = block->forward(x);
  hidden_ = in_dtype(ln_f_->forward(x), store_.compute_dtype());  // (B, T, C)
  // The head is column parallel over the vocabulary with a replicated input: f's forward half,
  // the identity (its backward half follows the head's backward in forward_backward).
  const Tensor& h = tp_copy_to_region_forward(store_, hidden_);
  logits_ = Tensor::empty({B, T, V}, DType::f32, tokens.device());
  const ParamId w = head_ >= 0 ? head_ : tok_.table_id();
  const int slices = store_.num_slices(w);
  if (slices == 1) {
    ops::matmul(h.view({B * T, C}), head_weight(), logits_.view({B * T, V}), false, true);
    return logits_;
  }
  // The head's weight in vocabulary slices (ZeRO-3 gathers one at a time, the next prefetched):
  // each slice's logits are a column block, a (B*T, rows) product copied into place. Each
  // logit is the same dot product over C as in one (B*T, V) product.
  const int64_t per = store_.slice_rows(w);
  Tensor part;
  for (int k = 0; k < slices; ++k) {
    const Tensor wk = store_.compute_param_slice(w, k);  // (rows, C)
    const int64_t rows = wk.dim(0);
    if (!part.defined() || part.dim(1) != rows) {
      part = Tensor::empty({B * T, rows}, DType::f32, tokens.device());
    }
    ops::matmul(h.view({B * T, C}), wk, part, false, true);
    copy_column_block(part, 0, logits_.view({B * T, V}), k * per, rows);
  }
  return logits_;
}

void Gpt::loss_forward(const Tensor& logits, const Tensor& targets, const Tensor& loss,
                       const Tensor& lse, float smoothing) {
  // Only the first V (global) columns take part: the padding's logits are skipped by the ops.
  const int64_t V = config_.vocab_size();
  if (store_.tp_size() == 1) {
    ops::SoftTargets soft;
    soft.smoothing = smoothing;
    ops::cross_entropy_forward(logits, targets, loss, lse, kIgnoreIndex, V, soft);
    return;
  }
  // Vocab parallel: the global row max (all-reduce max), then the sum of exp and the target's
  // logit (all-reduce sum, one message for both), then the loss from those on every rank.
  const int64_t N = logits.dim(0);
  Tensor row_max = Tensor::empty({N}, DType::f32, logits.device());
  ops::vocab_ce_row_max(logits, vocab_begin(), V, row_max);
  tp_all_reduce(store_, row_max, distributed::ReduceOp::kMax);
  // sum_exp, target_logit (and with label smoothing each row's sum of logits)
  const int64_t parts = smoothing != 0 ? 3 : 2;
  Tensor sums = Tensor::empty({parts, N}, DType::f32, logits.device());
  Tensor sum_exp = sums.slice(0, 1).view({N}), target_logit = sums.slice(1, 2).view({N});
  Tensor row_sum = smoothing != 0 ? sums.slice(2, 3).view({N}) : Tensor();
  ops::vocab_ce_sum_exp_target(logits, targets, row_max, vocab_begin(), V, sum_exp, target_logit,
                               row_sum);
  tp_all_reduce(store_, sums);
  ops::vocab_ce_loss(row_max, sum_exp, target_logit, targets, V, kIgnoreIndex, lse, loss, smoothing,
                     row_sum);
}

LossResult Gpt::forward_loss(const Batch& batch) {
  const Tensor targets = on_device(batch.at("targets"), store_.device());
  forward_logits(batch.at("tokens"));
  const int64_t N = targets.numel(), V = tok_.local_num();
  Tensor loss = Tensor::empty({1}, DType::f32, targets.device());
  Tensor lse = Tensor::empty({N}, DType::f32, targets.device());
  loss_forward(logits_.view({N, V}), targets.view({N}), loss, lse);
  return {host_scalar(loss), N};
}

void Gpt::set_teacher(std::unique_ptr<Gpt> teacher, float alpha, float temperature) {
  TESSERA_CHECK(teacher && teacher->vocab_size() == vocab_size(),
                "Gpt: a distillation teacher must have the student's vocabulary of ", vocab_size(),
                " tokens, got ", teacher ? teacher->vocab_size() : 0);
  TESSERA_CHECK(store_.tp_size() == 1 || (teacher->params().tp_size() == store_.tp_size() &&
                                          teacher->padded_vocab_size() == padded_vocab_size()),
                "Gpt: under tensor parallelism a distillation teacher must be split over the same ",
                store_.tp_size(), " ranks with the student's padded vocabulary of ",
                padded_vocab_size(), " (model.gpt.vocab_pad_multiple), got ",
                teacher->params().tp_size(), " ranks and ", teacher->padded_vocab_size());
  teacher_.set(std::move(teacher), alpha, temperature, "Gpt");
}

void Gpt::set_dropout(const DropoutRates& rates) {
  const int n = int(blocks_.size());
  for (int i = 0; i < n; ++i) {
    blocks_[i]->configure_dropout(rates.p, drop_path_rate(rates.drop_path, i, n), &dropout_,
                                  rates.attention);
  }
  embed_drop_.configure(rates.embedding, 0.0f, &dropout_);
}

LossResult Gpt::forward_backward(const Batch& batch, float loss_scale) {
  const TrainingScope training(dropout_, batch);
  const Tensor targets = on_device(batch.at("targets"), store_.device());
  forward_logits(batch.at("tokens"));
  const int64_t B = targets.dim(0), T = targets.dim(1), N = B * T,
                C = config_.transformer().d_model(), V = tok_.local_num();
  Tensor loss = Tensor::empty({1}, DType::f32, targets.device());
  Tensor lse = Tensor::empty({N}, DType::f32, targets.device());
  Tensor logits = logits_.view({N, V});  // (N, V_local)
  loss_forward(logits, targets.view({N}), loss, lse, smoothing_);
  double total = host_scalar(loss);
  // Distillation's soft term needs the student's logits, which the CE backward overwrites: its
  // gradient goes to a buffer first and is added after.
  Tensor kd_grad;
  if (teacher_) {
    const Tensor teacher = teacher_->forward_logits(batch.at("tokens"));
    const int64_t Vt = teacher.dim(2);
    kd_grad = Tensor::zeros({N, V}, DType::f32, targets.device());
    const Device device = targets.device();
    const HostAllReduce reduce = [&](const Tensor& t, bool max) {
      const distributed::ReduceOp op =
          max ? distributed::ReduceOp::kMax : distributed::ReduceOp::kSum;
      if (store_.tp_size() == 1) return;
      if (device.is_cpu()) {
        tp_all_reduce(store_, t, op);
        return;
      }
      Tensor d = to_device(t, device);
      tp_all_reduce(store_, d, op);
      copy(d, t);
    };
    const double kd = vocab_distillation_term(
        logits, teacher.view({N, Vt}), targets.view({N}), vocab_begin(), config_.vocab_size(),
        kIgnoreIndex, teacher_.temperature, teacher_.soft_scale(loss_scale), kd_grad, reduce);
    teacher_->logits_ = teacher_->hidden_ = Tensor();  // forward only: nothing to keep
    total = teacher_.combine(total, kd);
  }
  const float hard_scale = teacher_.hard_scale(loss_scale);
  // dlogits overwrites the logits in place: they are not needed after the loss. Under TP each
  // rank's slice is softmax minus its part of the one-hot (lse is global). Padded columns get
  // exactly 0, so the padded head/embedding rows get exactly zero gradient.
  if (store_.tp_size() == 1) {
    ops::SoftTargets soft;
    soft.smoothing = smoothing_;
    ops::cross_entropy_backward(logits, targets.view({N}), lse, hard_scale, logits, kIgnoreIndex,
                                config_.vocab_size(), soft);
  } else {
    ops::vocab_ce_backward(logits, targets.view({N}), lse, vocab_begin(), config_.vocab_size(),
                           hard_scale, kIgnoreIndex, logits, smoothing_);
  }
  if (kd_grad.defined()) ops::add_inplace(logits, kd_grad);
  // Head: logits = hidden @ W^T  =>  dW += dlogits^T @ hidden, dhidden = dlogits @ W (in bf16
  // mode dlogits are rounded once for both products; the sums stay f32).
  Tensor h = hidden_.view({N, C});
  Tensor dlogits = in_dtype(logits, store_.compute_dtype());
  const int64_t Vl = dlogits.dim(1);
  const int64_t keep_bytes = int64_t(dlogits.nbytes() + h.nbytes());
  if (head_ < 0 && store_.grads_staged() && dlogits.device().is_cpu() &&
      keep_bytes < Vl * C * int64_t(sizeof(float))) {
    // Gradient staging (ZeRO-2/3) with a tied head, when dlogits and the hidden state are
    // smaller than the table's gradient: keep them instead of a dense (V, C) gradient, and let
    // the reduction compute dW's rows bucket by bucket (ParamStore::add_grad_source; the token
    // embedding adds its part after, as in the dense order). dW[r0:r1] = dlogits[:, r0:r1]^T @ h
    // from a contiguous copy of those columns. CPU only until ZeRO-3 has run on a GPU (the copy
    // itself works on either device); CUDA keeps the dense gradient.
    store_.add_grad_source(
        tok_.table_id(),
        [dlogits, h, N, C](int64_t begin, const Tensor& out) {
          add_to_row_range(begin, out, C, [&](int64_t row, const Tensor& dst) {
            const int64_t rows = dst.dim(0);
            Tensor cols = Tensor::empty({N, rows}, dlogits.dtype(), dlogits.device());
            copy_column_block(dlogits, row, cols, 0, rows);
            ops::matmul(cols, h, dst, /*trans_a=*/true, false, 1.0f, /*beta=*/1.0f);
          });
        },
        keep_bytes);
  } else {
    ops::matmul(dlogits, h, head_grad(), /*trans_a=*/true, false, 1.0f, /*beta=*/1.0f);
  }
  if (head_ >= 0) {
    store_.grad_done(head_);
  } else {
    // A tied head's part of the embedding's gradient is complete here; the token embedding adds
    // its part at the very end of backward. ParamStore::grad_partial_done explains the option
    // of reducing this part at once.
    store_.grad_partial_done(tok_.table_id());
  }
  Tensor dh = Tensor::empty({B, T, C}, DType::f32, targets.device());
  const ParamId w = head_ >= 0 ? head_ : tok_.table_id();
  const int slices = store_.num_slices(w);
  if (slices == 1) {
    ops::matmul(dlogits, head_weight(), dh.view({N, C}));
  } else {
    // Vocabulary slices (see forward_logits): dh = sum over slices of dlogits[:, slice] @
    // W[slice], added from the last slice to the first (the last is still gathered from the
    // forward). Every stage sums in this order (the slicing depends on the config, not on the
    // stage or the ranks), so stages agree bitwise; one (N, V) @ (V, C) product would sum over
    // the vocabulary in another order (last-bit differences).
    const int64_t per = store_.slice_rows(w);
    Tensor cols;
    for (int k = slices - 1; k >= 0; --k) {
      const Tensor wk = store_.compute_param_slice(w, k);  // (rows, C)
      const int64_t rows = wk.dim(0);
      if (!cols.defined() || cols.dim(1) != rows) {
        cols = Tensor::empty({N, rows}, dlogits.dtype(), dlogits.device());
      }
      copy_column_block(dlogits, k * per, cols, 0, rows);
      ops::matmul(cols, wk, dh.view({N, C}), false, false, 1.0f, k == slices - 1 ? 0.0f : 1.0f);
    }
  }
  // The head is column parallel over the vocabulary with a replicated input: f's backward half.
  tp_copy_to_region_backward(store_, dh);
  logits_ = hidden_ = Tensor();
  Tensor dx = ln_f_->backward(dh);
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) dx = (*it)->backward(dx);
  dx = embed_drop_.backward(dx);
  pos_.backward(dx);
  tok_.backward(dx);
  return {total, N};
}

double Gpt::train_flops(int64_t batch_size) const {
  // 6 N per token for the matmuls (forward 2N, backward 4N; N counts the non-embedding weights
  // plus the head) and 12·L·T·C per token for attention scores and values (PaLM's appendix B).
  // The head counts the real V: the padded columns are work, but not the model's (MFU).
  const auto& t = config_.transformer();
  const double C = t.d_model(), L = t.n_layers(), T = config_.context(), V = config_.vocab_size();
  const double per_block = 4 * C * C + 2 * t.mlp_ratio() * C * C;
  const double n = L * per_block + V * C;
  return batch_size * T * (6 * n + 12 * L * T * C);
}

}  // namespace tessera::models

namespace tessera::models {

int64_t Gpt::activation_bytes(int64_t batch_size) const {
  // The blocks (see block_stack_saved_floats), then embeddings, ln_f and the hidden state (4 of
  // (B, T, C)) and the (B, T, V) logits, which are reused in place for their own gradient.
  const auto& t = config_.transformer();
  const int64_t B = batch_size, T = config_.context(), C = t.d_model();
  const bool recompute = !blocks_.empty() && blocks_[0]->recomputes();
  const int64_t blocks =
      block_stack_saved_floats(t.n_layers(), B, T, C, t.n_heads(), t.mlp_ratio(), recompute);
  return 4 * (blocks + 4 * B * T * C + B * T * tok_.local_num());
}

}  // namespace tessera::models
