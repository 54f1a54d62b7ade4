// ParamStore allocates its full buffers on first use. The first reads may come from several
// threads at once (a communication thread and the compute thread): exactly one buffer must come
// of it, every reader must see it, and its bytes must be counted once.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "models/param_store.h"

namespace tessera::models {
namespace {

constexpr int kThreads = 4;

void build(ParamStore& s) {
  s.add({"blocks.0.w", {64, 256}, -1, Init::normal(1.0f)});
  s.add({"blocks.0.b", {256}, -1, Init::zeros(), ParamGroup::kNormOrBias});
  s.add({"head.weight", {128, 64}, -1, Init::normal(1.0f)});
  s.finalize();
}

// Runs read(t) on kThreads threads released together.
template <typename Read>
void race(Read read) {
  std::atomic<int> arrived{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      arrived.fetch_add(1);
      while (arrived.load() < kThreads) std::this_thread::yield();
      read(t);
    });
  }
  for (auto& th : threads) th.join();
}

TEST(ParamStoreThreads, FirstReadsFromSeveralThreadsAllocateOneBuffer) {
  // Many fresh stores: the window is the allocation and zeroing of the first reader.
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE(round);
    ParamStore s;
    build(s);
    const bool bf16 = round % 2 == 1;
    if (bf16) s.set_compute_dtype(DType::bf16);
    std::vector<const float*> param_base(kThreads), grad_base(kThreads);
    std::vector<const void*> compute_base(kThreads);
    race([&](int t) {
      // Each thread's first read is another entry point; all end up in the same buffers.
      const ParamId id = t % 3;
      const Tensor p = t % 2 == 0 ? s.param(id) : s.compute_param(id);
      const Tensor g = s.grad(id);
      param_base[t] = s.param(id).data<float>() - s.info(id).offset;
      compute_base[t] = s.compute_param(id).raw_data();
      grad_base[t] = g.data<float>() - s.info(id).offset;
      (void)p;
    });
    const int64_t n = s.numel();
    for (int t = 0; t < kThreads; ++t) {
      EXPECT_EQ(param_base[t], s.params().data<float>()) << "thread " << t;
      EXPECT_EQ(grad_base[t], s.grads().data<float>()) << "thread " << t;
      const ParamId id = t % 3;
      EXPECT_EQ(compute_base[t], s.compute_param(id).raw_data()) << "thread " << t;
    }
    // One f32 buffer (and one bf16 shadow) counted, one gradient buffer.
    EXPECT_EQ(s.param_bytes_peak(), 4 * n + (bf16 ? 2 * n : 0));
    EXPECT_EQ(s.grad_bytes_live(), 4 * s.trainable_numel());
    EXPECT_EQ(s.grad_bytes_peak(), 4 * s.trainable_numel());
  }
}

TEST(ParamStoreThreads, ConcurrentWholeBufferReadsSeeTheInitialisedValues) {
  // params()/grads() as a communication thread takes them (all-reduce, checkpoint), with
  // param(id) from the others, on a store already initialised: nothing is allocated again.
  ParamStore s;
  build(s);
  s.init(5);
  const float* base = s.params().data<float>();
  const float first = base[0];
  race([&](int t) {
    const Tensor all = t == 0 ? s.params() : s.param(t % 3);
    EXPECT_EQ(s.params().data<float>(), base);
    (void)all;
    (void)s.grads();
  });
  EXPECT_EQ(s.params().data<float>()[0], first);
  EXPECT_EQ(s.param_bytes_peak(), 4 * s.numel());
  EXPECT_EQ(s.grad_bytes_peak(), 4 * s.trainable_numel());
}

}  // namespace
}  // namespace tessera::models
