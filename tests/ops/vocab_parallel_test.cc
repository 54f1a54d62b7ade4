// Vocab-parallel embedding and cross-entropy (ops/vocab_parallel.h), on one process: the
// vocabulary is cut into `parts` slices as TP ranks would hold it, the all-reduces between the
// pieces are done here by hand (max / sum over the slices), and the result must equal the unsplit
// ops (ops/embedding.h, ops/cross_entropy.h, themselves checked against PyTorch). The multi-rank
// model tests (tests/train/tensor_parallel_test.cc) exercise the same ops through MPI. The
// vocab-parallel ops run on each device (the CUDA variant skips with "no CUDA device" without
// one); the unsplit references and the hand all-reduces run on the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/vocab_parallel.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"

namespace tessera::ops {
namespace {

// Columns [c0, c1) of a (N, V) tensor, as a contiguous (N, c1 - c0) tensor.
Tensor columns(const Tensor& x, int64_t c0, int64_t c1) {
  const int64_t n = x.dim(0), v = x.dim(1);
  Tensor out = Tensor::empty({n, c1 - c0}, DType::f32);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = c0; j < c1; ++j)
      out.data<float>()[i * (c1 - c0) + j - c0] = x.data<float>()[i * v + j];
  return out;
}

Tensor on(const Tensor& t, Device d) {
  return d.is_cpu() ? t : to_device(t, d);
}
Tensor host(const Tensor& t) {
  return t.device().is_cpu() ? t : to_device(t, Device::cpu());
}

Tensor targets_of(const std::vector<int32_t>& t) {
  Tensor out = Tensor::empty({int64_t(t.size())}, DType::i32);
  for (size_t i = 0; i < t.size(); ++i) out.data<int32_t>()[i] = t[i];
  return out;
}

// The padded vocabulary is V = 12 columns of which the first `real` are ids; the reference is the
// unsplit op with valid columns = real (checked against PyTorch in cross_entropy_test).
// With smoothing > 0 the reference is the unsplit op's label smoothing (SoftTargets), and the
// row sums of logits are all-reduced with the other sums.
void check_cross_entropy(int parts, Device d, int64_t real = 12, float smoothing = 0) {
  SCOPED_TRACE("parts " + std::to_string(parts) + ", real columns " + std::to_string(real) +
               ", smoothing " + std::to_string(smoothing));
  SoftTargets soft;
  soft.smoothing = smoothing;
  const int64_t N = 7, V = 12, Vl = V / parts;
  Tensor logits = testing::normal({N, V}, 11, 3.0f);
  std::vector<int32_t> ids = {0, 11, 5, -100, 6, 3, 8};
  for (int32_t& x : ids) x = x < 0 ? x : int32_t(x % real);
  Tensor targets = targets_of(ids);
  Tensor loss = Tensor::empty({1}, DType::f32), lse = Tensor::empty({N}, DType::f32);
  cross_entropy_forward(logits, targets, loss, lse, -100, real, soft);
  Tensor dlogits = Tensor::empty({N, V}, DType::f32);
  cross_entropy_backward(logits, targets, lse, 0.5f, dlogits, -100, real, soft);

  std::vector<Tensor> slices;
  for (int p = 0; p < parts; ++p) slices.push_back(on(columns(logits, p * Vl, (p + 1) * Vl), d));
  const Tensor dtargets = on(targets, d);
  Tensor m = Tensor::empty({N}, DType::f32), m_part = Tensor::empty({N}, DType::f32, d);
  Tensor s = Tensor::zeros({N}, DType::f32), t = Tensor::zeros({N}, DType::f32);
  Tensor s_part = Tensor::empty({N}, DType::f32, d), t_part = Tensor::empty({N}, DType::f32, d);
  Tensor r = Tensor::zeros({N}, DType::f32);
  Tensor r_part = smoothing != 0 ? Tensor::empty({N}, DType::f32, d) : Tensor();
  for (int p = 0; p < parts; ++p) {  // all-reduce max
    vocab_ce_row_max(slices[p], p * Vl, real, m_part);
    const Tensor mp = host(m_part);
    for (int64_t i = 0; i < N; ++i)
      m.data<float>()[i] =
          p == 0 ? mp.data<float>()[i] : std::max(m.data<float>()[i], mp.data<float>()[i]);
  }
  const Tensor dm = on(m, d);
  for (int p = 0; p < parts; ++p) {  // all-reduce sum
    vocab_ce_sum_exp_target(slices[p], dtargets, dm, p * Vl, real, s_part, t_part, r_part);
    const Tensor sp = host(s_part), tp = host(t_part);
    for (int64_t i = 0; i < N; ++i) {
      s.data<float>()[i] += sp.data<float>()[i];
      t.data<float>()[i] += tp.data<float>()[i];
    }
    if (smoothing != 0) {
      const Tensor rp = host(r_part);
      for (int64_t i = 0; i < N; ++i) r.data<float>()[i] += rp.data<float>()[i];
    }
  }
  Tensor vloss_d = Tensor::empty({1}, DType::f32, d), vlse_d = Tensor::empty({N}, DType::f32, d);
  vocab_ce_loss(dm, on(s, d), on(t, d), dtargets, real, -100, vlse_d, vloss_d, smoothing, on(r, d));
  const Tensor vloss = host(vloss_d), vlse = host(vlse_d);
  EXPECT_NEAR(vloss.data<float>()[0], loss.data<float>()[0],
              1e-6 * std::fabs(loss.data<float>()[0]));
  for (int64_t i = 0; i < N; ++i) EXPECT_NEAR(vlse.data<float>()[i], lse.data<float>()[i], 1e-5);
  for (int p = 0; p < parts; ++p) {
    Tensor g = Tensor::empty({N, Vl}, DType::f32, d);
    vocab_ce_backward(slices[p], dtargets, vlse_d, p * Vl, real, 0.5f, -100, g, smoothing);
    const Tensor gh = host(g);
    Tensor ref = columns(dlogits, p * Vl, (p + 1) * Vl);
    for (int64_t k = 0; k < N * Vl; ++k) {
      EXPECT_NEAR(gh.data<float>()[k], ref.data<float>()[k], 1e-6) << "part " << p << " elem " << k;
      if (p * Vl + k % Vl >= real)  // padding: exactly zero
        EXPECT_EQ(gh.data<float>()[k], 0.0f) << "part " << p << " padded elem " << k;
    }
  }
}

class VocabParallelTest : public testing::DeviceTest {};

TEST_P(VocabParallelTest, CrossEntropyEqualsUnsplit) {
  check_cross_entropy(1, device());
  check_cross_entropy(2, device());
  check_cross_entropy(3, device());
}

// A padded vocabulary of 12 columns with 9 or 5 real ones: the last slices hold the padding (with
// 3 parts of 4 and 5 real columns, the last slice is all padding: its row max is -inf).
TEST_P(VocabParallelTest, PaddedCrossEntropyEqualsUnsplitOnRealColumns) {
  for (int64_t real : {9, 5}) {
    check_cross_entropy(1, device(), real);
    check_cross_entropy(2, device(), real);
    check_cross_entropy(3, device(), real);
  }
}

// Label smoothing: the split loss and gradient equal the unsplit op's (itself checked against
// PyTorch's label_smoothing), padded vocabularies included.
TEST_P(VocabParallelTest, SmoothedCrossEntropyEqualsUnsplit) {
  for (int64_t real : {12, 9, 5}) {
    for (int parts : {1, 2, 3}) check_cross_entropy(parts, device(), real, 0.1f);
  }
}

TEST_P(VocabParallelTest, EmbeddingEqualsUnsplit) {
  const Device d = device();
  const int64_t V = 12, C = 20, parts = 3, Vl = V / parts;
  Tensor table = testing::normal({V, C}, 12);
  Tensor ids = targets_of({3, 11, 0, 3, 7, 4, 8});
  const int64_t N = ids.numel();
  Tensor out = Tensor::empty({N, C}, DType::f32);
  embedding_forward(ids, table, out);
  Tensor dout = testing::normal({N, C}, 13);
  Tensor dtable = Tensor::zeros({V, C}, DType::f32);
  embedding_backward(dout, ids, dtable);

  Tensor sum = Tensor::zeros({N, C}, DType::f32), part = Tensor::empty({N, C}, DType::f32, d);
  const Tensor dids = on(ids, d), ddout = on(dout, d), dtab = on(table, d);
  for (int p = 0; p < parts; ++p) {
    Tensor local = dtab.slice(p * Vl, (p + 1) * Vl);
    vocab_embedding_forward(dids, local, p * Vl, V, part);
    const Tensor ph = host(part);
    for (int64_t k = 0; k < N * C; ++k) sum.data<float>()[k] += ph.data<float>()[k];
    Tensor dlocal_d = Tensor::zeros({Vl, C}, DType::f32, d);
    vocab_embedding_backward(ddout, dids, p * Vl, dlocal_d);
    const Tensor dlocal = host(dlocal_d);
    // Exactly the unsplit table gradient's rows (same additions, same order).
    EXPECT_EQ(0, std::memcmp(dlocal.data<float>(), dtable.data<float>() + p * Vl * C,
                             size_t(Vl * C) * sizeof(float)));
  }
  EXPECT_EQ(0, std::memcmp(sum.data<float>(), out.data<float>(), size_t(N * C) * sizeof(float)));
}

TEST_P(VocabParallelTest, BadIdsAndTargetsThrow) {
  const Device d = device();
  Tensor table = Tensor::zeros({4, 3}, DType::f32, d), out = Tensor::empty({1, 3}, DType::f32, d);
  EXPECT_THROW(vocab_embedding_forward(on(targets_of({8}), d), table, 4, 8, out), Error);
  Tensor one = Tensor::empty({1}, DType::f32);
  one.data<float>()[0] = 1.0f;
  one = on(one, d);
  Tensor m = Tensor::zeros({1}, DType::f32, d), lse = Tensor::empty({1}, DType::f32, d),
         loss = Tensor::empty({1}, DType::f32, d);
  try {
    vocab_ce_loss(m, one, m, on(targets_of({9}), d), 8, -100, lse, loss);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 9 at row 0 is outside [0, 8)"), std::string::npos)
        << e.what();
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(VocabParallelTest);

}  // namespace
}  // namespace tessera::ops
