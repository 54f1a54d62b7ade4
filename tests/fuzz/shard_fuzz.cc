// The shard readers' schema validation (ShardReader, TextShardReader) on small HDF5 files built
// from the input: which attributes and datasets exist, their types (integer widths, signedness,
// byte order, floats, strings), shapes (mostly consistent with num_samples and resolution, so
// that validation gets deep), chunk shapes, filters (Fletcher32, gzip, shuffle) and contents,
// and optionally one flipped byte inside a stored chunk. HDF5's own parser is not the target
// (it is not tessera's; the file's structure is always written by libhdf5 itself); everything
// from open() on is: open, read, read_chunk (mapped and not), verify. Each must end in a
// result or an error naming the file; results must have the sizes the shard declares.
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <string>
#include <vector>

#include "data_pipeline/shard_reader.h"
#include "data_pipeline/text_shard.h"
#include "hdf5/hdf5_util.h"
#include "tests/fuzz/flip_chunk.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using tessera::hdf5::H5Handle;

hid_t pick_int_type(FuzzedDataProvider& in, hid_t wanted) {
  // Mostly the type the format asks for; otherwise a near miss.
  static const hid_t kTypes[] = {H5T_STD_U8LE,  H5T_STD_I8LE,  H5T_STD_I32LE, H5T_STD_I32BE,
                                 H5T_STD_U32LE, H5T_STD_I64LE, H5T_STD_I64BE, H5T_IEEE_F32LE};
  if (in.ConsumeIntegralInRange(0, 3) != 0) return wanted;
  return kTypes[in.ConsumeIntegralInRange<size_t>(0, std::size(kTypes) - 1)];
}

