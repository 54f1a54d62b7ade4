#pragma once
// Builds the model a config names.

#include <memory>

#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::models {

// tp: the tensor-parallel group (borrowed, outlives the model); nullptr = no tensor parallelism.
// Throws tessera::Error when the model does not split over tp's size (heads, MLP width or
// vocabulary not divisible).
std::unique_ptr<Model> make_model(const config::ModelConfig& config,
                                  distributed::Communicator* tp = nullptr);

}  // namespace tessera::models
