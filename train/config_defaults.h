#pragma once
// Internal to config loading: the defaults a config file is merged onto.

#include "proto/config.pb.h"

namespace tessera::train {

extern const char* const kConfigDefaults;  // protobuf text format

// Fills model fields left at 0 whose 0 is never valid (mlp_ratio, channels, logit scales, ...).
void fill_model_defaults(config::ModelConfig* model);

}  // namespace tessera::train
