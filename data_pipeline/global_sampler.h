#pragma once
// GlobalSampler: which samples each data-parallel rank reads, batch by batch (docs/DESIGN.md
// decision 5). The order of an epoch is a pure function of (seed, epoch): the shards are permuted,
// the permuted list is cut into windows of `shuffle_window` consecutive shards, and the samples of
// each window are permuted among themselves (so a reader touches few shards at a time, yet
// every epoch is a fresh shuffle). Epoch position p therefore names one (shard, index) pair, on
// any number of ranks.
//
// Global batch g of an epoch holds positions [g*G, (g+1)*G); DP rank r of D reads the slice
// [r*G/D, (r+1)*G/D) of it. TP/PP ranks of one DP replica construct the sampler with the same
// dp_rank and so read the same samples. The state is one Cursor {epoch, position}: saving it and
// seeking a fresh sampler to it (with any dp_size that divides G) continues with exactly the
// samples an uninterrupted run would have read.
//
// Epoch tail: a batch never straddles two epochs. The last N mod G positions of each epoch are
// dropped (as drop_last does); since every epoch is a different permutation, a different set of
// samples is dropped each time. We drop rather than wrap so that "epoch e" means one pass over
// one permutation and a cursor never points into two epochs at once.
//
// Not thread-safe (it caches the current epoch's shard order and window permutations): one
// sampler per rank, called from one thread (the loader's scheduling thread).

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::data {

// What the sampler needs to know about a dataset; the manifest reader fills it.
struct DatasetShape {
  std::vector<int64_t> shard_sizes;  // samples in shard i (0 allowed; negative is an error)
};

struct SamplerConfig {
  uint64_t seed = 0;
  int64_t global_batch = 0;    // G: samples per step over all DP ranks
  int64_t shuffle_window = 1;  // shards whose samples are mixed together (clamped to #shards)
  int dp_rank = 0;
  int dp_size = 1;  // must divide global_batch
};

// One sample: shard number (index into DatasetShape::shard_sizes) and row inside that shard.
struct SampleRef {
  int32_t shard = 0;
  int64_t index = 0;
  friend bool operator==(const SampleRef&, const SampleRef&) = default;
};

// Where the next global batch starts. `position` is an epoch position (a sample count, not a
// batch count) so a cursor means the same thing whatever the DP size.
struct Cursor {
  int64_t epoch = 0;
  int64_t position = 0;
  friend bool operator==(const Cursor&, const Cursor&) = default;
};

class GlobalSampler {
 public:
  // Throws tessera::Error naming the field when the shape or config is unusable: no samples,
  // a negative shard size, G <= 0, G not divisible by dp_size, dp_rank outside [0, dp_size),
  // shuffle_window < 1, or G larger than the dataset (an epoch would hold no batch).
  GlobalSampler(DatasetShape shape, SamplerConfig config);

  // This rank's G/D samples of the global batch at the cursor, in epoch-position order; then
  // the cursor moves to the next batch (into the next epoch when fewer than G positions remain).
  std::vector<SampleRef> next_batch();

  Cursor cursor() const { return cursor_; }
  // Continue from a saved cursor. Requires epoch >= 0 and 0 <= position <= samples(); a
  // position with fewer than G samples left moves to the start of the next epoch.
  void seek(Cursor c);

  // The pure order function: the sample at `position` of `epoch`. 0 <= position < samples().
  SampleRef at(int64_t epoch, int64_t position);
  // The shard permutation of `epoch`: windows are its consecutive groups of window() shards.
  // The loader uses it to open and prefetch shards in the order they will be read.
  std::vector<int32_t> shard_order(int64_t epoch);  // a copy: the cache moves on

  int64_t samples() const { return total_; }
  int64_t batches_per_epoch() const { return total_ / config_.global_batch; }
  int64_t window() const { return window_; }
  int64_t local_batch() const { return config_.global_batch / config_.dp_size; }

 private:
  // Per-epoch plan: the shard order and where each window starts in epoch positions.
  struct EpochPlan {
    int64_t epoch = -1;
    std::vector<int32_t> order;  // permuted shard ids
    // shard_start[s]: samples in order[0..s) (S + 1 entries). Window w covers the positions
    // [shard_start[w*W], shard_start[min((w+1)*W, S)]).
    std::vector<int64_t> shard_start;
  };
  // One window's sample permutation: local position -> local sample (concatenated shards).
  struct WindowPerm {
    int64_t epoch = -1, window = -1;
    std::vector<int64_t> perm;
  };

  const EpochPlan& plan(int64_t epoch);
  int64_t window_begin(const EpochPlan& p, int64_t window) const;
  const std::vector<int64_t>& window_perm(int64_t epoch, int64_t window);
  void normalise();

  DatasetShape shape_;
  SamplerConfig config_;
  uint64_t key_ = 0;  // Philox key for the sampler's streams, derived from the seed
  int64_t total_ = 0;
  int64_t window_ = 1;
  Cursor cursor_;
  EpochPlan plan_;
  WindowPerm cache_[2];  // a batch spans at most a few windows; two cover window crossings
  int next_slot_ = 0;
};

}  // namespace tessera::data
