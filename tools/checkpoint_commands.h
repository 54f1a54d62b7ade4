#pragma once
// Tools on checkpoints (checkpoint/CHECKPOINT.md), through the reading API of
// checkpoint/checkpoint.h:
//   tessera export --checkpoint CKPT --format safetensors --out FILE
//   tessera inspect CKPT          (a step, checkpoints/ or run directory)

#include <string>

namespace tessera::tools {

// `tessera export`: the full, unsharded parameters under their global names, whatever layout
// wrote them. Returns the exit status.
int export_command(int argc, char** argv);

// `tessera import --format hf --in DIR --out RUN_DIR [--config BASE]`: a Hugging Face
// GPT2LMHeadModel, ViTForImageClassification or CLIPModel directory as a tessera run with a step-0
// checkpoint (eval/hf_format.h).
int import_command(int argc, char** argv);

// `tessera inspect` on a checkpoint: layout, tensors, sizes, and verification of the commit
// marker and of every stored piece's checksums. Returns 0 when everything verifies, else 1.
int inspect_checkpoint(const std::string& path);

}  // namespace tessera::tools
