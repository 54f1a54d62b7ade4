// The version 2 (encoded images) paths of ShardReader, and decode_crop on what they return, on
// small HDF5 shards built from the input. The input is
//   [u16 LE: control length C][C control bytes][images: (u32 LE length, bytes)...]
// The images (JPEG or PNG seeds, mutated by libFuzzer byte for byte) become 'image_bytes'; the
// control bytes (FuzzedDataProvider) decide everything else: attributes (format_version,
// resolution, num_samples, tokenizer), image_offsets / image_sizes / original_sizes values
// (consistent with the images unless perturbed), dtypes, shapes, chunk shapes, filters, the
// other datasets, a flipped byte in a stored chunk, and the crops. A control value of 0 always
// means "as the writer would" (so an empty control block gives a valid shard of the images,
// which the seeds rely on). From open() on everything is tessera's: open, read, read_chunk
// (mapped and not), verify (which decodes every image), decode_crop with boxes from the input.
// Each must end in a result or an error naming the file (or the sample); results must have the
// sizes the shard declares. HDF5's own parser is not the target: libhdf5 writes every file.
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "data_pipeline/augment.h"
#include "data_pipeline/decode_crop.h"
#include "data_pipeline/image_decode.h"
#include "data_pipeline/shard_format.h"
#include "data_pipeline/shard_reader.h"
#include "hdf5/hdf5_util.h"
#include "tests/fuzz/flip_chunk.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using tessera::hdf5::H5Handle;
namespace shard = tessera::data::shard;

constexpr size_t kMaxImages = 8;
// Seeds decode in microseconds; a header may declare more (verify then decodes it whole).
constexpr int64_t kSeedPixels = int64_t{1} << 20;

// 0 -> `consistent`; otherwise, rarely, a near miss or any value.
template <typename T>
T perturb(FuzzedDataProvider& in, T consistent) {
  switch (in.ConsumeIntegralInRange(0, 31)) {
    case 31:
      return in.ConsumeIntegral<T>();
    case 30:
      return T(consistent + in.ConsumeIntegralInRange<int>(-2, 2));
    case 29:
      return in.ConsumeIntegralInRange<T>(-2, 9);
    default:
      return consistent;
  }
}

bool rarely(FuzzedDataProvider& in, int one_in) {
  return in.ConsumeIntegralInRange(0, one_in - 1) == one_in - 1;
}

hid_t pick_int_type(FuzzedDataProvider& in, hid_t wanted) {
  static const hid_t kTypes[] = {H5T_STD_U8LE,  H5T_STD_I8LE,  H5T_STD_I32LE, H5T_STD_I32BE,
                                 H5T_STD_U32LE, H5T_STD_I64LE, H5T_STD_I64BE, H5T_IEEE_F32LE};
  if (!rarely(in, 16)) return wanted;
  return kTypes[in.ConsumeIntegralInRange<size_t>(0, std::size(kTypes) - 1)];
}

