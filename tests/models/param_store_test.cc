#include "models/param_store.h"

#include <gtest/gtest.h>

#include <cstring>

#include "distributed/local_communicator.h"
#include "models/layers/embedding.h"

namespace tessera::models {
namespace {

void build(ParamStore& s) {
  s.add({"embed.weight", {10, 4}, /*split_dim=*/0, Init::normal(0.02f), ParamGroup::kEmbedding});
  s.add({"blocks.0.qkv.weight", {12, 4}, /*split_dim=*/0, Init::normal(1.0f), ParamGroup::kWeight});
  s.add(
      {"blocks.0.proj.weight", {4, 6}, /*split_dim=*/1, Init::uniform(0.5f), ParamGroup::kWeight});
  s.add({"blocks.0.ln.bias", {4}, -1, Init::zeros(), ParamGroup::kNormOrBias});
  s.add({"blocks.0.ln.weight", {4}, -1, Init::ones(), ParamGroup::kNormOrBias});
}

TEST(ParamStore, GradientsAreLaidOutInReverseRegistrationOrder) {
  ParamStore s;
  build(s);
  s.finalize();
  EXPECT_EQ(s.numel(), 40 + 48 + 24 + 4 + 4);
  // The last registered parameter comes first, so backward fills the buffer front to back.
  EXPECT_EQ(s.info(4).offset, 0);
  EXPECT_EQ(s.info(3).offset, 4);
  EXPECT_EQ(s.info(0).offset, s.numel() - 40);
  // Param and grad views sit at the same offset of their buffers.
  EXPECT_EQ(s.grad(2).offset_bytes() - s.grads().offset_bytes(),
            s.param(2).offset_bytes() - s.params().offset_bytes());
  EXPECT_EQ(s.param(2).shape(), Shape({4, 6}));
}

TEST(ParamStore, InitDependsOnSeedAndNameOnly) {
  ParamStore a, b;
  build(a);
  // b registers the same parameters in another order (another layout).
  b.add({"blocks.0.ln.weight", {4}, -1, Init::ones(), ParamGroup::kNormOrBias});
  b.add({"blocks.0.proj.weight", {4, 6}, 1, Init::uniform(0.5f), ParamGroup::kWeight});
  b.add({"embed.weight", {10, 4}, 0, Init::normal(0.02f), ParamGroup::kEmbedding});
  b.add({"blocks.0.qkv.weight", {12, 4}, 0, Init::normal(1.0f), ParamGroup::kWeight});
  b.add({"blocks.0.ln.bias", {4}, -1, Init::zeros(), ParamGroup::kNormOrBias});
  a.finalize();
  b.finalize();
  a.init(7);
  b.init(7);
  for (const auto& info : a.infos()) {
    Tensor pa = a.param(a.find(info.spec.name)), pb = b.param(b.find(info.spec.name));
    for (int64_t i = 0; i < pa.numel(); ++i) {
      ASSERT_EQ(pa.data<float>()[i], pb.data<float>()[i]) << info.spec.name << " " << i;
    }
  }
  EXPECT_EQ(a.param(4).data<float>()[2], 1.0f);
  EXPECT_EQ(a.param(3).data<float>()[2], 0.0f);
  ParamStore c;
  build(c);
  c.finalize();
  c.init(8);
  EXPECT_NE(c.param(1).data<float>()[0], a.param(1).data<float>()[0]);
}

TEST(ParamStore, TensorParallelShardsAreSlicesOfTheUnsplitParameter) {
  ParamStore full;
  build(full);
  full.finalize();
  full.init(3);
  for (int rank = 0; rank < 2; ++rank) {
    ParamStore shard(rank, 2);
    build(shard);
    shard.finalize();
    shard.init(3);
    // Split along dim 0: rows [rank*6, rank*6+6) of the (12, 4) qkv weight.
    Tensor q = shard.param(1), qf = full.param(1);
    ASSERT_EQ(q.shape(), Shape({6, 4}));
    for (int r = 0; r < 6; ++r)
      for (int c = 0; c < 4; ++c)
        ASSERT_EQ(q.data<float>()[r * 4 + c], qf.data<float>()[(rank * 6 + r) * 4 + c]);
    // Split along dim 1: columns [rank*3, rank*3+3) of the (4, 6) projection.
    Tensor p = shard.param(2), pf = full.param(2);
    ASSERT_EQ(p.shape(), Shape({4, 3}));
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(p.data<float>()[r * 3 + c], pf.data<float>()[r * 6 + rank * 3 + c]);
    // Replicated parameters are whole on every rank.
    EXPECT_EQ(shard.param(3).shape(), Shape({4}));
  }
}

TEST(ParamStore, NormalInitHasTheRequestedScale) {
  ParamStore s;
  s.add({"w", {256, 256}, -1, Init::normal(0.02f), ParamGroup::kWeight});
  s.finalize();
  s.init(1);
  double sq = 0;
  for (int64_t i = 0; i < s.numel(); ++i)
    sq += double(s.params().data<float>()[i]) * s.params().data<float>()[i];
  EXPECT_NEAR(std::sqrt(sq / s.numel()), 0.02, 0.0005);
}

TEST(ParamStore, DecayMaskFollowsTheSpecs) {
  ParamStore s;
  build(s);
  s.finalize();
  Tensor m = s.decay_mask();
  const uint8_t* p = m.data<uint8_t>();
  EXPECT_EQ(p[s.info(1).offset], 1);
  EXPECT_EQ(p[s.info(2).offset + 23], 1);
  EXPECT_EQ(p[s.info(0).offset], 0);
  EXPECT_EQ(p[s.info(4).offset], 0);
  Tensor all = s.decay_mask(/*decay_norms_and_biases=*/true, /*decay_embeddings=*/true);
  for (int64_t i = 0; i < s.numel(); ++i) ASSERT_EQ(all.data<uint8_t>()[i], 1) << i;
  Tensor emb = s.decay_mask(false, true);
  EXPECT_EQ(emb.data<uint8_t>()[s.info(0).offset], 1);
  EXPECT_EQ(emb.data<uint8_t>()[s.info(4).offset], 0);
}

TEST(ParamStore, BadRegistrationsAreNamed) {
  ParamStore s(0, 4);
  try {
    s.add({"head.weight", {10, 4}, 0, Init::zeros(), ParamGroup::kWeight});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "ParamStore: 'head.weight' dimension 0 of (10, 4) is not divisible by "
                 "tensor_parallel = 4");
  }
  s.add({"a", {4}, -1, Init::zeros(), ParamGroup::kWeight});
  EXPECT_THROW(s.add({"a", {4}, -1, Init::zeros(), ParamGroup::kWeight}), Error);
  s.finalize();
  EXPECT_THROW(s.add({"b", {4}, -1, Init::zeros(), ParamGroup::kWeight}), Error);
}

// ZeRO-2 gradient staging: no flat buffer; a gradient exists from its first grad(id) until every
// element of it has been taken (copied out for the reduce-scatter), and writing it afterwards in
// the same backward is refused rather than silently lost.
TEST(ParamStore, StagedGradientsLiveUntilTakenAndAreRefusedAfterwards) {
  ParamStore s;
  build(
      s);  // layout: ln.weight [0, 4), ln.bias [4, 8), proj [8, 32), qkv [32, 80), embed [80, 120)
  s.finalize();
  s.stage_grads();
  EXPECT_TRUE(s.grads_staged());
  EXPECT_FALSE(s.grads().defined());
  EXPECT_EQ(s.grad_bytes_live(), 0);
  // Written: ln.weight (0), proj (2), embed (0); ln.bias and qkv never.
  for (ParamId id : {4, 2, 0}) {
    const Tensor g = s.grad(id);
    EXPECT_EQ(g.shape(), s.info(id).local_shape);
    for (int64_t l = 0; l < g.numel(); ++l) {
      EXPECT_EQ(g.data<float>()[l], 0.0f);
      g.data<float>()[l] = float(s.info(id).offset + l);
    }
  }
  EXPECT_EQ(s.grad_bytes_live(), 4 * (4 + 24 + 40));
  // [0, 20): ln.weight whole (freed), ln.bias as zeros, proj's first 12 elements (kept).
  Tensor dst = Tensor::empty({20}, DType::f32);
  s.take_grads(0, 20, dst);
  for (int64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(dst.data<float>()[i], i >= 4 && i < 8 ? 0.0f : float(i)) << i;
  }
  EXPECT_EQ(s.grad_bytes_live(), 4 * (24 + 40));
  EXPECT_THROW(s.grad(2), Error);  // proj was (partly) handed over
  EXPECT_NO_THROW(s.grad(0));      // embed lies beyond the taken range
  Tensor rest = Tensor::empty({100}, DType::f32);
  s.take_grads(20, 120, rest);
  for (int64_t i = 20; i < 120; ++i) {
    EXPECT_EQ(rest.data<float>()[i - 20], i >= 32 && i < 80 ? 0.0f : float(i)) << i;
  }
  EXPECT_EQ(s.grad_bytes_live(), 0);
  EXPECT_EQ(s.grad_bytes_peak(), 4 * (4 + 24 + 40));
  // The next backward starts from zeros.
  s.reset_grad_progress();
  EXPECT_EQ(s.grad(2).data<float>()[0], 0.0f);
  s.zero_grads();
  EXPECT_EQ(s.grad_bytes_live(), 0);
  EXPECT_THROW(s.take_grads(0, 121, Tensor::empty({121}, DType::f32)), Error);
}

// A deferred gradient (add_grad_source): take_grads() adds the source's part after the staged
// part, per range taken, and the held bytes count as gradient storage until the parameter is taken.
TEST(ParamStore, GradSourcesAreAddedRangeByRangeWhenTaken) {
  ParamStore s;
  build(s);  // embed [80, 120)
  s.finalize();
  s.stage_grads();
  const Tensor g = s.grad(0);  // a dense part first: 1000 + element
  for (int64_t l = 0; l < 40; ++l) g.data<float>()[l] = 1000.0f + float(l);
  std::vector<std::pair<int64_t, int64_t>> calls;
  s.add_grad_source(
      0,
      [&](int64_t begin, const Tensor& out) {
        calls.emplace_back(begin, out.numel());
        for (int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] += 0.5f * float(begin + i);
      },
      64);
  EXPECT_TRUE(s.has_grad_source(0));
  EXPECT_EQ(s.grad_bytes_live(), 4 * 40 + 64);
  Tensor a = Tensor::empty({90}, DType::f32), b = Tensor::empty({30}, DType::f32);
  s.take_grads(0, 90, a);
  EXPECT_EQ(s.grad_bytes_live(), 4 * 40 + 64);  // embed only partly taken
  s.take_grads(90, 120, b);
  EXPECT_EQ(s.grad_bytes_live(), 0);
  EXPECT_FALSE(s.has_grad_source(0));
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0], std::make_pair(int64_t{0}, int64_t{10}));
  EXPECT_EQ(calls[1], std::make_pair(int64_t{10}, int64_t{30}));
  for (int64_t l = 0; l < 40; ++l) {
    const float got = l < 10 ? a.data<float>()[80 + l] : b.data<float>()[l - 10];
    EXPECT_EQ(got, 1000.0f + float(l) + 0.5f * float(l)) << l;
  }
  // zero_grads() drops a source that was never taken.
  s.reset_grad_progress();
  s.add_grad_source(
      0, [](int64_t, const Tensor&) { FAIL() << "dropped source called"; }, 8);
  s.zero_grads();
  EXPECT_EQ(s.grad_bytes_live(), 0);
  s.take_grads(0, 120, Tensor::empty({120}, DType::f32));
}

