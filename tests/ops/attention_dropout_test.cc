// Dropout on the attention probabilities inside the fused kernels (ops/attention_dropout.h):
// against PyTorch given the same mask, the mask the kernel applies read back exactly and its
// kept share, determinism over runs and thread counts, rows keyed by stream position, and p = 0
// equal to the plain kernel. The same bodies run on CUDA when a GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/threads.h"
#include "ops/attention.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"
#include "tests/support/reference.h"

namespace tessera {
namespace {

using testing::case_key;

class AttentionDropoutTest : public testing::DeviceTest {};

struct Case {
  int64_t B, T, H, D;
  bool causal;
  ops::AttentionDropout drop;
  std::string name() const {
    return absl::StrCat("B=", B, " T=", T, " H=", H, " D=", D, causal ? " causal" : "",
                        " p=", drop.p, " heads ", drop.head_offset, "+", H, "/", drop.heads);
  }
};

// factor (B, H, T, T) of every (row, head, query, key) from the documented keying.
Tensor factors(const Case& c) {
  Tensor f = Tensor::empty({c.B, c.H, c.T, c.T}, DType::f32);
  float* p = f.data<float>();
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < c.T; ++i)
        for (int64_t j = 0; j < c.T; ++j)
          *p++ = ops::attention_dropout_factor(c.drop, b, h, c.T, i, j);
  return f;
}

struct Outputs {
  Tensor out, lse, dqkv;  // on the host
};

Outputs run(const Tensor& qkv_host, const Tensor& dout_host, int64_t H, bool causal,
            const ops::AttentionDropout& drop, Device device) {
  const Tensor qkv = to_device(qkv_host, device), dout = to_device(dout_host, device);
  const int64_t B = qkv.dim(0), T = qkv.dim(1), C = qkv.dim(2) / 3;
  Tensor out = Tensor::empty({B, T, C}, DType::f32, device);
  Tensor lse = Tensor::empty({B, H, T}, DType::f32, device);
  Tensor dqkv = Tensor::empty(qkv.shape(), DType::f32, device);
  ops::attention_forward(qkv, out, lse, int(H), causal, drop);
  ops::attention_backward(dout, qkv, out, lse, dqkv, int(H), causal, drop);
  return {to_device(out, Device::cpu()), to_device(lse, Device::cpu()),
          to_device(dqkv, Device::cpu())};
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0;
}

ops::AttentionDropout dropout(float p, uint64_t stream, int64_t first = 0, int64_t offset = 0,
                              int64_t heads = 0) {
  ops::AttentionDropout d;
  d.p = p;
  d.seed = 1234;
  d.stream = stream;
  d.first = first;
  d.head_offset = offset;
  d.heads = heads;
  return d;
}

TEST_P(AttentionDropoutTest, MatchesTorchGivenTheMask) {
  // Ragged tiles (T = 70, 130: the CPU's 64-key tiles, CUDA's 32), head dims padded (20), the
  // keying of a TP slice of heads (offset 1 of 4), causal and not.
  std::vector<Case> cases = {
      {2, 7, 3, 16, false, dropout(0.3f, 11, 0, 0, 3)},
      {1, 70, 2, 20, true, dropout(0.5f, 12, 5, 0, 2)},
      {2, 130, 2, 16, false, dropout(0.1f, 13, 0, 1, 4)},
      {1, 65, 1, 64, true, dropout(0.2f, 14, 3, 0, 1)},
  };
  NamedTensors in;
  std::map<std::string, std::string> attrs;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    in[case_key(i, "qkv")] = testing::normal({c.B, c.T, 3 * c.H * c.D}, 300 + i);
    in[case_key(i, "dout")] = testing::uniform({c.B, c.T, c.H * c.D}, 310 + i);
    in[case_key(i, "factor")] = factors(c);
    attrs[case_key(i, "n_heads")] = std::to_string(c.H);
    attrs[case_key(i, "causal")] = c.causal ? "1" : "0";
  }
  NamedTensors ref = testing::run_reference("attention_dropout", in, attrs);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Outputs o =
        run(in[case_key(i, "qkv")], in[case_key(i, "dout")], c.H, c.causal, c.drop, device());
    EXPECT_ALL_CLOSE(o.out, ref[case_key(i, "out")], 1e-5, "out " + c.name());
    EXPECT_ALL_CLOSE(o.lse, ref[case_key(i, "lse")], 1e-5, "lse " + c.name());
    EXPECT_ALL_CLOSE(o.dqkv, ref[case_key(i, "dqkv")], 1e-5, "dqkv " + c.name());
    // The mask acts: without it the output is another.
    const Outputs plain =
        run(in[case_key(i, "qkv")], in[case_key(i, "dout")], c.H, c.causal, {}, device());
    EXPECT_GT(testing::diff(o.out, plain.out).relative(), 1e-3) << c.name();
  }
}

