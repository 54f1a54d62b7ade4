// ZeRO-3 (docs/DISTRIBUTED.md "Stage 3") on every device, in one process: a store of four gather
// units sharded over data-parallel groups of 1, 2 and 3 ranks run as threads (the test double of
// tests/support/thread_group.h: each collective a rendezvous that copies with copy(), so the CUDA
// variant runs on one GPU, without MPI or NCCL; the NCCL path itself is
// train_zero3_parallel_device_test's, which needs a GPU per rank). With the shard buffers, the
// gathered units, the bf16 copies, m, v, the gradient shard and the EMA on device():
//  - every parameter a forward (units in order) and a backward (reverse order) read through the
//    automatic gathering is bitwise the value assembled on the host from every rank's shard
//    (bf16 compute: that value converted on the host), with at most two units resident;
//  - after each ZeroAdamW step on the shards, the assembled parameters equal AdamW on the CPU on
//    the averaged gradients, and the EMA of the shards equals the EMA computed on the host from
//    the assembled parameters; every gathered unit was released before the step;
//  - gather_full() equals the assembled parameters bitwise, and the host copy of the shards a
//    checkpoint writes (param_shards() brought to the host) is the assembled value's slices.
// Also (no device needed): CUDA with stage 3 is refused at config load unless the validation
// opt-in (TESSERA_ZERO3_CUDA_VALIDATION=1) is set.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#if TESSERA_WITH_CUDA
#include <cuda_runtime.h>

#include "core/cuda/runtime.h"
#endif

#include "absl/strings/str_cat.h"
#include "core/bf16.h"
#include "models/param_store.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/reference.h"
#include "tests/support/thread_group.h"
#include "tests/train/zero_test_support.h"
#include "train/config.h"
#include "train/ema.h"
#include "train/optimizer.h"
#include "train/zero_optimizer.h"

