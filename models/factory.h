#pragma once
// Builds the model a config names.

#include <memory>

#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::models {

// tp_rank/tp_size: this rank's place in its tensor-parallel group.
std::unique_ptr<Model> make_model(const config::ModelConfig& config, int tp_rank = 0,
                                  int tp_size = 1);

}  // namespace tessera::models
