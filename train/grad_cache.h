#pragma once
// CLIP/SigLIP gradient accumulation that keeps every negative of the step's batch (GradCache; see
// models/clip.h): the trainer's micro-batch loop for a contrastive model with
// train.micro_batches > 1. Plain accumulation would score each image only against its own
// micro-batch's texts; here the loss is the one of the whole batch (over the data-parallel group
// as well), exactly as with one micro-batch, at the cost of a second forward per micro-batch.

#include <cstdint>
#include <vector>

#include "core/upload.h"
#include "models/clip.h"

namespace tessera::distributed {
class GradSync;
}

namespace tessera::train {

// One step's forward and backward over this rank's micro-batches `host` (host tensors, as the
// data source returns them; each is uploaded twice: embedding pass and recomputation). Parameter
// gradients ACCUMULATE into the model's store; with `sync` (several DP ranks) the last
// micro-batch's backward averages them over the group. Returns this rank's rows' mean loss of
// the whole batch (its DP average is the global batch's loss).
double grad_cache_step(models::Clip& clip, const std::vector<models::Batch>& host,
                       Uploader& uploader, distributed::GradSync* sync);

}  // namespace tessera::train
