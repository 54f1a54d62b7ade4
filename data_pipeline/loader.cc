#include "data_pipeline/loader.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/error.h"
#include "data_pipeline/decode_crop.h"
#include "data_pipeline/read_ahead.h"
#include "data_pipeline/shard_reader.h"

namespace tessera::data {
namespace {

using Key = std::pair<int64_t, int64_t>;  // (first, count) of a batch; (shard, chunk) of a chunk

struct Job {
  int64_t first = 0, count = 0, seq = 0;
  std::vector<SampleRef> refs;
  bool done = false;
  absl::Status status;
  std::shared_ptr<SampleBatch> batch;
};

// The decoded rows of one chunk of one shard.
struct Chunk {
  bool ready = false;
  absl::Status status;
  ShardSamples rows;
  int64_t bytes = 0;
  int64_t last_use = 0;
};

// Batches the consumer has released, kept with their buffers: a recycled batch of the same
// shape is refilled without zeroing or page-faulting megabytes of fresh memory (the loader's
// largest cost before this, measured with perf on bench_loader). Shared with the deleters of
// the batches handed out, so a batch may outlive its Loader.
struct BatchPool {
  std::mutex mu;
  std::vector<std::unique_ptr<SampleBatch>> free;
  static constexpr size_t kMax = 16;

  std::unique_ptr<SampleBatch> take() {
    std::lock_guard lock(mu);
    if (free.empty()) return std::make_unique<SampleBatch>();
    auto b = std::move(free.back());
    free.pop_back();
    return b;
  }
  static std::shared_ptr<SampleBatch> share(std::shared_ptr<BatchPool> pool,
                                            std::unique_ptr<SampleBatch> b) {
    return std::shared_ptr<SampleBatch>(b.release(), [pool](SampleBatch* p) {
      std::unique_ptr<SampleBatch> owned(p);
      std::lock_guard lock(pool->mu);
      if (pool->free.size() < kMax) pool->free.push_back(std::move(owned));
    });
  }
};

// Jobs kept assembled but never asked for (read-ahead past the end of training, evaluation
// positions) are dropped oldest first beyond this many.
constexpr size_t kMaxJobs = 64;

// Image buffers of evicted chunks kept for the next chunk reads (read_chunk reads into them):
// fresh memory costs a page fault and a zeroed page per 4 KiB, more than the read itself
// (perf on bench_loader). A few suffice: a read takes one as an eviction returns one.
constexpr size_t kMaxSpareChunks = 8;

// A worker's open shards (its own HDF5 handles and file mappings), by shard index. At most
// kMaxOpenReaders stay open, the least recently used closed first: each holds an HDF5 file with
// its caches, a file descriptor and a mapping of the whole shard, whose page tables grow with the
// pages read (~0.2 % of the bytes), so a long run over many shards must let them go.
constexpr int kMaxOpenReaders = 64;
struct Readers {
  std::vector<std::unique_ptr<ShardReader>> open;
  std::vector<int64_t> last_use;
  int64_t clock = 0;
  int count = 0;
};

}  // namespace

struct Loader::State {
  std::vector<std::string> paths;
  Order order;
  LoaderOptions options;
  Transform transform;

  // The chunk cache and the statistics; the requests and their queue are read_ahead's.
  std::mutex mu;
  std::condition_variable chunk_cv;
  int64_t clock = 0, cache_bytes = 0;
  std::map<Key, std::shared_ptr<Chunk>> chunks;
  std::vector<ByteBuffer> spare_images;  // evicted chunks' image buffers, for reuse
  LoaderStats stats;
  std::shared_ptr<BatchPool> pool = std::make_shared<BatchPool>();
  // The workers, which assemble jobs with the state above: made last, stopped first.
  std::unique_ptr<ReadAhead<Job>> read_ahead;

