#include "data_pipeline/global_sampler.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/philox.h"

namespace tessera::data {
namespace {

// The sampler's Philox key is derived from the seed under its own domain constant, so that the
// data order is not correlated with other users of the same seed (weight init uses
// philox_block(seed, stream, ...) with small stream numbers too).
constexpr uint64_t kSamplerDomain = 0x53414d504c455221ull;  // "SAMPLER!"

uint64_t derive_key(uint64_t seed) {
  Philox4x32 r = philox_block(seed, kSamplerDomain, 0);
  return uint64_t(r.v[0]) | (uint64_t(r.v[1]) << 32);
}

// Stream of one shuffle: the epoch in the high half, the purpose in the low half (0: shard
// order, w + 1: samples of window w). Distinct shuffles never share a stream.
uint64_t stream_of(int64_t epoch, uint64_t tag) {
  return (uint64_t(epoch) << 32) | tag;
}

// In-place Fisher-Yates over `v` driven by one Philox stream: step k (swapping position
// n-1-k) uses the k-th 64-bit draw (words 2(k%2), 2(k%2)+1 of block k/2). The draw is mapped to
// [0, i] by a 128-bit multiply (Lemire) without rejection: the bias is at most (i+1)/2^64,
// far below anything observable, and no rejection keeps the draw count fixed per step.
template <typename T>
void keyed_shuffle(std::vector<T>& v, uint64_t key, uint64_t stream) {
  const int64_t n = int64_t(v.size());
  Philox4x32 block{};
  for (int64_t k = 0; k + 1 < n; ++k) {
    if (k % 2 == 0) block = philox_block(key, stream, uint64_t(k / 2));
    const int w = int(k % 2) * 2;
    const uint64_t r = uint64_t(block.v[w]) | (uint64_t(block.v[w + 1]) << 32);
    const int64_t i = n - 1 - k;
    const int64_t j = int64_t((static_cast<unsigned __int128>(r) * uint64_t(i + 1)) >> 64);
    std::swap(v[size_t(i)], v[size_t(j)]);
  }
}

}  // namespace

GlobalSampler::GlobalSampler(DatasetShape shape, SamplerConfig config)
    : shape_(std::move(shape)), config_(config), key_(derive_key(config.seed)) {
  const auto& sizes = shape_.shard_sizes;
  TESSERA_CHECK(!sizes.empty(), "GlobalSampler: the dataset has no shards (shard_sizes is empty)");
  TESSERA_CHECK(sizes.size() < size_t(std::numeric_limits<int32_t>::max()),
                "GlobalSampler: ", sizes.size(), " shards exceed the int32 shard id range");
  for (size_t i = 0; i < sizes.size(); ++i) {
    TESSERA_CHECK(sizes[i] >= 0, "GlobalSampler: shard_sizes[", i, "] = ", sizes[i],
                  " is negative");
    total_ += sizes[i];
  }
  TESSERA_CHECK(total_ > 0, "GlobalSampler: the dataset is empty (", sizes.size(),
                " shards, 0 samples)");
  const int64_t G = config_.global_batch;
  TESSERA_CHECK(G > 0, "GlobalSampler: global_batch must be positive, got ", G);
  TESSERA_CHECK(config_.dp_size > 0, "GlobalSampler: dp_size must be positive, got ",
                config_.dp_size);
  TESSERA_CHECK(config_.dp_rank >= 0 && config_.dp_rank < config_.dp_size,
                "GlobalSampler: dp_rank ", config_.dp_rank,
                " is outside [0, dp_size=", config_.dp_size, ")");
  TESSERA_CHECK(G % config_.dp_size == 0, "GlobalSampler: global_batch ", G,
                " is not divisible by dp_size ", config_.dp_size,
                " (every DP rank must read the same number of samples)");
  TESSERA_CHECK(G <= total_, "GlobalSampler: global_batch ", G, " is larger than the dataset (",
                total_, " samples in ", sizes.size(), " shards): an epoch would hold no batch");
  TESSERA_CHECK(config_.shuffle_window >= 1, "GlobalSampler: shuffle_window must be >= 1, got ",
                config_.shuffle_window);
  window_ = std::min<int64_t>(config_.shuffle_window, int64_t(sizes.size()));
}

const GlobalSampler::EpochPlan& GlobalSampler::plan(int64_t epoch) {
  TESSERA_CHECK(epoch >= 0 && epoch <= int64_t(std::numeric_limits<uint32_t>::max()),
                "GlobalSampler: epoch ", epoch, " is outside [0, 2^32)");
  if (plan_.epoch == epoch) return plan_;
  const int64_t S = int64_t(shape_.shard_sizes.size());
  plan_.order.resize(size_t(S));
  std::iota(plan_.order.begin(), plan_.order.end(), 0);
  keyed_shuffle(plan_.order, key_, stream_of(epoch, 0));
  plan_.shard_start.assign(size_t(S + 1), 0);
  for (int64_t s = 0; s < S; ++s)
    plan_.shard_start[size_t(s + 1)] =
        plan_.shard_start[size_t(s)] + shape_.shard_sizes[size_t(plan_.order[size_t(s)])];
  plan_.epoch = epoch;
  return plan_;
}

std::vector<int32_t> GlobalSampler::shard_order(int64_t epoch) {
  return plan(epoch).order;
}

int64_t GlobalSampler::window_begin(const EpochPlan& p, int64_t window) const {
  return p.shard_start[size_t(std::min<int64_t>(window * window_, int64_t(p.order.size())))];
}

const std::vector<int64_t>& GlobalSampler::window_perm(int64_t epoch, int64_t window) {
  for (const WindowPerm& c : cache_)
    if (c.epoch == epoch && c.window == window) return c.perm;
  const EpochPlan& p = plan(epoch);
  WindowPerm& c = cache_[next_slot_];
  next_slot_ = 1 - next_slot_;
  const int64_t n = window_begin(p, window + 1) - window_begin(p, window);
  c.perm.resize(size_t(n));
  std::iota(c.perm.begin(), c.perm.end(), 0);
  keyed_shuffle(c.perm, key_, stream_of(epoch, uint64_t(window) + 1));
  c.epoch = epoch;
  c.window = window;
  return c.perm;
}

SampleRef GlobalSampler::at(int64_t epoch, int64_t position) {
  TESSERA_CHECK(position >= 0 && position < total_, "GlobalSampler: position ", position,
                " is outside the epoch [0, ", total_, ")");
  const EpochPlan& p = plan(epoch);
  // The permuted shard holding `position` in the unshuffled concatenation: the last one starting
  // at or before it (empty shards share a start with the next one; upper_bound skips them).
  const auto it = std::upper_bound(p.shard_start.begin(), p.shard_start.end(), position);
  const int64_t w = (int64_t(it - p.shard_start.begin()) - 1) / window_;
  const int64_t begin = window_begin(p, w);
  // Shuffle within the window, then map the window-local sample back through the concatenation.
  const int64_t q = begin + window_perm(epoch, w)[size_t(position - begin)];
  const auto jt = std::upper_bound(p.shard_start.begin(), p.shard_start.end(), q);
  const int64_t s = int64_t(jt - p.shard_start.begin()) - 1;
  return SampleRef{p.order[size_t(s)], q - p.shard_start[size_t(s)]};
}

void GlobalSampler::normalise() {
  if (cursor_.position + config_.global_batch > total_) {
    cursor_.epoch += 1;
    cursor_.position = 0;
  }
}

void GlobalSampler::seek(Cursor c) {
  TESSERA_CHECK(c.epoch >= 0, "GlobalSampler::seek: epoch ", c.epoch, " is negative");
  TESSERA_CHECK(c.position >= 0 && c.position <= total_, "GlobalSampler::seek: position ",
                c.position, " is outside [0, ", total_, "] (the dataset has ", total_,
                " samples; was the cursor saved for another dataset?)");
  cursor_ = c;
  normalise();
}

std::vector<SampleRef> GlobalSampler::next_batch() {
  const int64_t L = local_batch();
  const int64_t first = cursor_.position + int64_t(config_.dp_rank) * L;
  std::vector<SampleRef> out;
  out.reserve(size_t(L));
  for (int64_t p = first; p < first + L; ++p) out.push_back(at(cursor_.epoch, p));
  cursor_.position += config_.global_batch;
  normalise();
  return out;
}

}  // namespace tessera::data
