#pragma once
// train.freeze: parameters that do not train (LiT's locked image tower, partial fine-tuning),
// and optim.layer_decay: layer-wise learning rates for fine-tuning.
//
// Freezing is a layout decision of the ParamStore (models/param_store.h freeze()): the frozen
// parameters move behind the trainable ones in the flat buffers, and everything that works on
// gradients (the optimizer and its state, GradSync's buckets, ZeRO-1's shards, the gradient norm,
// checkpoint moments) covers only the trainable prefix. The models skip what they can: Linear
// layers compute no weight gradient for a frozen weight, and a tower frozen whole (CLIP's image
// tower, a ViT trunk) runs forward only, keeping no activations, with no backward through it.
// Not skipped: LayerNorm and embedding parameter gradients inside a partly frozen stack (cheap;
// they land in a scratch buffer nobody reads) and dx through frozen layers that something
// trainable lies before.
//
// Unfreezing later (partial fine-tuning in stages) is a new run that starts from the frozen
// run's checkpoint with init.checkpoint (fresh optimizer state for everything); resuming with
// another train.freeze is refused, naming the tensor.

#include <cstdint>
#include <string>
#include <vector>

#include "models/param_store.h"
#include "proto/config.pb.h"

namespace tessera::train {

// Applies train.freeze to a finalized store, before init (the values would survive anyway).
// Throws naming train.freeze when a pattern matches nothing or every parameter is frozen.
// Returns the number of frozen parameters (tensors).
int freeze_parameters(const config::Config& config, models::ParamStore& store);

// One line for the start report: what is frozen, how many elements, and which towers run
// forward only; "" when nothing is.
std::string describe_frozen(const models::ParamStore& store);

// optim.layer_decay: the learning-rate multiplier of each parameter (by ParamId), 1 for all
// when off. Block indices are read from the names (a tower's "blocks.I." segment).
std::vector<double> layer_lr_scales(const config::OptimConfig& optim,
                                    const models::ParamStore& store);

// Contiguous runs of the flat trainable buffer with one learning-rate multiplier:
// [begin, end) elements and the scale; covers [0, trainable_numel()) in order.
struct LrRange {
  int64_t begin = 0, end = 0;
  double scale = 1;
};
std::vector<LrRange> lr_ranges(const std::vector<double>& scales, const models::ParamStore& store);

}  // namespace tessera::train