// add_to_row_range: a flat range of a (rows, 4) table cut into a partial row, whole rows (views)
// and a partial row; every element gets exactly its own row's and column's addition.
TEST(ParamStore, RowRangesCoverPartialAndWholeRows) {
  const int64_t C = 4, begin = 6;
  Tensor out = Tensor::empty({13}, DType::f32);  // elements [6, 19): rows 1 (part), 2-3, 4 (part)
  for (int64_t i = 0; i < 13; ++i) out.data<float>()[i] = 0.25f;
  std::vector<std::pair<int64_t, int64_t>> calls;  // (row, rows)
  add_to_row_range(begin, out, C, [&](int64_t row, const Tensor& dst) {
    calls.emplace_back(row, dst.dim(0));
    ASSERT_EQ(dst.dim(1), C);
    for (int64_t r = 0; r < dst.dim(0); ++r) {
      for (int64_t c = 0; c < C; ++c) dst.data<float>()[r * C + c] += float((row + r) * 100 + c);
    }
  });
  EXPECT_EQ(calls, (std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 2}, {4, 1}}));
  for (int64_t i = 0; i < 13; ++i) {
    const int64_t e = begin + i;
    EXPECT_EQ(out.data<float>()[i], 0.25f + float((e / C) * 100 + e % C)) << e;
  }
}

