#pragma once
// Runs the PyTorch reference (tests/reference/ops_reference.py, through Debian's
// /usr/bin/python3 with python3-torch) on tensors written by the test, and returns what it
// computed. Inputs and outputs travel as safetensors files; `attrs` become string metadata.
//
// A test batches all its cases into one call (names like "case3.x"), since starting Python and
// importing torch costs about a second. Outputs are cached per (script, op, inputs) within the
// process, so the CPU and CUDA variants of a test share one run.

#include <map>
#include <string>

#include "core/safetensors.h"

namespace tessera::testing {

NamedTensors run_reference(const std::string& op, const NamedTensors& inputs,
                           const std::map<std::string, std::string>& attrs = {});

// Path below the source tree ($TESSERA_SOURCE_DIR, set by CTest).
std::string source_path(const std::string& relative);

}  // namespace tessera::testing