void write_int_attr(FuzzedDataProvider& in, hid_t file, const char* name, int64_t value) {
  hid_t type = pick_int_type(in, H5T_STD_I64LE);
  H5Handle space(H5Screate(H5S_SCALAR));
  H5Handle attr(H5Acreate2(file, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (attr.valid()) H5Awrite(attr.get(), H5T_NATIVE_INT64, &value);
}

void write_string_attr(FuzzedDataProvider& in, hid_t file, const char* name) {
  const std::string value = in.ConsumeRandomLengthString(16);
  H5Handle type(H5Tcopy(H5T_C_S1));
  const bool variable = in.ConsumeBool();
  H5Tset_size(type.get(), variable ? H5T_VARIABLE : std::max<size_t>(1, value.size()));
  H5Handle space(H5Screate(H5S_SCALAR));
  H5Handle attr(H5Acreate2(file, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid()) return;
  if (variable) {
    const char* p = value.c_str();
    H5Awrite(attr.get(), type.get(), &p);
  } else {
    std::string padded = value;
    padded.resize(std::max<size_t>(1, value.size()));
    H5Awrite(attr.get(), type.get(), padded.data());
  }
}

// A dataset `name` of `shape` (sometimes perturbed), chunked or not, with filters and contents
// from the input. `contents` (when given, and the type is the wanted one) replaces the bytes.
void write_dataset(FuzzedDataProvider& in, hid_t file, const char* name, hid_t wanted,
                   std::vector<hsize_t> shape, const std::vector<uint8_t>* contents = nullptr) {
  if (in.ConsumeIntegralInRange(0, 7) == 0) {  // a different rank or extent
    shape.resize(in.ConsumeIntegralInRange<size_t>(1, 3));
    for (auto& d : shape) d = in.ConsumeIntegralInRange<hsize_t>(0, 9);
  }
  const hid_t type = pick_int_type(in, wanted);
  H5Handle space(H5Screate_simple(int(shape.size()), shape.data(), nullptr));
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (in.ConsumeIntegralInRange(0, 7) != 0) {
    std::vector<hsize_t> chunk(shape.size());
    for (size_t i = 0; i < shape.size(); ++i)
      chunk[i] = in.ConsumeIntegralInRange<hsize_t>(1, std::max<hsize_t>(1, shape[i]) + 2);
    H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data());
    if (in.ConsumeIntegralInRange(0, 5) == 0) H5Pset_shuffle(dcpl.get());
    if (in.ConsumeIntegralInRange(0, 3) == 0) H5Pset_deflate(dcpl.get(), 1);
    if (in.ConsumeIntegralInRange(0, 7) != 0) H5Pset_fletcher32(dcpl.get());
  }
  H5Handle dset(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!dset.valid()) return;
  size_t n = H5Tget_size(type);
  for (hsize_t d : shape) n *= d;
  if (n == 0 || in.ConsumeIntegralInRange(0, 15) == 0) return;  // sometimes never written
  std::vector<uint8_t> bytes;
  if (contents != nullptr && type == wanted && contents->size() == n && in.ConsumeBool()) {
    bytes = *contents;
  } else {
    bytes = in.ConsumeBytes<uint8_t>(n);
    bytes.resize(n);
  }
  H5Dwrite(dset.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
}

// The datasets whose stored chunks the harness may corrupt (tests/fuzz/flip_chunk.h).
constexpr const char* kFlippable[] = {"images",        "captions", "caption_offsets", "tokens",
                                      "token_lengths", "labels",   "text_tokens"};

bool names_file(const absl::Status& s, const std::string& path) {
  return s.message().find(path) != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = (H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr), true);
  (void)quiet;
  FuzzedDataProvider in(data, size);
  const std::string path = tessera::fuzz::scratch_dir() + "/shard.h5";
  const bool text = in.ConsumeIntegralInRange(0, 3) == 0;
  const int64_t n = in.ConsumeIntegralInRange<int64_t>(0, 12);
  const int64_t r = in.ConsumeIntegralInRange<int64_t>(1, 5);
  const int64_t L = in.ConsumeIntegralInRange<int64_t>(1, 5);
  {
    H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    if (!file.valid()) return 0;
    auto attr_value = [&](int64_t consistent) {
      switch (in.ConsumeIntegralInRange(0, 9)) {
        case 0:
          return in.ConsumeIntegral<int64_t>();
        case 1:
          return in.ConsumeIntegralInRange<int64_t>(-3, 20);
        default:
          return consistent;
      }
    };
    if (in.ConsumeIntegralInRange(0, 15) != 0)
      write_int_attr(in, file.get(), "format_version", attr_value(1));
    if (text) {
      if (in.ConsumeIntegralInRange(0, 15) != 0)
        write_int_attr(in, file.get(), "num_tokens", attr_value(n * 7));
      if (in.ConsumeIntegralInRange(0, 15) != 0)
        write_int_attr(in, file.get(), "eot_id", attr_value(2));
      if (in.ConsumeBool()) write_string_attr(in, file.get(), "tokenizer");
      write_dataset(in, file.get(), "text_tokens", H5T_STD_I32LE, {hsize_t(n * 7)});
    } else {
      if (in.ConsumeIntegralInRange(0, 15) != 0)
        write_int_attr(in, file.get(), "resolution", attr_value(r));
      if (in.ConsumeIntegralInRange(0, 15) != 0)
        write_int_attr(in, file.get(), "num_samples", attr_value(n));
      if (in.ConsumeIntegralInRange(0, 15) != 0) write_string_attr(in, file.get(), "tokenizer");
      // Captions: lengths from the input, offsets consistent with them unless perturbed.
      std::vector<int64_t> offsets(static_cast<size_t>(n) + 1, 0);
      for (int64_t i = 0; i < n; ++i)
        offsets[size_t(i) + 1] = offsets[size_t(i)] + in.ConsumeIntegralInRange<int64_t>(0, 6);
      const std::vector<uint8_t> offset_bytes = tessera::fuzz::as_bytes(offsets);
      std::vector<int32_t> lengths(static_cast<size_t>(n));
      for (auto& l : lengths) l = in.ConsumeIntegralInRange<int32_t>(0, int32_t(L));
      const std::vector<uint8_t> length_bytes = tessera::fuzz::as_bytes(lengths);
      const hsize_t un = hsize_t(n), ur = hsize_t(r);
      if (in.ConsumeIntegralInRange(0, 15) != 0)
        write_dataset(in, file.get(), "images", H5T_STD_U8LE, {un, ur, ur, 3});
      if (in.ConsumeIntegralInRange(0, 15) != 0)
        write_dataset(in, file.get(), "captions", H5T_STD_U8LE, {hsize_t(offsets.back())});
      if (in.ConsumeIntegralInRange(0, 15) != 0)
        write_dataset(in, file.get(), "caption_offsets", H5T_STD_I64LE, {un + 1}, &offset_bytes);
      if (in.ConsumeBool()) {
        write_dataset(in, file.get(), "tokens", H5T_STD_I32LE, {un, hsize_t(L)});
        if (in.ConsumeIntegralInRange(0, 7) != 0)
          write_dataset(in, file.get(), "token_lengths", H5T_STD_I32LE, {un}, &length_bytes);
      }
      if (in.ConsumeBool()) write_dataset(in, file.get(), "labels", H5T_STD_I32LE, {un});
    }
  }
  if (in.ConsumeBool()) tessera::fuzz::flip_in_chunk(in, path, kFlippable);

  auto images = tessera::data::ShardReader::open(path);
  if (images.ok()) {
    tessera::data::ShardReader& s = **images;
    const int64_t samples = s.num_samples(), res = s.resolution(), len = s.token_length();
    auto check = [&](const absl::StatusOr<tessera::data::ShardSamples>& got, int64_t count) {
      if (!got.ok()) {
        TESSERA_FUZZ_ASSERT(names_file(got.status(), path));
        return;
      }
      TESSERA_FUZZ_ASSERT(got->count == count && int64_t(got->captions.size()) == count);
      if (!got->mapped_images)
        TESSERA_FUZZ_ASSERT(int64_t(got->images.size()) == count * res * res * 3);
      TESSERA_FUZZ_ASSERT(int64_t(got->tokens.size()) == (len > 0 ? count * len : 0));
      for (int32_t l : got->token_lengths) TESSERA_FUZZ_ASSERT(l >= 0 && l <= len);
    };
    check(s.read(0, samples), samples);
    if (samples > 0) check(s.read(samples - 1, 1), 1);
    const int64_t rows = s.image_chunk_rows();
    for (int64_t c = 0; c * rows < samples && c < 16; ++c)
      for (bool map : {false, true})
        check(s.read_chunk(c, {}, map), std::min(rows, samples - c * rows));
    for (bool map : {true, false}) {
      const auto counts =
          s.verify([&](const absl::Status& e) { TESSERA_FUZZ_ASSERT(names_file(e, path)); }, map);
      TESSERA_FUZZ_ASSERT(counts.bad <= counts.chunks);
    }
  } else {
    TESSERA_FUZZ_ASSERT(names_file(images.status(), path));
  }
  auto tokens = tessera::data::TextShardReader::open(path);
  if (tokens.ok()) {
    auto all = (*tokens)->read(0, (*tokens)->num_tokens());
    if (all.ok())
      TESSERA_FUZZ_ASSERT(int64_t(all->size()) == (*tokens)->num_tokens());
    else
      TESSERA_FUZZ_ASSERT(names_file(all.status(), path));
    int64_t bad = 0;
    (void)(*tokens)->verify(
        [&](const absl::Status& e) { TESSERA_FUZZ_ASSERT(names_file(e, path)); }, &bad);
  } else {
    TESSERA_FUZZ_ASSERT(names_file(tokens.status(), path));
  }
  return 0;
}