TEST(ParamStore, GatherUnitNamesStopAtTheBlockIndex) {
  EXPECT_EQ(ParamStore::unit_name("blocks.3.attn.qkv.weight"), "blocks.3.");
  EXPECT_EQ(ParamStore::unit_name("text.blocks.12.ln_1.bias"), "text.blocks.12.");
  EXPECT_EQ(ParamStore::unit_name("visual.blocks.0.mlp.fc.weight"), "visual.blocks.0.");
  EXPECT_EQ(ParamStore::unit_name("tok_emb.weight"), "other");
  EXPECT_EQ(ParamStore::unit_name("ln_f.weight"), "other");
  EXPECT_EQ(ParamStore::unit_name("myblocks.1.weight"), "other");  // not a "blocks." segment
  EXPECT_EQ(ParamStore::unit_name("blocks.x.weight"), "other");    // no index
  EXPECT_EQ(ParamStore::unit_name("blocks.7"), "other");           // no '.' after the index
}

TEST(ParamStore, GatherUnitsFollowForwardOrderWithParametersInLayoutOrder) {
  ParamStore s;
  // "other" parameters at both ends of the forward, like GPT's embeddings and ln_f / head.
  s.add({"emb.weight", {5, 3}, -1, Init::normal(0.02f)});
  s.add({"blocks.0.a.weight", {4, 3}, -1, Init::normal(1.0f)});
  s.add({"blocks.0.a.bias", {4}, -1, Init::zeros(), ParamGroup::kNormOrBias});
  s.add({"blocks.1.a.weight", {2, 3}, -1, Init::normal(1.0f)});
  s.add({"head.weight", {7}, -1, Init::normal(1.0f)});
  s.finalize();
  // "other" lies in two runs of the flat layout (head first, the embedding last): two units,
  // the second (in forward order) named "other#2", so every unit is contiguous.
  ASSERT_EQ(s.units().size(), 4u);
  EXPECT_EQ(s.units()[0].name, "other");
  EXPECT_EQ(s.units()[1].name, "blocks.0.");
  EXPECT_EQ(s.units()[2].name, "blocks.1.");
  EXPECT_EQ(s.units()[3].name, "other#2");
  EXPECT_EQ(s.units()[0].ids, std::vector<ParamId>({0}));
  EXPECT_EQ(s.units()[1].ids, std::vector<ParamId>({2, 1}));  // layout order
  EXPECT_EQ(s.units()[3].ids, std::vector<ParamId>({4}));
  EXPECT_EQ(s.units()[0].numel, 15);
  EXPECT_EQ(s.units()[1].numel, 4 + 12);
  EXPECT_EQ(s.unit_of(3), 2);
  EXPECT_EQ(s.find_unit("blocks.1."), 2);
  EXPECT_EQ(s.find_unit("blocks.9."), -1);
  // Every unit is its contiguous range of the flat buffer; the bounds are the units' starts.
  for (const GatherUnit& u : s.units()) {
    EXPECT_EQ(u.begin, s.info(u.ids.front()).offset) << u.name;
    int64_t at = u.begin;
    for (ParamId id : u.ids) {
      EXPECT_EQ(s.info(id).offset, at) << s.info(id).spec.name;
      at += s.info(id).numel;
    }
  }
  EXPECT_EQ(s.unit_bounds(), std::vector<int64_t>({0, 7, 13, 29}));
}

