#pragma once
// Training recipes that the trainer applies around the model (docs/RECIPES.md): label smoothing
// set on the model, mixup/CutMix on each training batch. One place so that the trainer hooks them
// in with a line each.

#include <cstdint>

#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::train {

// optim.label_smoothing on the models that take it (ViT, GPT; the config validation refuses it
// for the others), and distill.teacher: the teacher loaded from its checkpoint onto the model's
// device and handed to the ViT, GPT or CLIP student.
void configure_model_recipes(models::Model& model, const config::Config& config);

// A training batch of positions [first, first + count) after the configured per-batch recipes
// (mixup/CutMix, train/mixing.h; with dropout, "position" = first, the key of its masks);
// unchanged when none is on.
void apply_batch_recipes(const config::Config& config, int64_t first, models::Batch& batch);

}  // namespace tessera::train
