#pragma once
// Loader: assembles the samples at a run of global stream positions from HDF5 shards on worker
// threads, ahead of the trainer (docs/DESIGN.md data flow: reader threads, decode, batch).
//
// Why it is built this way (FORMAT.md has the measurements on this project's machine):
// - A single-sample read costs a whole chunk read + Fletcher32 check (random 1-sample reads are
//   ~60x slower than whole chunks, ~1000x with gzip), so workers read WHOLE chunks of 'images'
//   (and the same rows of the other datasets) and keep them in an LRU cache of decoded chunks.
//   The sampler shuffles within a window of shards, so a cache that holds a window's chunks reads
//   each chunk once per epoch (256 MiB holds 8 shards of 1,024 64x64 samples).
// - Positions are known in advance: the consumer asks batch(first, count) and its next requests
//   are at first + k * stride (stride = the global batch: every micro-batch and DP slice moves by
//   G per step), so get() queues those batches and workers assemble them while the trainer
//   computes. The queue is bounded (prefetch_batches per distinct request) so memory is too.
// - A transform (normalisation, augmentation keyed by sample position) runs on the workers too,
//   so the trainer thread receives finished data.
// - Each worker opens its own ShardReader per shard, in its own thread and process: HDF5 handles
//   never cross fork() (pytorch#11929) and are never shared between threads. At most 64 stay
//   open per worker (least recently used closed), as each maps its whole shard.
// - A batch is filled chunk by chunk (its samples sorted by shard and row, each copied to its own
//   place, so the result is the same): a chunk read for the batch is copied from right after its
//   checksum pass, while it is in cache, and each chunk is looked up once per batch.
//
// Order is not the loader's business: `refs` passed to get() come from the caller's sampler
// (GlobalSampler is single-threaded), so data order stays a function of (seed, epoch, position).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data_pipeline/augment.h"
#include "data_pipeline/buffer.h"
#include "data_pipeline/global_sampler.h"

namespace tessera::data {

// Encoded (format version 2) shards: every sample is decoded on the workers and cropped to
// out_size x out_size (data_pipeline/decode_crop.h). `crop` gives the box of sample `ref` at
// stream position `position` in its height x width image; it runs on the workers, so it must be
// thread-safe, and a pure function of its arguments so that data never depends on the thread
// count.
struct DecodeOptions {
  int out_size = 0;
  std::function<CropBox(int64_t position, SampleRef ref, int height, int width)> crop;
};

struct LoaderOptions {
  int threads = 2;           // worker threads (each reads chunks and assembles batches)
  int prefetch_batches = 4;  // batches queued ahead of each request (0: no read-ahead)
  int64_t stride = 0;        // positions between a request and the consumer's next (0: none)
  int64_t cache_bytes = int64_t(256) << 20;  // decoded chunks kept, least recently used evicted
  DecodeOptions decode;                      // required by encoded shards, unused by pixel shards
};

// Samples at consecutive positions, in position order.
struct SampleBatch {
  int64_t first = 0, count = 0;
  int64_t resolution = 0, token_length = 0;
  ByteBuffer images;                   // (count, R, R, 3); encoded shards: R = decode.out_size
  std::vector<std::string> captions;   // count
  std::vector<int32_t> tokens;         // (count, L); empty when the shards have none
  std::vector<int32_t> token_lengths;  // (count,); empty when the shards have none
  std::vector<int32_t> labels;         // (count,); empty when the shards have none
  std::vector<SampleRef> refs;         // (count,): which sample each row is
  FloatBuffer pixels;                  // filled by the transform, if any
};

struct LoaderStats {
  int64_t chunks_read = 0;
  int64_t bytes_read = 0;   // image bytes of the chunks read
  int64_t hits = 0;         // batches found assembled (or in progress) when asked for
  int64_t misses = 0;       // batches not queued before they were asked for
  double wait_seconds = 0;  // time get() blocked
};

class Loader {
 public:
  // Maps a position to its sample; called on the caller's thread only.
  using Order = std::function<SampleRef(int64_t position)>;
  // Runs on a worker after a batch is assembled; must be thread-safe.
  using Transform = std::function<void(SampleBatch&)>;

  // shard_paths[i] is shard i of the SampleRefs. Nothing is opened until the first read.
  Loader(std::vector<std::string> shard_paths, Order order, LoaderOptions options,
         Transform transform = {});
  ~Loader();  // stops the workers; queued batches are dropped
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The samples at positions [first, first + count). Blocks until they are assembled, then
  // queues [first + k*stride, ... + count) for k = 1..prefetch_batches. Errors (missing shard,
  // checksum mismatch) name the shard file and the sample range.
  absl::StatusOr<std::shared_ptr<const SampleBatch>> get(int64_t first, int64_t count);

  LoaderStats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace tessera::data