  // The job for [first, first + count), or an error when the order has no sample at one of
  // these positions (past the end of a finite order). Caller's thread (read_ahead's make).
  absl::StatusOr<std::shared_ptr<Job>> make_job(int64_t first, int64_t count) {
    auto job = std::make_shared<Job>();
    job->first = first;
    job->count = count;
    job->refs.reserve(count);
    try {
      for (int64_t p = first; p < first + count; ++p) job->refs.push_back(order(p));
    } catch (const std::exception& e) {
      return absl::OutOfRangeError(
          absl::StrCat("loader: positions [", first, ", ", first + count, "): ", e.what()));
    }
    return job;
  }

  void evict() {  // mu held: least recently used ready chunks nobody holds
    while (cache_bytes > options.cache_bytes) {
      auto victim = chunks.end();
      for (auto it = chunks.begin(); it != chunks.end(); ++it)
        if (it->second->ready && it->second.use_count() == 1 &&
            (victim == chunks.end() || it->second->last_use < victim->second->last_use))
          victim = it;
      if (victim == chunks.end()) return;
      cache_bytes -= victim->second->bytes;
      if (victim->second->rows.images.capacity() > 0 && spare_images.size() < kMaxSpareChunks)
        spare_images.push_back(std::move(victim->second->rows.images));
      chunks.erase(victim);
    }
  }

  absl::StatusOr<ShardReader*> reader(Readers& readers, int32_t shard) {
    if (shard < 0 || shard >= int32_t(paths.size()))
      return absl::OutOfRangeError(
          absl::StrCat("loader: shard ", shard, " outside the ", paths.size(), " shards given"));
    if (readers.open.size() < paths.size()) {
      readers.open.resize(paths.size());
      readers.last_use.resize(paths.size());
    }
    readers.last_use[shard] = ++readers.clock;
    if (!readers.open[shard]) {
      if (readers.count >= kMaxOpenReaders) {  // close the least recently used
        int32_t lru = -1;
        for (int32_t i = 0; i < int32_t(readers.open.size()); ++i)
          if (readers.open[i] && (lru < 0 || readers.last_use[i] < readers.last_use[lru])) lru = i;
        readers.open[lru].reset();
        --readers.count;
      }
      auto r = ShardReader::open(paths[shard]);
      if (!r.ok()) return r.status();
      readers.open[shard] = std::move(*r);
      ++readers.count;
    }
    return readers.open[shard].get();
  }

  // The chunk holding `row` of `shard`: from the cache, from another worker reading it, or read
  // here. The whole chunk is read because any read of it costs the whole chunk anyway.
  absl::StatusOr<std::shared_ptr<const Chunk>> chunk(ShardReader& r, int32_t shard, int64_t row) {
    const int64_t rows = r.image_chunk_rows(), c = row / rows;
    const Key key{shard, c};
    std::shared_ptr<Chunk> entry;
    ByteBuffer reuse;
    {
      std::unique_lock lock(mu);
      auto it = chunks.find(key);
      if (it != chunks.end()) {
        entry = it->second;
        chunk_cv.wait(lock, [&] { return entry->ready; });
        entry->last_use = clock++;
        if (!entry->status.ok()) return entry->status;
        return std::shared_ptr<const Chunk>(entry);
      }
      entry = std::make_shared<Chunk>();
      chunks[key] = entry;
      if (!spare_images.empty()) {
        reuse = std::move(spare_images.back());
        spare_images.pop_back();
      }
    }
    auto read = r.read_chunk(c, std::move(reuse), /*map=*/true);
    std::lock_guard lock(mu);
    entry->ready = true;
    entry->last_use = clock++;
    if (read.ok()) {
      entry->rows = std::move(*read);
      const int64_t image_bytes =  // in memory or mapped; encoded: the files
          r.encoded() ? int64_t(entry->rows.images.size())
                      : entry->rows.count * r.resolution() * r.resolution() * 3;
      entry->bytes = image_bytes + int64_t(entry->rows.tokens.size() * 4);
      cache_bytes += entry->bytes;
      ++stats.chunks_read;
      stats.bytes_read += image_bytes;
      evict();
    } else {
      entry->status = read.status();
      chunks.erase(key);  // a later request tries again (and fails again, naming the range)
    }
    chunk_cv.notify_all();
    if (!entry->status.ok()) return entry->status;
    return std::shared_ptr<const Chunk>(entry);
  }

