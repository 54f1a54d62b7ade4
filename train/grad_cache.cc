#include "train/grad_cache.h"

#include "distributed/grad_sync.h"

namespace tessera::train {

double grad_cache_step(models::Clip& clip, const std::vector<models::Batch>& host,
                       Uploader& uploader, distributed::GradSync* sync) {
  const int64_t M = int64_t(host.size());
  // Pass 1: embeddings only. On a GPU the next micro-batch's copies overlap this one's forward.
  Uploader::Pending next = uploader.upload(host[0]);
  for (int64_t mb = 0; mb < M; ++mb) {
    const models::Batch batch = uploader.ready(std::move(next));
    if (mb + 1 < M) next = uploader.upload(host[mb + 1]);
    clip.cache_embeddings(batch);
  }
  // The whole batch's loss (d loss = 1: it is the step's loss, not a 1/M share of it).
  const double loss = clip.cached_loss(1.0f).loss;
  // Pass 2: recompute each micro-batch and backpropagate its rows' gradient; as the plain loop,
  // the gradients are averaged over DP during the last backward only, or during every one under
  // ZeRO-2 (GradSync::begin_micro_batch decides). The logit scale/bias gradients cached_loss added
  // join micro-batch 0's reduction; ZeRO-2 starts later micro-batches from zero gradients.
  models::ParamStore& params = clip.params();
  next = uploader.upload(host[0]);
  for (int64_t mb = 0; mb < M; ++mb) {
    const models::Batch batch = uploader.ready(std::move(next));
    if (mb + 1 < M) next = uploader.upload(host[mb + 1]);
    if (sync) sync->begin_micro_batch(mb, M);
    params.reset_grad_progress();
    clip.cached_backward(mb, batch);
    if (sync) sync->finish();
  }
  return loss;
}

}  // namespace tessera::train