namespace tessera::train {
namespace {

using testing::Rendezvous;
using testing::ThreadRank;

// Registration (forward) order: "tok" (unit "other"), two blocks, "head" (unit "other#2", at the
// front of the reversed flat layout). Odd sizes: no unit divides by 2 or 3, so every unit's last
// bucket is padded and some ranks own nothing of a small bucket. 280 elements, all three decay
// groups.
std::unique_ptr<models::ParamStore> unit_store(Device device, bool bf16) {
  auto s = std::make_unique<models::ParamStore>();
  s->add({"tok.weight", {19, 5}, -1, models::Init::normal(0.5f), models::ParamGroup::kEmbedding});
  s->add({"blocks.0.w", {7, 13}, -1, models::Init::normal(0.5f), models::ParamGroup::kWeight});
  s->add({"blocks.0.b", {13}, -1, models::Init::normal(0.5f), models::ParamGroup::kNormOrBias});
  s->add({"blocks.1.w", {11, 3}, -1, models::Init::normal(0.5f), models::ParamGroup::kWeight});
  s->add({"blocks.1.b", {3}, -1, models::Init::normal(0.5f), models::ParamGroup::kNormOrBias});
  s->add({"head.w", {5, 9}, -1, models::Init::normal(0.5f), models::ParamGroup::kWeight});
  s->finalize(device);
  s->init(7);
  if (bf16) s->set_compute_dtype(DType::bf16);
  return s;
}

// The averaged gradient of a step, on the host: multiples of 1/64.
Tensor averaged_grads(int64_t n, int step) {
  Tensor g = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) g.data<float>()[i] = float(((i * 11 + step * 3) % 37) - 18) / 64;
  return g;
}

// The flat (N) parameters assembled on the host from every rank's shard buffer: bucket b of rank
// r holds elements [own_begin, own_end) at offset b.offset.
Tensor assemble(const std::vector<std::unique_ptr<models::ParamStore>>& stores) {
  Tensor full = Tensor::zeros({stores[0]->numel()}, DType::f32);
  for (const auto& s : stores) {
    const Tensor shard = to_device(s->param_shards(), Device::cpu());
    for (const auto& b : s->shard_buckets()) {
      if (b.own() == 0) continue;
      std::memcpy(full.data<float>() + b.own_begin, shard.data<float>() + b.offset,
                  size_t(b.own()) * sizeof(float));
    }
  }
  return full;
}

// Runs f(r) on one thread per rank; a throwing rank breaks the rendezvous so the others throw
// too instead of waiting. Returns the errors ("" where none).
template <typename F>
std::vector<std::string> on_ranks(Rendezvous& group, int dp, F f) {
  std::vector<std::string> errors(dp);
  std::vector<std::thread> threads;
  for (int r = 0; r < dp; ++r) {
    threads.emplace_back([&, r] {
      try {
        f(r);
      } catch (const std::exception& e) {
        errors[r] = e.what();
        group.fail();
      }
    });
  }
  for (auto& t : threads) t.join();
  return errors;
}

#if TESSERA_WITH_CUDA
// NcclCommunicator's stream contract (distributed/nccl_communicator.h) on one GPU, without NCCL:
// a device all_gather is queued on this rank's own stream after the compute stream's work so far,
// behind a 2 ms host sleep on that stream (so that a consumer which does not wait reads memory
// not yet written), copies every rank's input (cudaMemcpyAsync) and returns at once. wait() makes
// the compute stream wait for every rank's copies (an NCCL collective completes on all ranks
// together, so a rank may overwrite its input once its own wait is ordered) and does not block the
// host; the buffers are held until every rank's copies completed. Host tensors (the gradient
// norm's partial sums) go to the synchronous ThreadRank, as RoutedCommunicator sends them to MPI.
class StreamRank final : public distributed::Communicator {
 public:
  // One per collective, shared by the ranks: each rank's completion event.
  struct Events {
    explicit Events(int n) : done(n) {
      for (cudaEvent_t& e : done) {
        cuda::check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
      }
    }
    ~Events() {
      for (cudaEvent_t e : done) cudaEventDestroy(e);
    }
    bool complete() const {
      for (cudaEvent_t e : done) {
        if (cudaEventQuery(e) != cudaSuccess) return false;
      }
      return true;
    }
    std::vector<cudaEvent_t> done;
  };
  // The ranks' meeting point for a collective's events (by sequence number).
  struct Shared {
    std::mutex mu;
    std::map<int64_t, std::pair<std::shared_ptr<Events>, int>> by_seq;  // events, ranks taken
    std::shared_ptr<Events> take(int64_t seq, int n) {
      std::lock_guard<std::mutex> lock(mu);
      auto& entry = by_seq[seq];
      if (!entry.first) entry.first = std::make_shared<Events>(n);
      std::shared_ptr<Events> out = entry.first;
      if (++entry.second == n) by_seq.erase(seq);
      return out;
    }
  };

