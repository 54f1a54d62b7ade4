#pragma once
// What the ZeRO trainer suites share (zero_test.cc: stages 1 and 2, zero3_test.cc: stage 3, both
// on 2 and 4 MPI ranks): training a config with plain data parallel (stage 0) and with a ZeRO
// stage on the same ranks and comparing the parameters, losses, norms and memory metrics.
// Every function here is collective over distributed::testing::test_world().

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "distributed/communicator.h"
#include "nlohmann/json.hpp"

namespace tessera::train::testing_support {

// RUN_DIR/metrics.jsonl, one object per line.
std::vector<nlohmann::json> read_metrics(const std::string& dir);

struct Diff {
  double max_rel = 0;   // max |a - b| / max |b|
  int64_t unequal = 0;  // elements not bitwise equal
};

// a against the reference b (f32, same numel).
Diff compare(const Tensor& a, const Tensor& b);

// Every rank of `world` holds bitwise the same tensor.
void expect_ranks_agree(distributed::Communicator& world, const Tensor& mine);

// Trains `sets` on `config` (gpt_tiny by default) for 5 steps with plain DP and with ZeRO stage
// `stage` on the same ranks and compares: parameters to 1e-6 relative, bitwise on a DP group of
// 2 ranks (2 ranks, or TP 2 x DP 2) when bitwise_np2 (false where the summation order differs:
// ZeRO-2 and -3 add the micro-batches' averages, plain DP averages the accumulated sum); losses
// and gradient norms; clipping active; at stage >= 2 one reduce-scatter per micro-batch from
// staged gradients (a lower gradient peak); at stage 3 1/dp of the parameters per rank, never all
// of them gathered at once and at most two gather units (their f32 buffers and, with
// train.precision BF16, their bf16 copies). The runs write their metrics.jsonl into dp_run_dir
// and zero_run_dir below (removed first).
void expect_zero_equals_dp(std::vector<std::string> sets, const std::string& name, int stage = 1,
                           const std::string& config = "configs/gpt_tiny.pbtxt",
                           bool bitwise_np2 = true);

// The run directories of expect_zero_equals_dp(..., name, stage, ...) on `ranks` ranks.
std::string dp_run_dir(const std::string& name, int stage, int ranks);
std::string zero_run_dir(const std::string& name, int stage, int ranks);

// Two micro-batches. With two, ZeRO-2 and -3 add the micro-batches' averages instead of averaging
// the accumulated sum: the same sums in another order. Adam's first steps divide by sqrt(v) + eps,
// and with eps = 1e-8 an element whose gradient is near zero turns a last-bit difference of it
// into an update difference of up to ~lr: measured after 5 steps at stage 2, relative to the
// largest parameter, 1.4e-6 (GPT, 4 ranks), 2e-6 (ViT), 4e-6 (DiT), 1e-5 (CLIP). optim.eps = 1e-4
// keeps the update linear in such gradients, so the comparison at 1e-6 tests the communication,
// not Adam's conditioning (then 1e-8 to 1e-6).
extern const std::vector<std::string> kAccumulate;

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b);

// configs/MODEL_tiny.pbtxt (vit, clip, dit) with `sets`, batch 8, at `stage`: with one
// micro-batch (bitwise on a DP group of 2) and with two (kAccumulate). Runs named `name` (empty:
// MODEL) and NAME_accumulate.
void expect_model_equals_dp(const std::string& model, std::vector<std::string> sets, int stage,
                            const std::string& name = "");

// parallel.reduce_tied_grad_early at `stage` (2 or 3); see zero_equivalence.cc.
void expect_tied_grad_reduced_early(int stage);

// gpt_tiny with a large tied table (vocabulary 4096, width 64) and a short context (32 tokens per
// rank): dlogits and the hidden state are smaller than the table.
std::vector<std::string> tied_table_sets(int ranks);

// GPT's tied table's gradient built bucket by bucket at `stage` (2 or 3), with f32 or bf16
// compute; see zero_equivalence.cc.
void expect_tied_table_built_bucket_by_bucket(int stage, bool bf16);

}  // namespace tessera::train::testing_support
