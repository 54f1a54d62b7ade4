#pragma once
// The bookkeeping of the read-ahead engine (read_ahead.h, which data::Loader and
// train::TextData run on): batch requests keyed by their window (first position, count),
// numbered in the order they were made. A request read ahead but never asked for (read-
// ahead past the end of training, evaluation positions) stays until the table holds more than
// its bound; then the oldest finished ones go first. Not thread-safe: callers hold their mutex.
//
// Job: any struct with `int64_t seq` and `bool done`.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>

namespace tessera::data {

template <class Job>
class RequestTable {
 public:
  using Window = std::pair<int64_t, int64_t>;  // (first position, count)

  explicit RequestTable(size_t max_kept) : max_kept_(max_kept) {}

  // The request for `window`, or null.
  std::shared_ptr<Job> find(Window window) const {
    auto it = jobs_.find(window);
    return it == jobs_.end() ? nullptr : it->second;
  }
  bool contains(Window window) const { return jobs_.count(window) > 0; }

  // Records `job` (numbered next) for `window`, replacing any earlier one; returns it.
  std::shared_ptr<Job> add(Window window, std::shared_ptr<Job> job) {
    job->seq = next_seq_++;
    jobs_[window] = job;
    return job;
  }

  // Forgets the request for `window` (it was handed out), then trims to the bound.
  void take(Window window) {
    jobs_.erase(window);
    trim();
  }

  size_t size() const { return jobs_.size(); }

 private:
  void trim() {
    while (jobs_.size() > max_kept_) {
      auto oldest = jobs_.end();
      for (auto it = jobs_.begin(); it != jobs_.end(); ++it)
        if (it->second->done && (oldest == jobs_.end() || it->second->seq < oldest->second->seq))
          oldest = it;
      if (oldest == jobs_.end()) return;  // all still being read: they finish first
      jobs_.erase(oldest);
    }
  }

  size_t max_kept_;
  int64_t next_seq_ = 0;
  std::map<Window, std::shared_ptr<Job>> jobs_;
};

}  // namespace tessera::data
