// ZeRO-3 groundwork on 2 and 4 ranks (ctest train_zero3_units_test and _np4): parameters sharded
// per gather unit (models::ParamStore::shard_params) and all-gathered unit by unit equal the
// unsharded parameters bitwise, with gathers issued ahead as prefetches in forward and backward
// order; a released unit's buffer is freed; the real models' units follow their blocks.
// Nothing here changes stages 0-2 (docs/ZERO3_PLAN.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "core/caching_allocator.h"
#include "core/philox.h"
#include "distributed/communicator.h"
#include "models/factory.h"
#include "models/gpt.h"
#include "models/param_store.h"
#include "tests/distributed/mpi_test_env.h"
#include "tests/train/train_test_support.h"

namespace tessera::models {
namespace {

constexpr int64_t kBig = 300000;  // blocks.3's only weight: 1.2 MB, above the CPU cache threshold

// Sizes chosen so no unit divides by 2 or 4 (padding on the last ranks); "other" lies at both
// ends of the flat layout (head and ln_f first, embeddings last), as in GPT.
void build(ParamStore& s) {
  s.add({"tok_emb.weight", {37, 5}, -1, Init::normal(0.02f), ParamGroup::kEmbedding});
  s.add({"pos_emb.weight", {3, 5}, -1, Init::normal(0.01f), ParamGroup::kEmbedding});
  for (int b = 0; b < 3; ++b) {
    const std::string p = "blocks." + std::to_string(b) + ".";
    s.add({p + "qkv.weight", {9, 5}, -1, Init::normal(1.0f)});
    s.add({p + "qkv.bias", {9}, -1, Init::uniform(0.5f), ParamGroup::kNormOrBias});
    s.add({p + "ln.weight", {5}, -1, Init::ones(), ParamGroup::kNormOrBias});
  }
  s.add({"blocks.3.fc.weight", {kBig}, -1, Init::normal(1.0f)});
  s.add({"ln_f.weight", {5}, -1, Init::uniform(1.0f), ParamGroup::kNormOrBias});
  s.add({"head.weight", {7, 5}, -1, Init::normal(0.02f)});
  s.finalize();
  s.init(11);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0;
}

// Every parameter of unit u as gathered equals the reference bitwise.
void expect_unit_equal(ParamStore& s, const ParamStore& ref, int u) {
  for (ParamId id : s.units()[u].ids) {
    EXPECT_TRUE(same_bits(s.param(id), ref.param(id))) << s.info(id).spec.name;
  }
}

TEST(Zero3Units, GatheredUnitsEqualTheUnshardedParametersBitwise) {
  auto world = distributed::testing::test_world();
  const int n = world->size(), r = world->rank();
  ParamStore ref, s;
  build(ref);
  build(s);
  s.shard_params(world.get());
  const auto& units = s.units();
  ASSERT_EQ(units.size(), 6u);  // other (embeddings), blocks.0-3, other#2 (ln_f, head)
  EXPECT_EQ(units[5].name, "other#2");
  // The shard: this rank's slice of the unit's elements (parameters in layout order), padding 0;
  // one bucket per unit, the shards in flat order (the last unit's first) tiling the buffer.
  int64_t total = 0;
  std::vector<std::pair<int64_t, int64_t>> pieces;  // (shard_offset, shard)
  for (size_t u = 0; u < units.size(); ++u) {
    SCOPED_TRACE(units[u].name);
    EXPECT_EQ(units[u].shard, (units[u].numel + n - 1) / n);
    EXPECT_EQ(units[u].num_buckets, 1);
    pieces.emplace_back(units[u].shard_offset, units[u].shard);
    total += units[u].shard;
    std::vector<float> concat;
    for (ParamId id : units[u].ids) {
      const Tensor p = ref.param(id);
      concat.insert(concat.end(), p.data<float>(), p.data<float>() + p.numel());
    }
    ASSERT_EQ(int64_t(concat.size()), units[u].numel);
    const Tensor shard = s.param_shard(int(u));
    for (int64_t i = 0; i < units[u].shard; ++i) {
      const int64_t e = r * units[u].shard + i;
      const float want = e < units[u].numel ? concat[e] : 0.0f;
      ASSERT_EQ(std::memcmp(&shard.data<float>()[i], &want, 4), 0) << "element " << e;
    }
  }
  EXPECT_EQ(s.param_shards().numel(), total);
  EXPECT_LT(total, s.numel() / n + n * int64_t(units.size()));
  std::sort(pieces.begin(), pieces.end());
  for (size_t i = 1; i < pieces.size(); ++i) {
    EXPECT_EQ(pieces[i].first, pieces[i - 1].first + pieces[i - 1].second);
  }
  EXPECT_EQ(units[5].shard_offset, 0);  // head and ln_f first in the flat layout

  // Forward order with the next unit prefetched before the current one is read, then backward
  // order likewise: never more than two units resident.
  const int U = int(units.size());
  for (int direction : {+1, -1}) {
    const int first = direction > 0 ? 0 : U - 1;
    s.gather(first);
    for (int u = first; u >= 0 && u < U; u += direction) {
      const int next = u + direction;
      if (next >= 0 && next < U) s.gather(next);  // prefetch, in flight while u is read
      EXPECT_TRUE(s.gathered(u));
      expect_unit_equal(s, ref, u);
      EXPECT_EQ(s.gather(u), s.gather(u));  // a resident unit is not gathered again
      s.release(u);
      EXPECT_FALSE(s.gathered(u));
    }
  }
  EXPECT_EQ(s.gathered_bytes_live(), 0);
  const int64_t big = 4 * n * units[4].shard;
  // The largest pair resident at once: blocks.3 (prefetched or read) beside blocks.2.
  EXPECT_EQ(s.gathered_bytes_peak(), big + 4 * n * units[3].shard);
  // All at once: what a checkpoint write or an evaluation reads.
  EXPECT_TRUE(same_bits(s.gather_full(), ref.params()));
  EXPECT_EQ(s.gathered_bytes_live(), 0);
}

TEST(Zero3Units, ShardingAndReleaseFreeTheMemory) {
  auto world = distributed::testing::test_world();
  const int n = world->size();
  auto* cache = dynamic_cast<CachingAllocator*>(&allocator_for(Device::cpu()));
  ASSERT_NE(cache, nullptr);
  ParamStore s;
  build(s);
  std::weak_ptr<Buffer> flat = s.params().buffer();
  const size_t before_shard = cache->stats().bytes_in_use;
  s.shard_params(world.get());
  // The full flat buffer (1.2 MB: cached size) is gone; the shards (1.2 MB / n) are below the
  // 1 MiB cache threshold at n >= 2, so they come from malloc and are not counted.
  EXPECT_TRUE(flat.expired());
  ASSERT_LT(4 * s.param_shards().numel(), int64_t(1) << 20);
  EXPECT_EQ(before_shard - cache->stats().bytes_in_use, cache->round_size(4 * s.numel()));

  const int big = s.find_unit("blocks.3.");
  ASSERT_GE(big, 0);
  const ParamId fc = s.find("blocks.3.fc.weight");
  const size_t full_bytes = 4 * n * s.units()[big].shard;
  const size_t idle = cache->stats().bytes_in_use;
  s.gather(big)->wait();
  EXPECT_EQ(cache->stats().bytes_in_use - idle, cache->round_size(full_bytes));
  EXPECT_EQ(s.gathered_bytes_live(), int64_t(full_bytes));
  std::weak_ptr<Buffer> unit = s.param(fc).buffer();
  {
    const Tensor held = s.param(fc);  // a view held past release keeps the memory ...
    s.release(big);
    EXPECT_FALSE(unit.expired());
    EXPECT_EQ(s.gathered_bytes_live(), 0);
    EXPECT_THROW(s.param(fc), Error);
  }
  EXPECT_TRUE(unit.expired());  // ... until it is dropped
  EXPECT_EQ(cache->stats().bytes_in_use, idle);

  // Released while still in flight: the release waits for the collective first.
  s.gather(big);
  s.release(big);
  EXPECT_EQ(cache->stats().bytes_in_use, idle);
  EXPECT_EQ(s.gathered_bytes_live(), 0);
  EXPECT_EQ(s.gathered_bytes_peak(), int64_t(full_bytes));
}

// The real models' names give one unit per transformer block (contiguous in the flat layout)
// plus "other"; the gathered parameters equal an unsharded copy of the model.
TEST(Zero3Units, ModelUnitsAreTheirBlocks) {
  auto world = distributed::testing::test_world();
  for (const char* file : {"configs/gpt_tiny.pbtxt", "configs/clip_tiny.pbtxt",
                           "configs/dit_tiny.pbtxt", "configs/vit_tiny.pbtxt"}) {
    SCOPED_TRACE(file);
    const config::Config cfg = train::testing_support::load(file);
    auto ref = make_model(cfg.model());
    auto model = make_model(cfg.model());
    ref->params().init(5);
    model->params().init(5);
    ParamStore& s = model->params();
    int blocks = 0;
    for (const GatherUnit& unit : s.units()) {
      for (size_t k = 1; k < unit.ids.size(); ++k) {  // contiguous, in layout order
        const ParamInfo& prev = s.info(unit.ids[k - 1]);
        EXPECT_EQ(s.info(unit.ids[k]).offset, prev.offset + prev.numel) << unit.name;
      }
      blocks += unit.name.rfind("other", 0) != 0;
    }
    EXPECT_GE(blocks, 2);
    EXPECT_EQ(s.units()[0].name, "other");  // embeddings are registered first
    s.shard_params(world.get());
    for (int u = 0; u < int(s.units().size()); ++u) {
      s.gather(u);
      expect_unit_equal(s, ref->params(), u);
      s.release(u);
    }
    // ZeRO-3's layout: the optimizer's buckets (here 1000 elements), cut at the units, so a unit
    // is gathered as several all-gathers into place; the parameters still come out bitwise.
    auto cut = make_model(cfg.model());
    cut->params().init(5);
    ParamStore& c = cut->params();
    const distributed::ZeroShards shards(c.numel(), 4 * 1000, world->size(), world->rank(),
                                         c.unit_bounds());
    c.shard_params(world.get(), shards);
    EXPECT_EQ(c.param_shards().numel(), shards.shard_numel);
    int several = 0;
    for (int u = 0; u < int(c.units().size()); ++u) {
      several += c.units()[u].num_buckets > 1;
      c.gather(u)->wait();
      expect_unit_equal(c, ref->params(), u);
      c.release(u);
    }
    EXPECT_GT(several, 0);
    EXPECT_TRUE(same_bits(c.gather_full(), ref->params().params()));
  }
}

// Automatic gathering: a GPT forward and backward on sharded parameters, every unit gathered on
// first read with the next one prefetched, gives the unsharded model's loss and gradients
// bitwise (the same floats in the same kernels), with recomputation too, and never holds more
// than two units.
TEST(Zero3Units, GptWithAutomaticGatheringEqualsUnshardedBitwise) {
  auto world = distributed::testing::test_world();
  const config::Config cfg = train::testing_support::load("configs/gpt_tiny.pbtxt");
  const config::GptConfig& c = cfg.model().gpt();
  const int64_t B = 2, T = std::min<int64_t>(c.context(), 16);
  Tensor tokens = Tensor::empty({B, T}, DType::i32), targets = Tensor::empty({B, T}, DType::i32);
  for (int64_t i = 0; i < B * T; ++i) {  // a different batch on every rank
    Philox4x32 r = philox_block(9, uint64_t(world->rank()), uint64_t(i));
    tokens.data<int32_t>()[i] = int32_t(r.v[0] % uint32_t(c.vocab_size()));
    targets.data<int32_t>()[i] = int32_t(r.v[1] % uint32_t(c.vocab_size()));
  }
  const Batch batch{{"tokens", tokens}, {"targets", targets}};
  for (bool recompute : {false, true}) {
    SCOPED_TRACE(recompute ? "recompute" : "plain");
    Gpt ref(c, recompute), gpt(c, recompute);
    ref.params().init(3);
    gpt.params().init(3);
    ParamStore& s = gpt.params();
    s.shard_params(world.get());
    EXPECT_THROW(gpt.forward_backward(batch, 1.0f), Error);  // not gathered, not automatic
    s.zero_grads();
    s.set_auto_gather(true);
    for (int step = 0; step < 2; ++step) {  // the second pass starts with units resident
      ref.params().zero_grads();
      s.zero_grads();
      const LossResult want = ref.forward_backward(batch, 1.0f);
      const LossResult got = gpt.forward_backward(batch, 1.0f);
      EXPECT_EQ(std::memcmp(&want.loss, &got.loss, sizeof(double)), 0)
          << want.loss << " " << got.loss;
      EXPECT_TRUE(same_bits(s.grads(), ref.params().grads()));
    }
    int64_t largest = 0;
    for (const GatherUnit& u : s.units()) largest = std::max(largest, 4 * world->size() * u.shard);
    EXPECT_GT(s.gathered_bytes_peak(), 0);
    EXPECT_LE(s.gathered_bytes_peak(), 2 * largest);
    EXPECT_LE(s.gathered_bytes_live(), 2 * largest);
    s.set_auto_gather(false);
    EXPECT_TRUE(same_bits(s.gather_full(), ref.params().params()));
  }
}

}  // namespace
}  // namespace tessera::models
