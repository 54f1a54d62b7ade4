#include "models/distributed_contrastive_loss.h"

#include "models/contrastive_loss.h"
#include "ops/contrastive.h"
#include "ops/matmul.h"
#include "ops/reduce.h"

namespace tessera::models {
namespace {

using contrastive_detail::dot;
using contrastive_detail::host_scalar;

void check_local(const Tensor& img, const Tensor& txt, float dloss, const Tensor& dimg,
                 const Tensor& dtxt, const char* what) {
  TESSERA_CHECK(img.ndim() == 2 && txt.ndim() == 2 && img.shape() == txt.shape(), what,
                ": this rank's image and text embeddings must both be (B_local, E), got ",
                img.describe(), " and ", txt.describe());
  if (dloss != 0.0f) {
    TESSERA_CHECK(dimg.defined() && dtxt.defined() && dimg.shape() == img.shape() &&
                      dtxt.shape() == txt.shape(),
                  what, ": gradients must match the embeddings ", img.describe(), ", got ",
                  dimg.describe(), " and ", dtxt.describe());
  }
}

void wait(const distributed::WorkHandle& w) {
  if (w) w->wait();
}

}  // namespace

ContrastiveResult gathered_infonce_loss(distributed::Communicator& dp, const Tensor& img,
                                        const Tensor& txt, float t, float dloss, const Tensor& dimg,
                                        const Tensor& dtxt) {
  check_local(img, txt, dloss, dimg, dtxt, "gathered_infonce_loss");
  const int R = dp.size();
  if (R == 1) {
    return contrastive_loss(config::ClipConfig::INFONCE, img, txt, 0, t, 0.0f, dloss, dimg, dtxt);
  }
  const int64_t Bl = img.dim(0), E = img.dim(1), B = R * Bl, offset = dp.rank() * Bl;
  Tensor img_all = Tensor::empty({B, E}, DType::f32, img.device());  // (B_global, E)
  Tensor txt_all = Tensor::empty({B, E}, DType::f32, img.device());  // (B_global, E)
  auto gi = dp.all_gather(img.view({Bl * E}), img_all.view({B * E}));
  auto gt = dp.all_gather(txt.view({Bl * E}), txt_all.view({B * E}));
  gi->wait();
  gt->wait();
  // Own rows against every column, both directions; positives at column offset + i. Each
  // direction's mean over the local rows is R times its share of the global mean (see header).
  const float half = 0.5f * dloss;
  if (dloss == 0.0f) {
    ContrastiveResult i2t =
        infonce_direction(img, txt_all, offset, t, 0, Tensor(), Tensor(), false);
    ContrastiveResult t2i =
        infonce_direction(txt, img_all, offset, t, 0, Tensor(), Tensor(), false);
    return {0.5 * (i2t.loss + t2i.loss), 0.0, 0.0};
  }
  // Gradients w.r.t. the gathered copies, own rows included (zeros elsewhere before the two
  // directions accumulate), then summed over ranks straight into each owner's rows.
  Tensor dimg_all = Tensor::zeros({B, E}, DType::f32, img.device());  // (B_global, E)
  Tensor dtxt_all = Tensor::zeros({B, E}, DType::f32, img.device());  // (B_global, E)
  ContrastiveResult i2t = infonce_direction(img, txt_all, offset, t, half,
                                            dimg_all.slice(offset, offset + Bl), dtxt_all, true);
  ContrastiveResult t2i = infonce_direction(txt, img_all, offset, t, half,
                                            dtxt_all.slice(offset, offset + Bl), dimg_all, true);
  auto ri =
      dp.reduce_scatter(dimg_all.view({B * E}), dimg.view({Bl * E}), distributed::ReduceOp::kSum);
  auto rt =
      dp.reduce_scatter(dtxt_all.view({B * E}), dtxt.view({Bl * E}), distributed::ReduceOp::kSum);
  ri->wait();
  rt->wait();
  return {0.5 * (i2t.loss + t2i.loss), i2t.dt + t2i.dt, 0.0};
}

ContrastiveResult ring_sigmoid_loss(distributed::Communicator& dp, const Tensor& img,
                                    const Tensor& txt, float t, float bias, float dloss,
                                    const Tensor& dimg, const Tensor& dtxt) {
  check_local(img, txt, dloss, dimg, dtxt, "ring_sigmoid_loss");
  const int R = dp.size();
  if (R == 1) {
    return contrastive_loss(config::ClipConfig::SIGLIP, img, txt, 0, t, bias, dloss, dimg, dtxt);
  }
  const int right = (dp.rank() + 1) % R, left = (dp.rank() + R - 1) % R;
  const bool grads = dloss != 0.0f;
  const int64_t Bl = img.dim(0), E = img.dim(1);
  const Device dev = img.device();
  // Double buffers: step k computes on one while the next step's block arrives in the other.
  Tensor text_buf[2] = {Tensor::empty({Bl, E}, DType::f32, dev),
                        Tensor::empty({Bl, E}, DType::f32, dev)};
  Tensor grad_buf[2];
  if (grads) {
    grad_buf[0] = Tensor::empty({Bl, E}, DType::f32, dev);
    grad_buf[1] = Tensor::empty({Bl, E}, DType::f32, dev);
  }
  Tensor logits = Tensor::empty({Bl, Bl}, DType::f32, dev);   // (B_local, B_local), one block
  Tensor dlogits = Tensor::empty({Bl, Bl}, DType::f32, dev);  // (B_local, B_local)
  Tensor block_loss = Tensor::empty({1}, DType::f32, dev);

  ContrastiveResult res;
  Tensor cur = txt;  // step k: the texts of rank (rank - k) mod R
  distributed::WorkHandle text_send, text_recv, grad_send, grad_recv;
  // Per step, in this order on every rank (so that each pair's messages match in issue order):
  // send/recv of the next text block, the block's compute, send/recv of the gradient block.
  for (int k = 0; k < R; ++k) {
    const bool last = k == R - 1;
    if (!last) {
      wait(text_send);  // text_buf[(k+1)%2] was sent from at step k-1
      text_send = dp.send(cur, right);
      text_recv = dp.recv(text_buf[(k + 1) % 2], left);
    }
    // Positives only in the diagonal block, which is step 0 (the own texts).
    const int64_t offset = k == 0 ? 0 : ops::kNoPositivePairs;
    ops::matmul(img, cur, logits, false, /*trans_b=*/true, /*alpha=*/t);
    ops::sigmoid_pair_loss_forward(logits, bias, offset, block_loss);
    res.loss += host_scalar(block_loss);  // each block: (1/B_local) * its sum
    if (grads) {
      ops::sigmoid_pair_loss_backward(logits, bias, offset, dloss, dlogits);
      res.dbias += ops::sum(dlogits);
      res.dt += dot(dlogits, logits) / double(t);
      // d img += t * dlogits @ txt_block
      ops::matmul(dlogits, cur, dimg, false, false, t, k == 0 ? 0.0f : 1.0f);
      // The block's text gradient: what the ranks before this one on the ring accumulated
      // (received with the block; none at step 0) plus t * dlogits^T @ img.
      const Tensor& acc = grad_buf[k % 2];
      if (k > 0) grad_recv->wait();
      ops::matmul(dlogits, img, acc, /*trans_a=*/true, false, t, k == 0 ? 0.0f : 1.0f);
      wait(grad_send);  // grad_buf[(k+1)%2] was sent from at step k-1
      grad_send = dp.send(acc, right);
      // After the last step the block that arrives is this rank's own, with every rank's sum.
      grad_recv = dp.recv(last ? dtxt : grad_buf[(k + 1) % 2], left);
    }
    if (!last) {
      text_recv->wait();
      cur = text_buf[(k + 1) % 2];
    }
  }
  wait(text_send);
  wait(grad_send);
  wait(grad_recv);
  return res;
}

ContrastiveResult distributed_contrastive_loss(config::ClipConfig::Loss kind,
                                               distributed::Communicator& dp, const Tensor& img,
                                               const Tensor& txt, float t, float bias, float dloss,
                                               const Tensor& dimg, const Tensor& dtxt) {
  if (kind == config::ClipConfig::INFONCE) {
    return gathered_infonce_loss(dp, img, txt, t, dloss, dimg, dtxt);
  }
  return ring_sigmoid_loss(dp, img, txt, t, bias, dloss, dimg, dtxt);
}

}  // namespace tessera::models
