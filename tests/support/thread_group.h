#pragma once
// A communication group whose ranks are threads of one test process: the collectives an
// optimizer or a tensor-parallel helper issues, on any device, without MPI or NCCL, so that their
// CUDA variants run on one GPU. Each collective is a rendezvous of the threads: every rank posts
// its tensor, waits for the others, reads what it needs (one rank at a time, copying with copy()),
// and waits again until every rank has read, so a posted tensor is never read after its owner
// moved on. Collectives complete before they return. Reductions add in rank order on the host
// (the same bits on every rank, as MPI gives on one communicator).
//
// Only all_reduce and all_gather exist; the others throw. A rank that fails calls fail() so that
// the others throw instead of waiting forever.

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/timer.h"
#include "distributed/communicator.h"

namespace tessera::testing {

class Rendezvous {
 public:
  explicit Rendezvous(int n) : n_(n), posted_(n) {}
  int size() const { return n_; }

  void exchange(int rank, const Tensor& t, const std::function<void(std::vector<Tensor>&)>& use) {
    std::unique_lock<std::mutex> lock(mu_);
    posted_[rank] = t;
    arrive(lock);
    use(posted_);
    arrive(lock);
  }

  void fail() {
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = true;
    cv_.notify_all();
  }

 private:
  void arrive(std::unique_lock<std::mutex>& lock) {
    TESSERA_CHECK(!broken_, "Rendezvous: another rank failed");
    const int64_t generation = generation_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != generation || broken_; });
    TESSERA_CHECK(!broken_, "Rendezvous: another rank failed");
  }

  const int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  bool broken_ = false;
  std::vector<Tensor> posted_;
};

// One rank of a Rendezvous group, as a Communicator.
class ThreadRank final : public distributed::Communicator {
 public:
  ThreadRank(Rendezvous& group, int rank, std::string name = "threads")
      : group_(group), rank_(rank), name_(std::move(name)) {}

  int rank() const override { return rank_; }
  int size() const override { return group_.size(); }
  const std::string& name() const override { return name_; }
  int64_t last_sequence() const override { return seq_; }
  int world_rank_of(int r) const override { return r; }

  distributed::WorkHandle all_reduce(const Tensor& t, distributed::ReduceOp op) override {
    TESSERA_CHECK(t.dtype() == DType::f32, "ThreadRank::all_reduce: ", t.describe());
    Tensor result = Tensor::zeros(t.shape(), DType::f32);  // host, filled in rank order
    group_.exchange(rank_, t, [&](std::vector<Tensor>& all) {
      float* out = result.data<float>();
      for (int r = 0; r < size(); ++r) {
        const Tensor h = to_device(all[r], Device::cpu());
        const float* in = h.data<float>();
        for (int64_t i = 0; i < t.numel(); ++i) {
          out[i] = op == distributed::ReduceOp::kMax ? (r == 0 ? in[i] : std::max(out[i], in[i]))
                                                     : out[i] + in[i];
        }
      }
      if (op == distributed::ReduceOp::kAvg) {
        for (int64_t i = 0; i < t.numel(); ++i) out[i] /= float(size());
      }
    });
    copy(result, t);  // in place, once every rank has read every input
    return done("all_reduce");
  }
  distributed::WorkHandle all_gather(const Tensor& input, const Tensor& output) override {
    const int64_t n = input.numel();
    TESSERA_CHECK(output.numel() == n * size(), "ThreadRank::all_gather: ", input.describe(),
                  " into ", output.describe());
    group_.exchange(rank_, input, [&](std::vector<Tensor>& all) {
      for (int r = 0; r < size(); ++r) copy(all[r], output.flat_view(r * n, {n}));
    });
    return done("all_gather");
  }
  distributed::WorkHandle reduce_scatter(const Tensor&, const Tensor&,
                                         distributed::ReduceOp) override {
    unused("reduce_scatter");
  }
  distributed::WorkHandle broadcast(const Tensor&, int) override { unused("broadcast"); }
  distributed::WorkHandle send(const Tensor&, int) override { unused("send"); }
  distributed::WorkHandle recv(const Tensor&, int) override { unused("recv"); }
  distributed::WorkHandle barrier() override { unused("barrier"); }
  std::unique_ptr<Communicator> split(int, int, std::string) override { unused("split"); }

 private:
  distributed::WorkHandle done(const char* op) {
    auto work =
        std::make_shared<distributed::Work>(absl::StrCat(op, " #", ++seq_, " on '", name_, "'"));
    work->complete(now_ns());
    return work;
  }
  [[noreturn]] void unused(const char* op) {
    throw_error(absl::StrCat("ThreadRank: ", op, " is not implemented (test double)"));
  }

  Rendezvous& group_;
  const int rank_;
  const std::string name_;
  int64_t seq_ = 0;
};

}  // namespace tessera::testing