void write_int_attr(FuzzedDataProvider& in, hid_t file, const char* name, int64_t value) {
  if (rarely(in, 32)) return;  // missing
  const hid_t type = pick_int_type(in, H5T_STD_I64LE);
  H5Handle space(H5Screate(H5S_SCALAR));
  H5Handle attr(H5Acreate2(file, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (attr.valid()) H5Awrite(attr.get(), H5T_NATIVE_INT64, &value);
}

void write_tokenizer(FuzzedDataProvider& in, hid_t file) {
  if (rarely(in, 32)) return;
  const std::string value = rarely(in, 4) ? in.ConsumeRandomLengthString(16) : "";
  H5Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Handle space(H5Screate(H5S_SCALAR));
  H5Handle attr(
      H5Acreate2(file, shard::kAttrTokenizer, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  const char* p = value.c_str();
  if (attr.valid()) H5Awrite(attr.get(), type.get(), &p);
}

// Dataset `name` of `shape` (rarely another rank or extent, type, chunking, filters) holding
// `bytes` (of `wanted`, native order; rarely replaced by input bytes). `chunk_rows`: the writer's
// chunk along the first axis (rarely another).
void write_dataset(FuzzedDataProvider& in, hid_t file, const char* name, hid_t wanted,
                   std::vector<hsize_t> shape, std::vector<uint8_t> bytes, hsize_t chunk_rows) {
  if (rarely(in, 32)) return;  // missing
  if (rarely(in, 32)) {
    shape.resize(in.ConsumeIntegralInRange<size_t>(1, 3));
    for (auto& d : shape) d = in.ConsumeIntegralInRange<hsize_t>(0, 9);
  } else if (shape.size() == 1 && rarely(in, 32)) {
    // A large extent with few chunks ever written: the file stays small, what it declares not.
    shape[0] = in.ConsumeIntegralInRange<hsize_t>(0, hsize_t{1} << 40);
  }
  const hid_t type = pick_int_type(in, wanted);
  // As the writer: extendible along the first axis (so chunks may exceed the extent), chunked.
  std::vector<hsize_t> max_shape(shape);
  const bool chunked = !rarely(in, 32);
  if (chunked && !rarely(in, 8)) max_shape[0] = H5S_UNLIMITED;
  H5Handle space(H5Screate_simple(int(shape.size()), shape.data(), max_shape.data()));
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (chunked) {
    std::vector<hsize_t> chunk(shape);
    chunk[0] = rarely(in, 8) ? in.ConsumeIntegralInRange<hsize_t>(1, shape[0] + 2) : chunk_rows;
    for (auto& c : chunk) c = std::max<hsize_t>(1, c);
    if (rarely(in, 8)) chunk.back() = in.ConsumeIntegralInRange<hsize_t>(1, chunk.back() + 1);
    H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data());
    if (rarely(in, 8)) H5Pset_shuffle(dcpl.get());
    if (rarely(in, 6)) H5Pset_deflate(dcpl.get(), 1);
    if (!rarely(in, 16)) H5Pset_fletcher32(dcpl.get());
  }
  H5Handle dset(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!dset.valid()) return;
  size_t n = H5Tget_size(type);
  for (hsize_t d : shape) n *= d;
  if (n == 0 || n > (size_t{1} << 20) || rarely(in, 32)) return;  // rarely never written
  if (type != wanted || bytes.size() != n || rarely(in, 32)) {
    bytes = in.ConsumeBytes<uint8_t>(n);
    bytes.resize(n);
  }
  H5Dwrite(dset.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
}

// The datasets whose stored chunks the harness may corrupt (tests/fuzz/flip_chunk.h).
constexpr const char* kFlippable[] = {shard::kImageBytes, shard::kImageOffsets,
                                      shard::kImageSizes, shard::kOriginalSizes,
                                      shard::kCaptions,   shard::kTokens};

bool names(const absl::Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

// The images of the input: (u32 LE length, bytes) records, the last one possibly cut short.
std::vector<std::vector<uint8_t>> split_images(const uint8_t* p, size_t size) {
  std::vector<std::vector<uint8_t>> images;
  while (size >= 4 && images.size() < kMaxImages) {
    uint32_t len;
    std::memcpy(&len, p, 4);
    p += 4, size -= 4;
    const size_t n = std::min<size_t>(len, size);
    images.emplace_back(p, p + n);
    p += n, size -= n;
  }
  return images;
}

// decode_crop of every sample of `got` at a size and boxes from the input: within the recorded
// H x W (the function's contract) by sample_crop or directly. Errors name the sample.
void crop_all(FuzzedDataProvider& in, const tessera::data::ShardSamples& got) {
  tessera::data::DecodeScratch scratch;
  for (int64_t k = 0; k < got.count; ++k) {
    const int h = got.image_sizes[size_t(2 * k)], w = got.image_sizes[size_t(2 * k + 1)];
    // Once the control bytes run out (values 0), sizes still vary from sample to sample, so
    // that small outputs from larger crops reach the reduced (k = 2, 4, 8) decodes.
    static const int kSizes[] = {8, 1, 2, 4, 3, 24};
    const int S = kSizes[size_t(in.ConsumeIntegralInRange(0, 5) + k) % std::size(kSizes)];
    tessera::data::CropBox box;
    if (!in.ConsumeBool()) {
      tessera::data::AugmentConfig config;
      config.out_size = S;
      config.random_crop = !in.ConsumeBool();
      tessera::data::AugmentKey key{in.ConsumeIntegral<uint64_t>(), 0, got.first + k};
      box = tessera::data::sample_crop(h, w, config, key);
    } else {
      box.top = in.ConsumeIntegralInRange(0, h - 1);
      box.left = in.ConsumeIntegralInRange(0, w - 1);
      box.height = in.ConsumeIntegralInRange(1, h - box.top);
      box.width = in.ConsumeIntegralInRange(1, w - box.left);
      box.flip = in.ConsumeBool();
    }
    TESSERA_FUZZ_ASSERT(box.top >= 0 && box.left >= 0 && box.height >= 1 && box.width >= 1 &&
                        box.top + box.height <= h && box.left + box.width <= w);
    if (rarely(in, 16)) {  // outside the contract: decode_crop must refuse it (InvalidArgument)
      box.top = in.ConsumeIntegral<int>();
      box.left = in.ConsumeIntegral<int>();
      box.height = in.ConsumeIntegral<int>();
      box.width = in.ConsumeIntegral<int>();
    }
    std::vector<uint8_t> out(size_t(S) * S * 3);
    const std::string name = "fuzz-sample-" + std::to_string(got.first + k);
    const absl::Status s =
        tessera::data::decode_crop(got.encoded(k), h, w, box, S, out.data(), &scratch, name);
    if (!s.ok()) TESSERA_FUZZ_ASSERT(names(s, name));
    const bool in_image = box.top >= 0 && box.left >= 0 && box.height >= 1 && box.width >= 1 &&
                          int64_t(box.top) + box.height <= h && int64_t(box.left) + box.width <= w;
    if (!in_image) TESSERA_FUZZ_ASSERT(s.code() == absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = (H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr), true);
  (void)quiet;
  size_t control = 0;
  if (size >= 2) control = std::min<size_t>(size - 2, size_t(data[0]) | size_t(data[1]) << 8);
  const uint8_t* ctl = data + std::min<size_t>(size, 2);
  FuzzedDataProvider in(ctl, control);
  const std::vector<std::vector<uint8_t>> images =
      split_images(ctl + control, size - std::min<size_t>(size, 2) - control);
  const int64_t n = int64_t(images.size());
  const std::string path = tessera::fuzz::scratch_dir() + "/shard_v2.h5";

  // The index as the writer makes it: offsets of the concatenated files, sizes from their
  // headers (decoded here; 1 x 1 for a file that does not decode), then perturbed.
  std::vector<uint8_t> bytes;
  std::vector<int64_t> offsets{0};
  std::vector<int32_t> sizes, original;
  for (const auto& image : images) {
    bytes.insert(bytes.end(), image.begin(), image.end());
    offsets.push_back(perturb<int64_t>(in, int64_t(bytes.size())));
    auto decoded = tessera::data::decode_image(image, "seed", kSeedPixels);
    const int32_t h = decoded.ok() ? decoded->height : 1, w = decoded.ok() ? decoded->width : 1;
    sizes.push_back(perturb<int32_t>(in, h));
    sizes.push_back(perturb<int32_t>(in, w));
    original.push_back(perturb<int32_t>(in, h * (1 + in.ConsumeIntegralInRange(0, 3))));
    original.push_back(perturb<int32_t>(in, w));
  }
  offsets[0] = perturb<int64_t>(in, 0);
  // Rarely 'image_bytes' declares far more than it holds (its chunks never written: the file
  // stays small, its extent does not), the index agreeing with what it declares.
  int64_t declared = int64_t(bytes.size());
  if (n > 0 && rarely(in, 32)) {
    declared = in.ConsumeIntegralInRange<int64_t>(0, int64_t{1} << 40);
    offsets.back() = declared;
  }
  // Captions (a few bytes each), and optionally tokens and labels, consistent unless perturbed.
  std::vector<int64_t> caption_offsets{0};
  for (int64_t i = 0; i < n; ++i)
    caption_offsets.push_back(caption_offsets.back() + in.ConsumeIntegralInRange<int64_t>(0, 4));
  const int64_t L = in.ConsumeIntegralInRange<int64_t>(1, 4);
  std::vector<int32_t> lengths(size_t(n), 0);
  for (auto& l : lengths)
    l = perturb<int32_t>(in, int32_t(in.ConsumeIntegralInRange<int64_t>(0, L)));

  const hsize_t un = hsize_t(n);
  // Chunk rows: image_sizes (read_chunk's group) and tokens 1-4 samples so that a few images make
  // several groups; image_bytes chunks of 64 B - 4 KiB so that a group spans several.
  const hsize_t group = in.ConsumeIntegralInRange<hsize_t>(1, 4);
  const hsize_t byte_chunk = hsize_t(64) << in.ConsumeIntegralInRange(0, 6);
  {
    H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    if (!file.valid()) return 0;
    const hid_t f = file.get();
    write_int_attr(in, f, shard::kAttrFormatVersion, perturb<int64_t>(in, shard::kEncodedVersion));
    write_int_attr(in, f, shard::kAttrResolution, perturb<int64_t>(in, 0));
    write_tokenizer(in, f);
    write_dataset(in, f, shard::kImageBytes, H5T_STD_U8LE, {hsize_t(declared)}, bytes, byte_chunk);
    write_dataset(in, f, shard::kImageOffsets, H5T_STD_I64LE, {un + 1},
                  tessera::fuzz::as_bytes(offsets), 4096);
    write_dataset(in, f, shard::kImageSizes, H5T_STD_I32LE, {un, 2}, tessera::fuzz::as_bytes(sizes),
                  group);
    write_dataset(in, f, shard::kOriginalSizes, H5T_STD_I32LE, {un, 2},
                  tessera::fuzz::as_bytes(original), 4096);
    std::vector<uint8_t> captions(size_t(caption_offsets.back()), 'a');
    write_dataset(in, f, shard::kCaptions, H5T_STD_U8LE, {captions.size()}, captions, 65536);
    write_dataset(in, f, shard::kCaptionOffsets, H5T_STD_I64LE, {un + 1},
                  tessera::fuzz::as_bytes(caption_offsets), 4096);
    if (rarely(in, 2)) {
      std::vector<int32_t> tokens(size_t(n * L), 7);
      write_dataset(in, f, shard::kTokens, H5T_STD_I32LE, {un, hsize_t(L)},
                    tessera::fuzz::as_bytes(tokens), group);
      write_dataset(in, f, shard::kTokenLengths, H5T_STD_I32LE, {un},
                    tessera::fuzz::as_bytes(lengths), 4096);
    }
    if (rarely(in, 2))
      write_dataset(in, f, shard::kLabels, H5T_STD_I32LE, {un}, tessera::fuzz::as_bytes(lengths),
                    4096);
    // num_samples last, as finish() writes it.
    write_int_attr(in, f, shard::kAttrNumSamples, perturb<int64_t>(in, n));
  }
  if (rarely(in, 8)) tessera::fuzz::flip_in_chunk(in, path, kFlippable);

  auto opened = tessera::data::ShardReader::open(path);
  if (!opened.ok()) {
    TESSERA_FUZZ_ASSERT(names(opened.status(), path));
    return 0;
  }
  tessera::data::ShardReader& s = **opened;
  const int64_t samples = s.num_samples();
  auto check = [&](const absl::StatusOr<tessera::data::ShardSamples>& got, int64_t count,
                   bool crop) {
    if (!got.ok()) {
      TESSERA_FUZZ_ASSERT(names(got.status(), path));
      return;
    }
    TESSERA_FUZZ_ASSERT(got->count == count && int64_t(got->captions.size()) == count);
    if (s.encoded()) {
      TESSERA_FUZZ_ASSERT(int64_t(got->image_offsets.size()) == count + 1);
      TESSERA_FUZZ_ASSERT(int64_t(got->image_sizes.size()) == 2 * count);
      TESSERA_FUZZ_ASSERT(got->image_offsets[0] == 0 &&
                          got->image_offsets.back() == int64_t(got->images.size()));
      for (int64_t k = 0; k < count; ++k) {
        TESSERA_FUZZ_ASSERT(got->image_offsets[size_t(k)] < got->image_offsets[size_t(k) + 1]);
        TESSERA_FUZZ_ASSERT(got->image_sizes[size_t(2 * k)] > 0 &&
                            got->image_sizes[size_t(2 * k + 1)] > 0);
      }
      if (crop) crop_all(in, *got);
    }
  };
  auto all = s.read(0, samples);
  check(all, samples, true);
  if (all.ok() && s.encoded())
    TESSERA_FUZZ_ASSERT(int64_t(all->original_sizes.size()) == 2 * samples);
  if (samples > 0) check(s.read(samples - 1, 1), 1, false);
  const int64_t rows = s.image_chunk_rows();
  for (int64_t c = 0; c * rows < samples && c < 16; ++c)
    for (bool map : {false, true})
      check(s.read_chunk(c, {}, map), std::min(rows, samples - c * rows), !map);
  for (bool map : {true, false}) {
    const auto counts =
        s.verify([&](const absl::Status& e) { TESSERA_FUZZ_ASSERT(names(e, path)); }, map);
    TESSERA_FUZZ_ASSERT(counts.bad <= counts.chunks + counts.images);
    TESSERA_FUZZ_ASSERT(counts.images <= samples);
  }
  return 0;
}
