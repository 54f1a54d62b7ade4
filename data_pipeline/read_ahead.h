#pragma once
// ReadAhead: the read-ahead engine of the data sources (data::Loader for image-text shards,
// train::TextData for token streams). The consumer asks for the batch at a window of stream
// positions (first, count), and its next requests are at first + k * stride (stride = the global
// batch: every micro-batch and DP slice moves by G per step). So while it waits for this one,
// worker threads already run the next `ahead` ones, and the trainer thread receives finished data.
//
// A request is a Job that the caller makes (on its own thread) and a worker runs; the engine only
// keeps the requests (a RequestTable, bounded), orders them (the one asked for ahead of every
// read-ahead, read-ahead in position order) and hands them out when done. What a job holds, how
// it is run and how it reports errors is the caller's. Data order never depends on the engine:
// a job carries its positions, and which worker runs it, or when, does not change its result.
//
// Job: any struct with `int64_t seq` and `bool done` (RequestTable's), which the engine sets.

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/error.h"
#include "data_pipeline/request_table.h"

namespace tessera::data {

template <class Job>
class ReadAhead {
 public:
  using Window = typename RequestTable<Job>::Window;  // (first position, count)
  // Runs one job on a worker and records its result, errors included, in the job; must not
  // throw.
  using Run = std::function<void(Job&)>;

  // Starts `threads` workers. Each calls make_run() once, on its own thread, for the function
  // it runs its jobs with: per-thread state (HDF5 handles, which never cross threads) lives in
  // that function and ends with the thread. Requests read ahead but never asked for are dropped,
  // oldest finished first, beyond max_kept.
  ReadAhead(int threads, size_t max_kept, std::function<Run()> make_run);
  ~ReadAhead();  // stops the workers once their running jobs end; queued jobs are dropped
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  struct Taken {
    std::shared_ptr<Job> job;  // done
    bool was_queued = false;   // an earlier call had requested it (read ahead)
  };

  // The job for `window`, once done. Unless an earlier call requested it, make(window) builds it
  // and it goes to the front of the queue. Then, when stride > 0, the windows first + k * stride
  // (same count) for k = 1..ahead not requested yet are made and queued behind, up to the first
  // one make fails for (the positions end there). make runs on this thread, under the engine's
  // lock: absl::StatusOr<std::shared_ptr<Job>> make(Window). Its error for `window` itself is
  // returned, and then nothing is queued.
  template <class Make>
  absl::StatusOr<Taken> take(Window window, int64_t stride, int ahead, Make&& make);

 private:
  void work(Run run);

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  bool stop_ = false;
  RequestTable<Job> jobs_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> workers_;
};

// Implementation.

template <class Job>
ReadAhead<Job>::ReadAhead(int threads, size_t max_kept, std::function<Run()> make_run)
    : jobs_(max_kept) {
  // With no worker, take() would wait forever.
  TESSERA_CHECK(threads >= 1, "ReadAhead: needs at least one worker thread, got ", threads);
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this, make_run] { work(make_run()); });
}

template <class Job>
ReadAhead<Job>::~ReadAhead() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

template <class Job>
template <class Make>
absl::StatusOr<typename ReadAhead<Job>::Taken> ReadAhead<Job>::take(Window window, int64_t stride,
                                                                    int ahead, Make&& make) {
  std::unique_lock lock(mu_);
  Taken taken;
  taken.job = jobs_.find(window);
  taken.was_queued = taken.job != nullptr;
  if (!taken.job) {
    absl::StatusOr<std::shared_ptr<Job>> made = make(window);
    if (!made.ok()) return made.status();
    taken.job = jobs_.add(window, *std::move(made));
    queue_.push_front(taken.job);  // asked for now: ahead of the read-ahead
  }
  if (stride > 0) {
    for (int k = 1; k <= ahead; ++k) {
      const Window next{window.first + k * stride, window.second};
      if (jobs_.contains(next)) continue;
      absl::StatusOr<std::shared_ptr<Job>> made = make(next);
      if (!made.ok()) break;  // the positions end there: nothing to read ahead
      queue_.push_back(jobs_.add(next, *std::move(made)));
    }
  }
  work_cv_.notify_all();
  done_cv_.wait(lock, [&] { return taken.job->done; });
  jobs_.take(window);
  return taken;
}

template <class Job>
void ReadAhead<Job>::work(Run run) {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = queue_.front();
      queue_.pop_front();
    }
    run(*job);
    std::lock_guard lock(mu_);
    job->done = true;
    done_cv_.notify_all();
  }
}

}  // namespace tessera::data
