// ParamStore::param_slice() and compute_param_slice() (one helper behind both): every row slice
// of a sliced parameter equals the same rows of an unsliced store's param() / compute_param(),
// bitwise, in f32 and bf16 compute, unsharded and sharded (ZeRO-3 on a group of one, each slice
// its own gather unit); an unsliced parameter's only slice is the parameter; bad slice indices
// and whole-parameter reads of a sharded sliced parameter are errors naming the reader.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>

#include "distributed/local_communicator.h"
#include "models/param_store.h"

namespace tessera::models {
namespace {

constexpr int64_t kRows = 37, kCols = 6, kSliceRows = 10;  // slices of 10, 10, 10, 7 rows

void build(ParamStore& s, bool sliced, bool bf16) {
  s.add({"tok_emb.weight", {kRows, kCols}, -1, Init::normal(1.0f), ParamGroup::kEmbedding});
  s.add({"blocks.0.w", {kCols, kCols}, -1, Init::normal(1.0f)});
  s.allow_row_slices(0);
  s.finalize();
  s.set_slice_bytes(sliced ? int64_t(sizeof(float)) * kSliceRows * kCols : 0);
  if (bf16) s.set_compute_dtype(DType::bf16);
  s.init(23);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

class Slices : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(Slices, EqualTheRowsOfTheWholeParameter) {
  const auto [bf16, sharded] = GetParam();
  ParamStore ref, s;
  build(ref, /*sliced=*/false, bf16);
  build(s, /*sliced=*/true, bf16);
  distributed::LocalCommunicator dp("dp");
  if (sharded) {
    s.shard_params(&dp);
    s.set_auto_gather(true);
  }
  ASSERT_EQ(s.num_slices(0), 4);
  ASSERT_EQ(ref.num_slices(0), 1);
  const DType compute = bf16 ? DType::bf16 : DType::f32;
  for (int k = 0; k < 4; ++k) {
    SCOPED_TRACE(k);
    const int64_t r0 = k * kSliceRows, r1 = std::min(kRows, r0 + kSliceRows);
    const Tensor p = s.param_slice(0, k);
    EXPECT_EQ(p.dtype(), DType::f32);
    EXPECT_TRUE(same_bytes(p, ref.param(0).slice(r0, r1)));
    const Tensor c = s.compute_param_slice(0, k);
    EXPECT_EQ(c.dtype(), compute);
    EXPECT_EQ(c.shape(), Shape({r1 - r0, kCols}));
    EXPECT_TRUE(same_bytes(c, ref.compute_param(0).slice(r0, r1)));
  }
  // An unsliced parameter: its one slice is the parameter.
  EXPECT_TRUE(same_bytes(s.param_slice(1, 0), ref.param(1)));
  EXPECT_TRUE(same_bytes(s.compute_param_slice(1, 0), ref.compute_param(1)));
  EXPECT_EQ(s.compute_param_slice(1, 0).dtype(), compute);
  // Errors name the reader, the slice and the parameter.
  auto message = [](auto&& read) {
    try {
      read();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { s.param_slice(0, 4); }).find("param_slice: slice 4 of 4 of 'tok_emb"),
            std::string::npos);
  EXPECT_NE(message([&] {
              s.compute_param_slice(0, -1);
            }).find(bf16 ? "compute_param_slice: slice -1 of 4" : "param_slice: slice -1 of 4"),
            std::string::npos);
  EXPECT_NE(message([&] { s.param_slice(1, 1); }).find("slice 1 of 1 of 'blocks.0.w'"),
            std::string::npos);
  if (sharded) {
    EXPECT_NE(message([&] { s.param(0); }).find("read it with param_slice()"), std::string::npos);
    if (bf16) {
      EXPECT_NE(message([&] { s.compute_param(0); }).find("read it with compute_param_slice()"),
                std::string::npos);
    }
    s.release_all();
  }
}

INSTANTIATE_TEST_SUITE_P(ComputeAndSharding, Slices,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "Bf16" : "F32") +
                                  (std::get<1>(info.param) ? "Sharded" : "Unsharded");
                         });

}  // namespace
}  // namespace tessera::models
