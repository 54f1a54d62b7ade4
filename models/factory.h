#pragma once
// Builds the model a config names.

#include <memory>
#include <string>

#include "models/model.h"
#include "proto/config.pb.h"

namespace tessera::models {

// tp: the tensor-parallel group (borrowed, outlives the model); nullptr = no tensor parallelism.
// Throws tessera::Error when the model does not split over tp's size (heads, MLP width or
// vocabulary not divisible).
// device: where the parameters and gradients live (and every activation of a forward); batches
// may come on the host or on this device (models/device_batch.h). Parameters are zero until
// params().init(seed).
std::unique_ptr<Model> make_model(const config::ModelConfig& config,
                                  distributed::Communicator* tp = nullptr,
                                  Device device = Device::cpu());

// "gpt", "vit", "clip", "dit" or "" when no model is set.
std::string model_kind(const config::Config& config);

}  // namespace tessera::models
