#pragma once
// The contrastive losses of models/contrastive_loss.h over the GLOBAL batch of a data-parallel
// group: every image is scored against every text of every rank, as one process would score the
// concatenated batch. Each rank holds B_local rows (the same B_local on every rank: the trainer
// cuts equal slices); rank r's rows are global rows [r*B_local, (r+1)*B_local).
//
//   INFONCE, OpenCLIP's local loss (gather_features with local_loss=True): all-gather the
//     normalised image and text embeddings (B_global, E); this rank's B_local rows against all
//     B_global columns, in both directions (image->text rows, text->image rows). The gradients
//     w.r.t. the gathered copies are reduce-scattered (summed) back to their owners. Memory:
//     two (B_local, B_global) matrices plus the gathered (B_global, E) embeddings and grads.
//   SIGLIP, the chunked ring (big_vision's chunked sigmoid loss, OpenCLIP PR#1145 without the
//     bidirectional split): text blocks travel around the ring (send to rank+1, receive from
//     rank-1); at step k this rank scores its images against the texts of rank (r-k) mod R, one
//     (B_local, B_local) block, positives only on the diagonal of step 0. The gradient w.r.t. a
//     text block travels with it: each rank adds its contribution and passes the accumulated
//     block on, and after R steps the block is back at its owner holding every rank's sum (one
//     extra hop of B_local x E per step, no (B_global, E) buffer). Memory O(B_local^2 +
//     B_local E), independent of the number of ranks.
//
// GRADIENT SCALING (open_clip#616). GradSync AVERAGES parameter gradients over the R ranks, but
// the global loss L depends on each rank's parameters only through that rank's own samples, so
// dL/dtheta = SUM over ranks of the gradient that flows through each rank's samples. Every output
// here is therefore the gradient of R * L (times dloss), so that the average GradSync takes is
// the gradient of L. Concretely, with L = sum_r l_r split by rows (l_r: the loss terms of rank
// r's rows, over the global batch's normalisation), rank r computes R * l_r = the MEAN of its own
// rows' terms, i.e. exactly the local-rows loss with the local normaliser 1/B_local:
//   - loss   : R * l_r, this rank's rows' mean. Its average over the group is L (the trainer's
//              dp_average (train/dp_average.h) gives the global-batch loss).
//   - dimg, dtxt (B_local, E), WRITTEN: sum over ranks q of d(R * l_q)/d(own rows) * dloss
//              = R * dloss * dL/d(own rows). Backpropagated through the towers and averaged by
//              GradSync this is dloss * dL/dtheta.
//   - dt, dbias: d(R * l_r)/dt * dloss (this rank's blocks only); the average over ranks (the
//              logit_scale / logit_bias gradients are averaged by GradSync with the rest) is
//              dloss * dL/dt.
// (The bug of open_clip#616 was the opposite mismatch: gradients summed through the all-gather's
// backward on top of a loss not divided by the world size.) On one rank (R = 1) all of this is
// exactly contrastive_loss().
//
// Collectives: every rank of `dp` must call with the same kind, shapes and dloss == 0 or not,
// in the same order relative to its other collectives on `dp` (the trainer calls the loss before
// backward starts any gradient bucket).

#include "distributed/communicator.h"
#include "models/contrastive_loss.h"

namespace tessera::models {

// The configured loss over the group's global batch (see above). With dloss == 0 (evaluation)
// only the loss is computed and dimg/dtxt may be undefined. img, txt: (B_local, E) contiguous.
ContrastiveResult distributed_contrastive_loss(config::ClipConfig::Loss kind,
                                               distributed::Communicator& dp, const Tensor& img,
                                               const Tensor& txt, float t, float bias, float dloss,
                                               const Tensor& dimg, const Tensor& dtxt);

// The two pieces, public for tests.
ContrastiveResult gathered_infonce_loss(distributed::Communicator& dp, const Tensor& img,
                                        const Tensor& txt, float t, float dloss, const Tensor& dimg,
                                        const Tensor& dtxt);
ContrastiveResult ring_sigmoid_loss(distributed::Communicator& dp, const Tensor& img,
                                    const Tensor& txt, float t, float bias, float dloss,
                                    const Tensor& dimg, const Tensor& dtxt);

}  // namespace tessera::models
