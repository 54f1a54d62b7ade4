#pragma once
// Names and constants of the shard format (data_pipeline/FORMAT.md, format_version 1: decoded
// pixels; 2: encoded images). The writer, the reader, tests/reference/shard_h5py.py and FORMAT.md
// must agree on these.

#include <cstdint>

namespace tessera::data::shard {

inline constexpr int64_t kFormatVersion = 1;   // decoded pixels, one fixed resolution
inline constexpr int64_t kEncodedVersion = 2;  // encoded JPEG/PNG bytes, any size per sample

// Datasets.
inline constexpr const char* kImages = "images";                   // (N, H, W, 3) uint8
inline constexpr const char* kCaptions = "captions";               // (total bytes,) uint8
inline constexpr const char* kCaptionOffsets = "caption_offsets";  // (N + 1,) int64
inline constexpr const char* kTokens = "tokens";                   // (N, L) int32, optional
inline constexpr const char* kTokenLengths = "token_lengths";      // (N,) int32, with tokens
inline constexpr const char* kLabels = "labels";                   // (N,) int32, optional
// Version 2 instead of kImages: the encoded files, bytes + offsets as captions.
inline constexpr const char* kImageBytes = "image_bytes";        // (total bytes,) uint8
inline constexpr const char* kImageOffsets = "image_offsets";    // (N + 1,) int64
inline constexpr const char* kImageSizes = "image_sizes";        // (N, 2) int32: stored (H, W)
inline constexpr const char* kOriginalSizes = "original_sizes";  // (N, 2) int32: input (H, W)

// File attributes.
inline constexpr const char* kAttrFormatVersion = "format_version";  // int64
// Version 1: H == W of every image. Version 2: the longest side images were limited to at pack
// time (0: inputs stored as they came).
inline constexpr const char* kAttrResolution = "resolution";   // int64
inline constexpr const char* kAttrTokenizer = "tokenizer";     // string ("" = none)
inline constexpr const char* kAttrNumSamples = "num_samples";  // int64, N

// Default chunk extents (samples or elements along the first axis); see FORMAT.md for the
// measurements behind them.
// Image chunks: as many samples as fit in kImageChunkBytes, at most kMaxImageChunk (64 at
// 64x64, 5 at 256x256). Any read verifies whole chunks, so this bounds the bytes one random
// single-sample read touches while keeping sequential reads near their best rate.
inline constexpr int64_t kImageChunkBytes = int64_t{1} << 20;
inline constexpr int64_t kMaxImageChunk = 64;            // samples
inline constexpr int64_t kDefaultCaptionChunk = 65536;   // bytes
inline constexpr int64_t kDefaultPerSampleChunk = 4096;  // offsets, lengths, labels

// Limits a reader enforces when it opens a shard (ShardReader::open, TextShardReader::open), so
// that a corrupt or hostile file cannot make it allocate without bound (an HDF5 dataset's extent
// and chunk shape are free: unwritten chunks read as zeros, and a gzip chunk inflates to its
// declared size). Each is far above any real shard; packing enforces the same (pack.cc).
inline constexpr int64_t kMaxImagePixels = int64_t{16384} * 16384;  // resolution^2, as at decode
inline constexpr int64_t kMaxSamples = int64_t{1} << 24;            // per shard (offsets: 128 MiB)
inline constexpr int64_t kMaxCaptionBytes = int64_t{1} << 20;       // one caption
inline constexpr int64_t kMaxTokenLength = int64_t{1} << 16;        // L of 'tokens'
inline constexpr int64_t kMaxChunkBytes = int64_t{1} << 30;         // one chunk of any dataset
// Version 2: 'image_bytes' chunks of 256 KiB (HDF5 stores a shard's last, partial chunk whole,
// so this is also the most a shard wastes: small against 1,024 JPEGs of 10-30 KB), and groups of
// 64 samples (the chunk rows of 'image_sizes' and 'tokens'), the unit the loader reads.
inline constexpr int64_t kImageByteChunk = int64_t{1} << 18;  // bytes
inline constexpr int64_t kEncodedChunkRows = 64;              // samples

inline int64_t default_image_chunk(int64_t resolution) {
  const int64_t fit = kImageChunkBytes / (resolution * resolution * 3);
  return fit < 1 ? 1 : (fit > kMaxImageChunk ? kMaxImageChunk : fit);
}

}  // namespace tessera::data::shard