// The kernel's own mask read back: with q = k = 0 every probability of a non-causal row is 1/T,
// and with v_j = the j-th unit vector (D = T) out[b, i, h, j] = m_ij / T. So T * out is the
// kernel's factor of every (b, h, i, j): exactly 0 or 1 / (1 - p), equal to the documented
// keying, and kept with share 1 - p (65536 draws, within 5 standard errors).
TEST_P(AttentionDropoutTest, KernelMaskIsTheKeyedMaskAndKeepsOneMinusP) {
  const int64_t B = 64, T = 16, H = 4, D = 16, C = H * D;
  const float p = 0.25f;
  Tensor qkv = Tensor::zeros({B, T, 3 * C}, DType::f32);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < T; ++j)
      for (int64_t h = 0; h < H; ++h)
        qkv.data<float>()[(b * T + j) * 3 * C + 2 * C + h * D + j] = 1;
  const Case c{B, T, H, D, false, dropout(p, 21, 7, 0, H)};
  const Outputs o = run(qkv, Tensor::zeros({B, T, C}, DType::f32), H, false, c.drop, device());
  const Tensor want = factors(c);
  int64_t kept = 0, mismatched = 0;
  const float scale = 1.0f / (1.0f - p);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) {
          const float got = float(T) * o.out.data<float>()[(b * T + i) * C + h * D + j];
          const float w = want.data<float>()[((b * H + h) * T + i) * T + j];
          if (std::fabs(got - w) > 1e-6f * scale) ++mismatched;
          if (w != 0.0f) {
            ++kept;
            EXPECT_EQ(w, scale);
          }
        }
  EXPECT_EQ(mismatched, 0) << "the kernel's mask differs from the keyed one";
  const double n = double(B * H * T * T), share = double(kept) / n;
  const double se = std::sqrt(p * (1 - p) / n);
  EXPECT_NEAR(share, 1 - p, 5 * se) << kept << " of " << n << " kept";
}

// Bitwise the same over runs; rows keyed by stream position: rows [2, 5) of a batch equal the
// same rows computed alone with first = 2 (a data-parallel rank's slice); p = 0 is the plain
// kernel bitwise.
TEST_P(AttentionDropoutTest, DeterministicAndKeyedByPosition) {
  const int64_t B = 5, T = 40, H = 2, D = 16, C = H * D;
  const Tensor qkv = testing::normal({B, T, 3 * C}, 400);
  const Tensor dout = testing::uniform({B, T, C}, 401);
  for (bool causal : {false, true}) {
    const ops::AttentionDropout d = dropout(0.3f, 31);
    const Outputs a = run(qkv, dout, H, causal, d, device());
    const Outputs b = run(qkv, dout, H, causal, d, device());
    EXPECT_TRUE(bitwise_equal(a.out, b.out) && bitwise_equal(a.dqkv, b.dqkv)) << causal;
    Tensor part = Tensor::empty({3, T, 3 * C}, DType::f32),
           dpart = Tensor::empty({3, T, C}, DType::f32);
    std::memcpy(part.data<float>(), qkv.data<float>() + 2 * T * 3 * C, part.nbytes());
    std::memcpy(dpart.data<float>(), dout.data<float>() + 2 * T * C, dpart.nbytes());
    const Outputs s = run(part, dpart, H, causal, dropout(0.3f, 31, 2), device());
    EXPECT_EQ(0, std::memcmp(s.out.data<float>(), a.out.data<float>() + 2 * T * C, s.out.nbytes()))
        << "rows 2..4 keyed from position 2, causal " << causal;
    EXPECT_EQ(
        0, std::memcmp(s.dqkv.data<float>(), a.dqkv.data<float>() + 2 * T * 3 * C, s.dqkv.nbytes()))
        << "rows 2..4 keyed from position 2, causal " << causal;
    const Outputs off = run(qkv, dout, H, causal, dropout(0.0f, 31), device());
    const Outputs plain = run(qkv, dout, H, causal, {}, device());
    EXPECT_TRUE(bitwise_equal(off.out, plain.out) && bitwise_equal(off.dqkv, plain.dqkv));
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(AttentionDropoutTest);

// More threads than heads switches the CPU backward to the per-tile split: dropout results must
// not change with the thread count.
TEST(AttentionDropoutCpu, ThreadCountDoesNotChangeResults) {
  const int64_t B = 1, T = 150, H = 2, D = 32, C = H * D;
  const Tensor qkv = testing::normal({B, T, 3 * C}, 500);
  const Tensor dout = testing::uniform({B, T, C}, 501);
  const int saved = num_threads();
  for (bool causal : {false, true}) {
    std::vector<Outputs> results;
    for (int threads : {1, 2, 4}) {
      set_num_threads(threads);
      results.push_back(run(qkv, dout, H, causal, dropout(0.2f, 41), Device::cpu()));
    }
    for (size_t i = 1; i < results.size(); ++i) {
      EXPECT_TRUE(bitwise_equal(results[0].out, results[i].out) &&
                  bitwise_equal(results[0].dqkv, results[i].dqkv))
          << "thread split " << i << (causal ? " causal" : "");
    }
  }
  set_num_threads(saved);
}

TEST(AttentionDropoutCpu, BadRatesAndHeadsAreNamed) {
  const Tensor qkv = testing::normal({1, 4, 3 * 32}, 600);
  Tensor out = Tensor::empty({1, 4, 32}, DType::f32), lse = Tensor::empty({1, 2, 4}, DType::f32);
  for (const auto& [d, want] :
       {std::pair{dropout(1.0f, 1), std::string("attention dropout p must be in [0, 1), got 1")},
        std::pair{dropout(0.1f, 1, 0, 3, 4),
                  std::string("attention dropout: heads [3, 5) are outside the layer's 4")}}) {
    try {
      ops::attention_forward(qkv, out, lse, 2, false, d);
      ADD_FAILURE() << "no error for " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tessera
