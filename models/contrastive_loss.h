#pragma once
// Image-text contrastive losses on L2-normalised embeddings, as their own unit so that the
// distributed versions (gathered or ring-passed rows) can call the same pieces.
//
// Shapes: `img` (Bi, E) are this process's images, `txt` (Bt, E) the texts they are scored
// against (all of them once gathered); image i's positive text is txt row `offset + i`. On one
// process Bi = Bt and offset = 0.
//
//   INFONCE (CLIP): logits = t * img @ txt^T; loss = (CE(rows) + CE(columns)) / 2. The column
//     (text->image) term needs each text against every image: with gathered rows that is
//     infonce_direction(txt_local, img_all, offset), which is why the direction is public.
//   SIGLIP: loss = -1/Bi * sum_ij log sigmoid(z_ij * (t * <img_i, txt_j> + bias)), z_ij = +1 for
//     j == offset + i, else -1.
//
// t = exp(logit_scale) (clamped by the caller) and the bias arrive as host floats: the caller
// owns the scalar parameters and turns dt into d(logit_scale) = dt * t (or 0 when clamped).

#include "core/tensor.h"
#include "proto/config.pb.h"

namespace tessera::models {

struct ContrastiveResult {
  double loss = 0;
  double dt = 0;     // d(dloss * loss) / dt
  double dbias = 0;  // d(dloss * loss) / dbias (SIGLIP)
};

// One direction of the softmax loss: mean over rows of a of CE(t * a @ b^T, offset + i).
// With dloss != 0 also writes (accumulate = false) or adds to (accumulate = true) da (Ba, E)
// and db (Bb, E). Returns the loss and dt.
ContrastiveResult infonce_direction(const Tensor& a, const Tensor& b, int64_t offset, float t,
                                    float dloss, const Tensor& da, const Tensor& db,
                                    bool accumulate);

// The configured loss. With dloss == 0 (evaluation) only the loss is computed and dimg/dtxt may
// be undefined. Contract: dimg (Bi, E) and dtxt (Bt, E) are WRITTEN.
ContrastiveResult contrastive_loss(config::ClipConfig::Loss kind, const Tensor& img,
                                   const Tensor& txt, int64_t offset, float t, float bias,
                                   float dloss, const Tensor& dimg, const Tensor& dtxt);

// Helpers shared with models/distributed_contrastive_loss.cc.
namespace contrastive_detail {
float host_scalar(const Tensor& t);            // element 0 of a (1)-element tensor, on the host
double dot(const Tensor& a, const Tensor& b);  // <a, b> over all elements (device-neutral)
}  // namespace contrastive_detail

}  // namespace tessera::models