  absl::Status assemble(Job& job, Readers& readers) {
    auto b = BatchPool::share(pool, pool->take());
    b->first = job.first;
    b->count = job.count;
    b->refs = job.refs;
    b->captions.resize(size_t(job.count));  // a recycled batch's strings keep their capacity
    bool encoded = false;
    // Every sample checked first, in batch order (so the first bad sample is the one named).
    for (int64_t i = 0; i < job.count; ++i) {
      const SampleRef ref = job.refs[i];
      auto r = reader(readers, ref.shard);
      if (!r.ok()) return r.status();
      ShardReader& sr = **r;
      if (sr.encoded() && (options.decode.out_size <= 0 || !options.decode.crop))
        return absl::FailedPreconditionError(
            absl::StrCat("shard ", sr.path(),
                         ": holds encoded images (format_version 2) but the "
                         "loader was given no output size to decode them to"));
      if (i == 0) {
        encoded = sr.encoded();
        b->resolution = encoded ? options.decode.out_size : sr.resolution();
        b->token_length = sr.token_length();
        // A recycled batch keeps its buffers: resizing to the same shape touches nothing.
        b->images.resize(size_t(job.count * b->resolution * b->resolution * 3));
        b->tokens.resize(b->token_length > 0 ? size_t(job.count * b->token_length) : 0);
        b->token_lengths.resize(b->token_length > 0 ? size_t(job.count) : 0);
        b->labels.resize(sr.has_labels() ? size_t(job.count) : 0);
      } else if (sr.encoded() != encoded || (!encoded && sr.resolution() != b->resolution) ||
                 sr.token_length() != b->token_length || sr.has_labels() != !b->labels.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("shard ", sr.path(), ": format_version ", sr.format_version(),
                         ", resolution ", sr.resolution(), ", token length ", sr.token_length(),
                         ", labels ", sr.has_labels() ? "yes" : "no", " differ from shard ",
                         paths[job.refs[0].shard], " in the same batch"));
      }
      if (ref.index < 0 || ref.index >= sr.num_samples())
        return absl::OutOfRangeError(absl::StrCat("shard ", sr.path(), ": sample ", ref.index,
                                                  " outside [0, ", sr.num_samples(), ")"));
    }
    // Then filled chunk by chunk (the rows of one chunk in file order, each into its place in
    // the batch): a chunk read for this batch is copied from while its checksum pass has left it
    // in cache, and each chunk is looked up in the shared cache once per batch.
    std::vector<int64_t>& by_chunk = order_scratch();
    by_chunk.resize(size_t(job.count));
    for (int64_t i = 0; i < job.count; ++i) by_chunk[i] = i;
    std::sort(by_chunk.begin(), by_chunk.end(), [&](int64_t x, int64_t y) {
      const SampleRef &a = job.refs[x], &c = job.refs[y];
      return a.shard != c.shard   ? a.shard < c.shard
             : a.index != c.index ? a.index < c.index
                                  : x < y;
    });
    const size_t px = size_t(b->resolution * b->resolution * 3);
    std::shared_ptr<const Chunk> held;  // the chunk being copied from (kept from eviction)
    Key held_key{-1, -1};
    for (const int64_t i : by_chunk) {
      const SampleRef ref = job.refs[i];
      auto r = reader(readers, ref.shard);  // open above, unless a batch spans more shards
      if (!r.ok()) return r.status();       // than kMaxOpenReaders
      ShardReader& sr = **r;
      const Key ck{ref.shard, ref.index / sr.image_chunk_rows()};
      if (ck != held_key) {
        held.reset();
        auto c = chunk(sr, ref.shard, ref.index);
        if (!c.ok()) return c.status();
        held = std::move(*c);
        held_key = ck;
      }
      const ShardSamples& rows = held->rows;
      const int64_t k = ref.index - rows.first;
      if (encoded) {
        const int h = rows.image_sizes[2 * k], w = rows.image_sizes[2 * k + 1];
        const CropBox box = options.decode.crop(job.first + i, ref, h, w);
        // Named only on failure (its messages start with the name, empty here).
        if (absl::Status st = decode_crop(rows.encoded(k), h, w, box, int(b->resolution),
                                          b->images.data() + i * px, &decode_scratch(), "");
            !st.ok())
          return absl::Status(
              st.code(), absl::StrCat("shard ", sr.path(), ", sample ", ref.index, st.message()));
      } else {
        std::memcpy(b->images.data() + i * px, rows.image_data() + k * px, px);
      }
      b->captions[i].assign(rows.captions[k]);
      if (b->token_length > 0) {
        const int64_t L = b->token_length;
        std::copy_n(rows.tokens.begin() + k * L, L, b->tokens.begin() + i * L);
        b->token_lengths[i] = rows.token_lengths[k];
      }
      if (!b->labels.empty()) b->labels[i] = rows.labels[k];
    }
    held.reset();
    if (transform) transform(*b);
    job.batch = std::move(b);
    return absl::OkStatus();
  }