TEST(ParamStore, ShardedOnOneRankGathersTheParametersAndRefusesUngatheredReads) {
  ParamStore ref, s;
  build(ref);
  build(s);
  for (ParamStore* p : {&ref, &s}) {
    p->finalize();
    p->init(7);
  }
  EXPECT_FALSE(s.params_sharded());
  EXPECT_THROW(s.set_auto_gather(true), Error);  // only with sharded storage
  distributed::LocalCommunicator dp("dp");
  s.shard_params(&dp);
  EXPECT_TRUE(s.params_sharded());
  EXPECT_THROW(s.params(), Error);
  EXPECT_THROW(s.trainable_params(), Error);
  EXPECT_THROW(s.init(7), Error);
  EXPECT_THROW(s.set_compute_dtype(DType::bf16), Error);
  EXPECT_EQ(s.param_shards().numel(), s.numel());  // one rank: the shard is everything
  const int block = s.find_unit("blocks.0.");
  ASSERT_GE(block, 0);
  const ParamId qkv = s.find("blocks.0.qkv.weight");
  try {
    s.param(qkv);
    ADD_FAILURE() << "reading an ungathered unit did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'blocks.0.qkv.weight'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'blocks.0.'"), std::string::npos) << e.what();
  }
  s.gather(block)->wait();
  const Tensor got = s.param(qkv);
  ASSERT_EQ(got.shape(), ref.param(qkv).shape());
  EXPECT_EQ(std::memcmp(got.data<float>(), ref.param(qkv).data<float>(), got.nbytes()), 0);
  EXPECT_THROW(s.param(s.find("embed.weight")), Error);  // unit "other" is still sharded
  s.release(block);
  EXPECT_THROW(s.param(qkv), Error);
  EXPECT_EQ(s.gathered_bytes_live(), 0);
  const Tensor full = s.gather_full();
  EXPECT_EQ(std::memcmp(full.data<float>(), ref.params().data<float>(), full.nbytes()), 0);
  EXPECT_EQ(s.gathered_bytes_live(), 0);  // gather_full leaves nothing gathered
  // Gradients do not depend on the full parameter buffer.
  EXPECT_EQ(s.grad(qkv).shape(), ref.grad(qkv).shape());
}

}  // namespace
}  // namespace tessera::models
