#pragma once
// oneDNN's failures as tessera errors. A status from the C API (dnnl_sgemm) or the status of a
// dnnl::error (the matmul primitive) becomes a tessera::Error naming the oneDNN call, the op and
// its shapes. dnnl_out_of_memory (oneDNN could not allocate its packing buffers or scratchpad, as
// under `ulimit -v`) reads "out of memory", so that `tessera train` adds its advice on what to
// change (train/run_train.cc) instead of ending on a bare status number.

#include <string>

#include "dnnl_types.h"
#include "ops/cpu/matmul.h"

namespace tessera::ops::cpu {

// "f32 matmul m=512 n=8533 k=768 trans_b: A (512, 768), B (8533, 768), C (512, 8533)", with
// "batch=B" and 3-D operands when s.batch > 1. dtype names the operands ("f32", "bf16").
std::string gemm_description(const GemmShape& s, const std::string& dtype);

// Throws tessera::Error for a failed oneDNN call (status != dnnl_success): "out of memory in
// oneDNN's CALL for OP" for dnnl_out_of_memory, else "oneDNN's CALL failed (STATUS) for OP".
[[noreturn]] void throw_onednn_error(dnnl_status_t status, const std::string& call,
                                     const std::string& op);

}  // namespace tessera::ops::cpu