  // The worker thread's decoding buffers (reused: no allocation per image).
  static DecodeScratch& decode_scratch() {
    thread_local DecodeScratch d;
    return d;
  }

  // The worker thread's sort buffer for assemble (reused: no allocation per batch).
  static std::vector<int64_t>& order_scratch() {
    thread_local std::vector<int64_t> v;
    return v;
  }

  // A worker's run of one job, with that worker's own HDF5 handles.
  void run(Job& job, Readers& readers) {
    try {
      job.status = assemble(job, readers);
    } catch (const std::exception& e) {
      job.status = absl::InternalError(absl::StrCat("loader: positions [", job.first, ", ",
                                                    job.first + job.count, "): ", e.what()));
    }
  }
};

Loader::Loader(std::vector<std::string> shard_paths, Order order, LoaderOptions options,
               Transform transform)
    : state_(std::make_unique<State>()) {
  TESSERA_CHECK(options.threads >= 1, "Loader: threads must be >= 1, got ", options.threads);
  TESSERA_CHECK(options.prefetch_batches >= 0, "Loader: prefetch_batches must be >= 0, got ",
                options.prefetch_batches);
  state_->paths = std::move(shard_paths);
  state_->order = std::move(order);
  state_->options = options;
  state_->transform = std::move(transform);
  state_->read_ahead =
      std::make_unique<ReadAhead<Job>>(options.threads, kMaxJobs, [s = state_.get()] {
        return [s, readers = std::make_shared<Readers>()](Job& job) { s->run(job, *readers); };
      });
}

Loader::~Loader() {
  state_->read_ahead.reset();  // stops the workers before the cache they use goes
}

absl::StatusOr<std::shared_ptr<const SampleBatch>> Loader::get(int64_t first, int64_t count) {
  TESSERA_CHECK(first >= 0 && count > 0, "Loader::get: bad range first ", first, " count ", count);
  State& s = *state_;
  const auto start = std::chrono::steady_clock::now();
  auto taken =
      s.read_ahead->take({first, count}, s.options.stride, s.options.prefetch_batches,
                         [&](ReadAhead<Job>::Window w) { return s.make_job(w.first, w.second); });
  if (!taken.ok()) return taken.status();
  {
    std::lock_guard lock(s.mu);
    ++(taken->was_queued ? s.stats.hits : s.stats.misses);
    s.stats.wait_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const Job& job = *taken->job;
  if (!job.status.ok()) return job.status;
  return std::shared_ptr<const SampleBatch>(job.batch);
}

LoaderStats Loader::stats() const {
  std::lock_guard lock(state_->mu);
  return state_->stats;
}

}  // namespace tessera::data