  StreamRank(Rendezvous& group, Shared& shared, int rank, Device device)
      : sync_(group, rank, "dp"), group_(group), shared_(shared), device_(device) {
    cuda::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda::check(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~StreamRank() override {
    cudaStreamSynchronize(stream_);
    // The peers' copies of this rank's inputs.
    for (const Held& h : held_) {
      for (cudaEvent_t e : h.events->done) cudaEventSynchronize(e);
    }
    held_.clear();
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return sync_.rank(); }
  int size() const override { return sync_.size(); }
  const std::string& name() const override { return sync_.name(); }
  int64_t last_sequence() const override { return seq_; }
  int world_rank_of(int r) const override { return r; }

  distributed::WorkHandle all_reduce(const Tensor& t, distributed::ReduceOp op) override {
    TESSERA_CHECK(t.device().is_cpu(), "StreamRank::all_reduce: host tensors only");
    return sync_.all_reduce(t, op);
  }
  distributed::WorkHandle all_gather(const Tensor& input, const Tensor& output) override {
    if (input.device().is_cpu()) return sync_.all_gather(input, output);
    const int64_t n = input.numel();
    TESSERA_CHECK(input.dtype() == DType::f32 && output.numel() == n * size(),
                  "StreamRank::all_gather: ", input.describe(), " into ", output.describe());
    prune();
    auto events = shared_.take(++seq_, size());
    const cudaStream_t compute = cuda::compute_stream(device_.index);
    group_.exchange(rank(), input, [&](std::vector<Tensor>& all) {
      // Every rank has posted: their inputs' producers are queued on the one compute stream.
      cuda::check(cudaEventRecord(ready_, compute), "cudaEventRecord");
      cuda::check(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent");
      cuda::check(
          cudaLaunchHostFunc(
              stream_, [](void*) { std::this_thread::sleep_for(std::chrono::milliseconds(2)); },
              nullptr),
          "cudaLaunchHostFunc");
      for (int r = 0; r < size(); ++r) {
        cuda::check(cudaMemcpyAsync(output.flat_view(r * n, {n}).raw_data(), all[r].raw_data(),
                                    size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream_),
                    "cudaMemcpyAsync");
      }
      cuda::check(cudaEventRecord(events->done[rank()], stream_), "cudaEventRecord");
    });
    held_.push_back({events, input, output});
    return std::make_shared<StreamWork>(absl::StrCat("all_gather #", seq_, " on '", name(), "'"),
                                        events, compute);
  }
  distributed::WorkHandle reduce_scatter(const Tensor& input, const Tensor& output,
                                         distributed::ReduceOp op) override {
    return sync_.reduce_scatter(input, output, op);  // throws: not used here
  }
  distributed::WorkHandle broadcast(const Tensor& t, int root) override {
    return sync_.broadcast(t, root);
  }
  distributed::WorkHandle send(const Tensor& t, int peer) override { return sync_.send(t, peer); }
  distributed::WorkHandle recv(const Tensor& t, int peer) override { return sync_.recv(t, peer); }
  distributed::WorkHandle barrier() override { return sync_.barrier(); }
  std::unique_ptr<Communicator> split(int color, int key, std::string name) override {
    return sync_.split(color, key, std::move(name));
  }

 private:
  class StreamWork final : public distributed::Work {
   public:
    StreamWork(std::string what, std::shared_ptr<Events> events, cudaStream_t compute)
        : distributed::Work(std::move(what)), events_(std::move(events)), compute_(compute) {}
    void wait() override {
      for (cudaEvent_t e : events_->done) {
        cuda::check(cudaStreamWaitEvent(compute_, e, 0), "cudaStreamWaitEvent");
      }
    }

   private:
    std::shared_ptr<Events> events_;
    cudaStream_t compute_;
  };
  struct Held {
    std::shared_ptr<Events> events;
    Tensor input, output;
  };
  void prune() {
    while (!held_.empty() && held_.front().events->complete()) held_.pop_front();
  }

  ThreadRank sync_;
  Rendezvous& group_;
  Shared& shared_;
  Device device_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  int64_t seq_ = 0;
  std::deque<Held> held_;
};
#endif

class Zero3DeviceTest : public testing::DeviceTest {};

TEST_P(Zero3DeviceTest, ShardsGatherStepAndAverageOnTheDeviceLikeTheCpu) {
  // CPU: the same AdamW kernel; only the norm's summation order differs (1e-6, as zero_test).
  // CUDA: the device's AdamW kernel against the CPU's, both f32 (1e-5, ops/adamw_test's bound).
  const double rtol = device().is_cpu() ? 1e-6 : 1e-5;
  const float decay = 0.9f;
  // CUDA: also through the asynchronous double of NCCL's stream contract (StreamRank).
  std::vector<bool> asynchronous = {false};
#if TESSERA_WITH_CUDA
  if (device().is_cuda()) asynchronous.push_back(true);
#endif
  for (const bool async : asynchronous) {
    for (const bool bf16 : {false, true}) {
      for (const int dp : {1, 2, 3}) {
        // 5 floats: several buckets per unit; 1000: one bucket per unit.
        for (const int64_t bucket_bytes : {int64_t(4 * 5), int64_t(4 * 1000)}) {
          SCOPED_TRACE(absl::StrCat(async ? "stream gathers " : "", bf16 ? "bf16" : "f32", " dp ",
                                    dp, " bucket_bytes ", bucket_bytes));
          const config::OptimConfig oc = testing_support::zero_test_optim(0.5f);
          auto ref = unit_store(Device::cpu(), false);
          AdamW adamw(*ref, oc);
          Tensor ema_ref = to_device(ref->params(), Device::cpu());
          Rendezvous group(dp);
          // Declared before the stores: destroyed after them (a store may hold gathered units).
#if TESSERA_WITH_CUDA
          StreamRank::Shared shared;
#endif
          std::vector<std::unique_ptr<distributed::Communicator>> comms;
          std::vector<std::unique_ptr<models::ParamStore>> stores;
          std::vector<std::unique_ptr<ZeroAdamW>> zeros;
          std::vector<std::unique_ptr<Ema>> emas;
          for (int r = 0; r < dp; ++r) {
#if TESSERA_WITH_CUDA
            if (async) {
              comms.push_back(std::make_unique<StreamRank>(group, shared, r, device()));
            } else {
              comms.push_back(std::make_unique<ThreadRank>(group, r, "dp"));
            }
#else
            comms.push_back(std::make_unique<ThreadRank>(group, r, "dp"));
#endif
            stores.push_back(unit_store(device(), bf16));
            zeros.push_back(
                std::make_unique<ZeroAdamW>(*stores[r], oc, *comms[r], bucket_bytes, /*stage=*/3));
            // As the trainer does (train/trainer.cc shard_parameters): shard in the optimizer's
            // layout, then gather automatically.
            stores[r]->shard_params(comms[r].get(), zeros[r]->shards());
            stores[r]->set_auto_gather(true);
            emas.push_back(std::make_unique<Ema>(*stores[r], &zeros[r]->shards(), decay, false));
            ASSERT_EQ(stores[r]->units().size(), 4u);
            EXPECT_EQ(stores[r]->param_shards().device(), device());
            EXPECT_EQ(zeros[r]->m().device(), device());
            EXPECT_EQ(zeros[r]->shard_grads().device(), device());
            EXPECT_EQ(emas[r]->buffer().device(), device());
          }
          const models::ParamStore& layout = *stores[0];
          const int units = int(layout.units().size());
          Tensor assembled = assemble(stores);
          EXPECT_ALL_CLOSE(assembled, ref->params(), 0.0, "sharded initial parameters");
          for (int step = 1; step <= 3; ++step) {
            // The values every read must give: the assembled parameters (bf16: converted here).
            Tensor want = assembled;
            if (bf16) {
              want = Tensor::empty({assembled.numel()}, DType::f32);
              for (int64_t i = 0; i < assembled.numel(); ++i) {
                want.data<float>()[i] = bf16_to_float(float_to_bf16(assembled.data<float>()[i]));
              }
            }
            const Tensor g = averaged_grads(ref->numel(), step);
            std::vector<int> most_resident(dp, 0);
            std::vector<int64_t> mismatches(dp, 0);
            std::vector<StepStats> stats(dp);
            const auto errors = on_ranks(group, dp, [&](int r) {
              models::ParamStore& s = *stores[r];
              auto read_unit = [&](int u) {
                for (models::ParamId id : s.units()[u].ids) {
                  const Tensor p = s.compute_param(id);
                  EXPECT_EQ(p.dtype(), bf16 ? DType::bf16 : DType::f32);
                  const Tensor host = testing::to_cpu_f32(p);  // bf16 widens exactly
                  const int64_t offset = s.info(id).offset;
                  mismatches[r] += std::memcmp(host.data<float>(), want.data<float>() + offset,
                                               host.nbytes()) != 0;
                }
                int resident = 0;
                for (int v = 0; v < units; ++v) resident += s.gathered(v);
                most_resident[r] = std::max(most_resident[r], resident);
              };
              for (int u = 0; u < units; ++u) read_unit(u);       // forward
              for (int u = units - 1; u >= 0; --u) read_unit(u);  // backward
              s.release_all();  // as the trainer does before the step
              // What GradSync's reduce-scatter leaves in the gradient shard (padding stays 0).
              for (const auto& b : zeros[r]->shards().buckets) {
                if (b.own() == 0) continue;
                copy(g.flat_view(b.own_begin, {b.own()}),
                     zeros[r]->shard_grads().flat_view(b.offset, {b.own()}));
              }
              stats[r] = zeros[r]->step(0.01);
              emas[r]->update(s, zeros[r]->steps_taken());
            });
            for (int r = 0; r < dp; ++r) {
              ASSERT_EQ(errors[r], "") << "rank " << r << " step " << step;
              EXPECT_EQ(mismatches[r], 0) << "rank " << r << " step " << step
                                          << ": parameters read not bitwise the shards' values";
              EXPECT_LE(most_resident[r], 2) << "rank " << r << " step " << step;
              EXPECT_GE(most_resident[r], 1) << "rank " << r << " step " << step;
              ASSERT_TRUE(stats[r].applied) << "rank " << r;
              EXPECT_EQ(stats[r].grad_norm, stats[0].grad_norm) << "rank " << r;
            }
            copy(g, ref->grads());
            const StepStats want_stats = adamw.step(0.01);
            EXPECT_NEAR(stats[0].grad_norm, want_stats.grad_norm, 1e-6 * want_stats.grad_norm);
            assembled = assemble(stores);
            EXPECT_ALL_CLOSE(assembled, ref->params(), rtol, absl::StrCat("step ", step));
            // The EMA on the host, from the assembled (device-computed) parameters, with the
            // operations of train/ema.cc: share = (1 - d) p; e = d e; e += share.
            for (int64_t i = 0; i < ema_ref.numel(); ++i) {
              const float share = (1.0f - decay) * assembled.data<float>()[i];
              float& e = ema_ref.data<float>()[i];
              e = decay * e;
              e += share;
            }
            Tensor ema_assembled = Tensor::zeros({ema_ref.numel()}, DType::f32);
            for (int r = 0; r < dp; ++r) {
              const Tensor e = to_device(emas[r]->buffer(), Device::cpu());
              for (const auto& b : zeros[r]->shards().buckets) {
                if (b.own() == 0) continue;
                std::memcpy(ema_assembled.data<float>() + b.own_begin, e.data<float>() + b.offset,
                            size_t(b.own()) * sizeof(float));
              }
            }
            // Element-wise products and sums of the same f32 values: 1e-6 leaves room for a device
            // compiler's contraction into fused multiply-adds.
            EXPECT_ALL_CLOSE(ema_assembled, ema_ref, 1e-6, absl::StrCat("EMA step ", step));
          }
          // gather_full() (a collective: on every rank) is the assembled buffer, bit for bit, and
          // leaves nothing gathered.
          std::vector<Tensor> full(dp);
          const auto errors = on_ranks(group, dp, [&](int r) {
            full[r] = to_device(stores[r]->gather_full(), Device::cpu());
            for (int u = 0; u < units; ++u) {
              EXPECT_FALSE(stores[r]->gathered(u)) << "rank " << r << " unit " << u;
            }
          });
          for (int r = 0; r < dp; ++r) {
            ASSERT_EQ(errors[r], "") << "rank " << r;
            EXPECT_EQ(0, std::memcmp(full[r].raw_data(), assembled.raw_data(), assembled.nbytes()))
                << "rank " << r << ": gather_full differs from the shards";
          }
        }
      }
    }
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(Zero3DeviceTest);

// The gate: stage 3 with train.device CUDA is refused, naming the field and the opt-in, unless
// the opt-in is set (then it loads; the device is only looked for when a trainer starts).
TEST(Zero3CudaGate, RefusedUnlessTheValidationOptInIsSet) {
  const std::string file = tessera::testing::source_path("configs/gpt_tiny.pbtxt");
  const std::vector<std::string> sets = {"parallel.zero_stage=3", "train.device=CUDA"};
  const char* before = std::getenv(kZero3CudaValidationEnv);
  const std::string saved = before ? before : "";
  unsetenv(kZero3CudaValidationEnv);
  const auto refused = load_config(file, sets);
  ASSERT_FALSE(refused.ok());
  const std::string message(refused.status().message());
  EXPECT_NE(message.find("train.device"), std::string::npos) << message;
  EXPECT_NE(message.find("zero_stage = 3"), std::string::npos) << message;
  EXPECT_NE(message.find(std::string(kZero3CudaValidationEnv) + "=1"), std::string::npos)
      << message;
  setenv(kZero3CudaValidationEnv, "0", 1);  // only "1" opts in
  EXPECT_FALSE(load_config(file, sets).ok());
  setenv(kZero3CudaValidationEnv, "1", 1);
  const auto accepted = load_config(file, sets);
  EXPECT_TRUE(accepted.ok()) << accepted.status();
  // Stage 2 on CUDA needs no opt-in.
  unsetenv(kZero3CudaValidationEnv);
  EXPECT_TRUE(load_config(file, {"parallel.zero_stage=2", "train.device=CUDA"}).ok());
  if (before) setenv(kZero3CudaValidationEnv, saved.c_str(), 1);
}

}  // namespace
}  // namespace tessera::train
