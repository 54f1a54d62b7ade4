#include "hdf5/hdf5_util.h"

#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tessera::hdf5 {

H5Handle& H5Handle::operator=(H5Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void H5Handle::reset() {
  if (id_ >= 0) H5Idec_ref(id_);
  id_ = H5I_INVALID_HID;
}

H5Quiet::H5Quiet() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  H5Eclear2(H5E_DEFAULT);
}

H5Quiet::~H5Quiet() {
  H5Eset_auto2(H5E_DEFAULT, func_, data_);
}

namespace {

herr_t collect(unsigned /*n*/, const H5E_error2_t* err, void* out) {
  auto* lines = static_cast<std::vector<std::string>*>(out);
  // Nested HDF5 layers often repeat the same description; keep one.
  if (err->desc != nullptr && err->desc[0] != '\0' &&
      (lines->empty() || lines->back() != err->desc))
    lines->push_back(err->desc);
  return 0;
}

std::vector<std::string> error_lines() {
  std::vector<std::string> lines;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect, &lines);
  return lines;
}

}  // namespace

std::string h5_error_text() {
  std::string text = absl::StrJoin(error_lines(), "; ");
  H5Eclear2(H5E_DEFAULT);
  return text;
}

bool h5_error_is_checksum() {
  // Walk the minor error numbers: a failed Fletcher32 verification is reported by the filter
  // pipeline as H5E_READERROR with "data error detected by Fletcher32 checksum".
  bool found = false;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* err, void* out) -> herr_t {
        std::string desc = err->desc != nullptr ? err->desc : "";
        if (desc.find("Fletcher32") != std::string::npos ||
            desc.find("checksum") != std::string::npos)
          *static_cast<bool*>(out) = true;
        return 0;
      },
      &found);
  return found;
}

std::string describe_type(hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  switch (cls) {
    case H5T_INTEGER:
      return absl::StrCat(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", size * 8);
    case H5T_FLOAT:
      return absl::StrCat("float", size * 8);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_VLEN:
      return "vlen";
    default:
      return absl::StrCat("HDF5 type class ", static_cast<int>(cls));
  }
}

bool is_integer_type(hid_t type, size_t size, bool is_signed) {
  return H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == size &&
         (H5Tget_sign(type) == H5T_SGN_2) == is_signed;
}

namespace {

// Over the kBlock big-endian 16-bit words at p: *sa = sum w_k, *sb = sum k * w_k (exact). With
// SSE2 the words are split into their high and low bytes (w = 256 h + l), whose plain and
// k-weighted sums pmaddwd forms exactly in 32-bit lanes (products <= 255 * 1023, lane sums below
// 2^31): the byte-wise scalar loop does not vectorise without SSE4.1's 32-bit multiply, and it
// was the loader's largest cost (perf on bench_loader). Long blocks amortise the final
// horizontal sums.
constexpr size_t kBlock = 1024;

inline void block_sums(const uint8_t* p, uint64_t* sa, uint64_t* sb) {
#if defined(__SSE2__)
  const __m128i low_byte = _mm_set1_epi16(0x00ff), ones = _mm_set1_epi16(1),
                eight = _mm_set1_epi16(8);
  __m128i hi_sum = _mm_setzero_si128(), lo_sum = hi_sum, hi_wsum = hi_sum, lo_wsum = hi_sum;
  __m128i k = _mm_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7);  // word indices of the 8 lanes
  for (size_t j = 0; j < kBlock / 8; ++j, k = _mm_add_epi16(k, eight)) {
    // Lane l holds bytes p[16j + 2l] (the word's high byte) | p[16j + 2l + 1] << 8.
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * j));
    const __m128i hi = _mm_and_si128(v, low_byte), lo = _mm_srli_epi16(v, 8);
    hi_sum = _mm_add_epi32(hi_sum, _mm_madd_epi16(hi, ones));
    lo_sum = _mm_add_epi32(lo_sum, _mm_madd_epi16(lo, ones));
    hi_wsum = _mm_add_epi32(hi_wsum, _mm_madd_epi16(hi, k));
    lo_wsum = _mm_add_epi32(lo_wsum, _mm_madd_epi16(lo, k));
  }
  auto total = [](__m128i x) {
    alignas(16) uint32_t lanes[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), x);
    return uint64_t(lanes[0]) + lanes[1] + lanes[2] + lanes[3];
  };
  *sa = 256 * total(hi_sum) + total(lo_sum);
  *sb = 256 * total(hi_wsum) + total(lo_wsum);
#else
  uint64_t a = 0, b = 0;
  for (uint32_t k = 0; k < kBlock; ++k) {
    const uint64_t w = (uint32_t(p[2 * k]) << 8) | p[2 * k + 1];
    a += w;
    b += k * w;
  }
  *sa = a;
  *sb = b;
#endif
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same with AVX2 (16 words a step), compiled for AVX2 whatever the build's -march and used
// when the CPU has it (checked once at run time): the checkpoint loader checksums every byte it
// reads, and this halves the checksum's share of a load (perf on bench_checkpoint).
#define TESSERA_FLETCHER_AVX2 1
__attribute__((target("avx2"))) void block_sums_avx2(const uint8_t* p, uint64_t* sa, uint64_t* sb) {
  const __m256i low_byte = _mm256_set1_epi16(0x00ff), ones = _mm256_set1_epi16(1),
                sixteen = _mm256_set1_epi16(16);
  __m256i hi_sum = _mm256_setzero_si256(), lo_sum = hi_sum, hi_wsum = hi_sum, lo_wsum = hi_sum;
  __m256i k = _mm256_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (size_t j = 0; j < kBlock / 16; ++j, k = _mm256_add_epi16(k, sixteen)) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * j));
    const __m256i hi = _mm256_and_si256(v, low_byte), lo = _mm256_srli_epi16(v, 8);
    hi_sum = _mm256_add_epi32(hi_sum, _mm256_madd_epi16(hi, ones));
    lo_sum = _mm256_add_epi32(lo_sum, _mm256_madd_epi16(lo, ones));
    hi_wsum = _mm256_add_epi32(hi_wsum, _mm256_madd_epi16(hi, k));
    lo_wsum = _mm256_add_epi32(lo_wsum, _mm256_madd_epi16(lo, k));
  }
  alignas(32) uint32_t lanes[4][8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[0]), hi_sum);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[1]), lo_sum);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[2]), hi_wsum);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[3]), lo_wsum);
  uint64_t t[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4; ++i) {
    for (uint32_t l : lanes[i]) t[i] += l;
  }
  *sa = 256 * t[0] + t[1];
  *sb = 256 * t[2] + t[3];
}
#endif

using BlockSums = void (*)(const uint8_t*, uint64_t*, uint64_t*);

BlockSums pick_block_sums() {
#ifdef TESSERA_FLETCHER_AVX2
  if (__builtin_cpu_supports("avx2")) return block_sums_avx2;
#endif
  return [](const uint8_t* p, uint64_t* sa, uint64_t* sb) { block_sums(p, sa, sb); };
}

}  // namespace

void Fletcher32::update(const uint8_t* data, size_t bytes) {
  // HDF5 adds 16-bit big-endian words w_i (a last odd byte is the high half of a word):
  // sum1 += w_i; sum2 += sum1, folding (x & 0xffff) + (x >> 16) every 360 words and twice at the
  // end. Folding keeps each sum congruent to the exact integer S mod 65535 and nonzero iff S is,
  // and the final value lies in [0, 0xffff]: it is 0 if S = 0, else ((S - 1) mod 65535) + 1. So
  // we may compute S1 = sum w_i and S2 = sum (n - i) w_i exactly (n words) in any order: blocks
  // of kBlock words summed in SIMD lanes (block_sums), combined in 64-bit, reduced per 2^16
  // words (S2 of a run of 2^16 words stays below 2^48). Appending m words to a prefix:
  // S1 += a, S2 += m * S1_prefix + b, with a = sum w_j and b = sum (m - j) w_j over the new words.
  static const BlockSums sums = pick_block_sums();
  const size_t words = bytes / 2 + (bytes % 2);
  auto word = [&](size_t i) -> uint32_t {
    const uint32_t hi = data[2 * i];
    return 2 * i + 1 < bytes ? (hi << 8) | data[2 * i + 1] : hi << 8;
  };
  for (size_t run = 0; run < words; run += 65536) {
    const size_t m = std::min<size_t>(65536, words - run);
    uint64_t a = 0, b = 0;
    size_t j = 0;
    const size_t full = (bytes / 2 > run) ? std::min(m, bytes / 2 - run) / kBlock * kBlock : 0;
    for (; j < full; j += kBlock) {
      uint64_t sa, sb;  // sb = sum k * w_k over k < kBlock: below 2^36
      sums(data + 2 * (run + j), &sa, &sb);
      // sum over the block of (m - (j + k)) w = (m - j) sa - sb
      a += sa;
      b += uint64_t(m - j) * sa - sb;
    }
    for (; j < m; ++j) {
      const uint32_t w = word(run + j);
      a += w;
      b += uint64_t(m - j) * w;
    }
    s2_nonzero_ = s2_nonzero_ || s1_nonzero_ || b != 0;
    s2_ = (s2_ + (m % 65535) * s1_ + b) % 65535;
    s1_nonzero_ = s1_nonzero_ || a != 0;
    s1_ = (s1_ + a) % 65535;
  }
}

uint32_t Fletcher32::value() const {
  const uint32_t f1 = s1_nonzero_ ? uint32_t(s1_ == 0 ? 65535 : s1_) : 0;
  const uint32_t f2 = s2_nonzero_ ? uint32_t(s2_ == 0 ? 65535 : s2_) : 0;
  return (f2 << 16) | f1;
}

uint32_t fletcher32(const uint8_t* data, size_t bytes) {
  Fletcher32 f;
  f.update(data, bytes);
  return f.value();
}

}  // namespace tessera::hdf5
