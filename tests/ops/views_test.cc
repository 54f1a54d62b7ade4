// Views at element offsets, odd sizes and empty tensors, on every device. A Tensor view may start
// anywhere in its buffer (flat parameter/gradient buffers, slices), so a CUDA kernel that uses
// 128-bit accesses must check every pointer's alignment and fall back, and every launcher must
// survive an empty tensor (a grid of 0 blocks is an invalid configuration). Each op runs on
// contiguous CPU tensors (the kernels checked against PyTorch by the op family tests) and on the
// device under test with every tensor placed 1 and 2 elements into a larger buffer; the outputs
// must agree.
#include <gtest/gtest.h>

#include <functional>

#include "absl/strings/str_cat.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/gated_residual.h"
#include "ops/layernorm.h"
#include "ops/matmul.h"
#include "ops/modulate.h"
#include "ops/softmax.h"
#include "tests/support/compare.h"
#include "tests/support/devices.h"
#include "tests/support/inputs.h"

namespace tessera {
namespace {

class ViewsTest : public testing::DeviceTest {};

using Outputs = std::vector<Tensor>;
using Op = std::function<Outputs(Device, int64_t)>;

// `host`'s values on `d` as a view `offset` elements into a larger buffer.
Tensor placed(const Tensor& host, Device d, int64_t offset) {
  Tensor buffer = Tensor::zeros({host.numel() + offset + 5}, host.dtype(), d);
  Tensor view = buffer.flat_view(offset, host.shape());
  copy(host, view);
  return view;
}

// Uniform values (or garbage in [1e3, 2e3) for outputs that must be overwritten), placed.
Tensor input(const Shape& s, uint64_t stream, Device d, int64_t offset) {
  return placed(testing::uniform(s, stream), d, offset);
}
Tensor garbage(const Shape& s, Device d, int64_t offset) {
  return placed(testing::uniform(s, 999, 1e3f, 2e3f), d, offset);
}

Tensor bf16_input(const Shape& s, uint64_t stream, Device d, int64_t offset) {
  Tensor host = Tensor::empty(s, DType::bf16);
  ops::convert(testing::uniform(s, stream), host);
  return placed(host, d, offset);
}

void expect_same(const std::string& what, Device d, double tol, const Op& op) {
  const Outputs want = op(Device::cpu(), 0);
  for (int64_t offset : {1, 2}) {
    const Outputs got = op(d, offset);
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_ALL_CLOSE(got[i], want[i], tol,
                       absl::StrCat(what, ": output ", i, ", tensors at element offset ", offset,
                                    " on ", d.str()));
    }
  }
}

TEST_P(ViewsTest, ElementwiseAndActivations) {
  for (int64_t n : {int64_t{0}, int64_t{3}, int64_t{4099}}) {
    const std::string size = absl::StrCat(" n=", n);
    expect_same("add" + size, device(), 1e-6, [n](Device d, int64_t o) {
      Tensor out = garbage({n}, d, o);
      ops::add(input({n}, 1, d, o), input({n}, 2, d, o), out);
      return Outputs{out};
    });
    expect_same("scale" + size, device(), 1e-6, [n](Device d, int64_t o) {
      Tensor out = garbage({n}, d, o);
      ops::scale(input({n}, 1, d, o), 0.37f, out);
      return Outputs{out};
    });
    expect_same("gelu" + size, device(), 1e-5, [n](Device d, int64_t o) {
      Tensor x = input({n}, 3, d, o), y = garbage({n}, d, o), dx = garbage({n}, d, o);
      ops::gelu_forward(x, y);
      ops::gelu_backward(input({n}, 4, d, o), x, dx);
      return Outputs{y, dx};
    });
    expect_same("silu" + size, device(), 1e-6, [n](Device d, int64_t o) {
      Tensor x = input({n}, 5, d, o), y = garbage({n}, d, o), dx = garbage({n}, d, o);
      ops::silu_forward(x, y);
      ops::silu_backward(input({n}, 6, d, o), x, dx);
      return Outputs{y, dx};
    });
  }
}

TEST_P(ViewsTest, RowKernels) {
  // 64 and 32 columns would take the 4-wide path if only the row length were checked.
  for (Shape s : {Shape{3, 64}, Shape{2, 67}, Shape{0, 16}}) {
    const int64_t rows = s[0], cols = s[1];
    const std::string shape = " " + shape_str(s);
    expect_same("softmax" + shape, device(), 1e-5, [s](Device d, int64_t o) {
      Tensor y = garbage(s, d, o), dx = garbage(s, d, o);
      ops::softmax_forward(input(s, 7, d, o), y);
      ops::softmax_backward(input(s, 8, d, o), y, dx);
      return Outputs{y, dx};
    });
    expect_same("layernorm" + shape, device(), 1e-5, [=](Device d, int64_t o) {
      Tensor x = input(s, 9, d, o), w = input({cols}, 10, d, o), b = input({cols}, 11, d, o);
      Tensor y = garbage(s, d, o), mean = garbage({rows}, d, o), rstd = garbage({rows}, d, o);
      ops::layernorm_forward(x, w, b, y, mean, rstd);
      Tensor dx = garbage(s, d, o), dw = input({cols}, 12, d, o), db = input({cols}, 13, d, o);
      ops::layernorm_backward(input(s, 14, d, o), x, w, mean, rstd, dx, dw, db);
      return Outputs{y, mean, rstd, dx, dw, db};
    });
  }
  for (Shape s : {Shape{6, 32}, Shape{5, 33}, Shape{0, 32}}) {
    expect_same("cross_entropy " + shape_str(s), device(), 1e-5, [s](Device d, int64_t o) {
      Tensor targets = Tensor::empty({s[0]}, DType::i32);
      for (int64_t i = 0; i < s[0]; ++i) targets.data<int32_t>()[i] = i == 2 ? -100 : (7 * i) % 32;
      Tensor t = placed(targets, d, o), logits = input(s, 15, d, o);
      Tensor loss = garbage({1}, d, o), lse = garbage({s[0]}, d, o), dl = garbage(s, d, o);
      ops::cross_entropy_forward(logits, t, loss, lse);
      ops::cross_entropy_backward(logits, t, lse, 0.5f, dl);
      return Outputs{loss, lse, dl};
    });
  }
}

TEST_P(ViewsTest, EmbeddingAndBroadcasts) {
  expect_same("embedding", device(), 1e-6, [](Device d, int64_t o) {
    Tensor ids = Tensor::empty({7}, DType::i32);
    for (int i = 0; i < 7; ++i) ids.data<int32_t>()[i] = (3 * i) % 5;  // repeats
    Tensor id = placed(ids, d, o), table = input({10, 64}, 16, d, o), out = garbage({7, 64}, d, o);
    ops::embedding_forward(id, table, out);
    Tensor dtable = input({10, 64}, 17, d, o);
    ops::embedding_backward(input({7, 64}, 18, d, o), id, dtable);
    return Outputs{out, dtable};
  });
  const Shape x{2, 3, 8}, per_sample{2, 8};
  expect_same("modulate", device(), 1e-6, [=](Device d, int64_t o) {
    Tensor xs = input(x, 19, d, o), scale = input(per_sample, 20, d, o);
    Tensor y = garbage(x, d, o), dx = garbage(x, d, o);
    Tensor dshift = garbage(per_sample, d, o), dscale = garbage(per_sample, d, o);
    ops::modulate_forward(xs, input(per_sample, 21, d, o), scale, y);
    ops::modulate_backward(input(x, 22, d, o), xs, scale, dx, dshift, dscale);
    return Outputs{y, dx, dshift, dscale};
  });
  expect_same("gated_residual", device(), 1e-6, [=](Device d, int64_t o) {
    Tensor gate = input(per_sample, 23, d, o), h = input(x, 24, d, o);
    Tensor y = garbage(x, d, o), dgate = garbage(per_sample, d, o), dh = garbage(x, d, o);
    ops::gated_residual_forward(input(x, 25, d, o), gate, h, y);
    ops::gated_residual_backward(input(x, 26, d, o), gate, h, dgate, dh);
    return Outputs{y, dgate, dh};
  });
}

TEST_P(ViewsTest, MatmulOperandsAtAnyAlignment) {
  // cuBLASLt is told each pointer's real alignment; an offset of 1 leaves 4 (f32) or 2 (bf16)
  // bytes.
  expect_same("linear f32", device(), 1e-5, [](Device d, int64_t o) {
    Tensor x = input({5, 12}, 27, d, o), w = input({8, 12}, 28, d, o), y = garbage({5, 8}, d, o);
    ops::linear_forward(x, w, input({8}, 29, d, o), y);
    Tensor dx = garbage({5, 12}, d, o), dw = input({8, 12}, 30, d, o), db = input({8}, 31, d, o);
    ops::linear_backward(input({5, 8}, 32, d, o), x, w, dx, dw, db);
    return Outputs{y, dx, dw, db};
  });
  if (device().is_cpu()) return;  // bf16 products on the CPU are covered by MatmulTest
  const Outputs want = [] {
    Device gpu = Device::cuda(0);
    Tensor out = Tensor::empty({4, 24}, DType::f32, gpu);
    ops::matmul(bf16_input({4, 16}, 33, gpu, 0), bf16_input({16, 24}, 34, gpu, 0), out);
    return Outputs{out};
  }();
  for (int64_t o : {1, 2}) {
    Tensor out = garbage({4, 24}, device(), o);
    ops::matmul(bf16_input({4, 16}, 33, device(), o), bf16_input({16, 24}, 34, device(), o), out);
    EXPECT_ALL_CLOSE(out, want[0], 1e-5, absl::StrCat("matmul bf16 at element offset ", o));
  }
}

TEST_P(ViewsTest, AttentionAtOffsetsAndEmpty) {
  expect_same("attention f32", device(), 1e-5, [](Device d, int64_t o) {
    const int64_t B = 2, T = 9, H = 2, D = 8;
    Tensor qkv = input({B, T, 3 * H * D}, 35, d, o), out = garbage({B, T, H * D}, d, o);
    Tensor lse = garbage({B, H, T}, d, o), dqkv = garbage({B, T, 3 * H * D}, d, o);
    ops::attention_forward(qkv, out, lse, int(H), true);
    ops::attention_backward(input({B, T, H * D}, 36, d, o), qkv, out, lse, dqkv, int(H), true);
    return Outputs{out, lse, dqkv};
  });
  expect_same("attention T=0", device(), 0.0, [](Device d, int64_t o) {
    Tensor qkv = input({2, 0, 48}, 37, d, o), out = garbage({2, 0, 16}, d, o);
    Tensor lse = garbage({2, 2, 0}, d, o), dqkv = garbage({2, 0, 48}, d, o);
    ops::attention_forward(qkv, out, lse, 2, false);
    ops::attention_backward(input({2, 0, 16}, 38, d, o), qkv, out, lse, dqkv, 2, false);
    return Outputs{out, lse, dqkv};
  });
  if (device().is_cpu()) return;
  // bf16 under the default backend: cuDNN for the aligned tensors, and for views it cannot
  // take (2-byte aligned) the own kernel; both must give the same attention.
  const int64_t B = 1, T = 80, H = 2, D = 64, C = H * D;
  auto run = [&](int64_t o) {
    Device d = device();
    Tensor qkv = bf16_input({B, T, 3 * C}, 39, d, o);
    Tensor out = placed(Tensor::zeros({B, T, C}, DType::bf16), d, o);
    Tensor lse = garbage({B, H, T}, d, o);
    Tensor dqkv = placed(Tensor::zeros({B, T, 3 * C}, DType::bf16), d, o);
    ops::attention_forward(qkv, out, lse, int(H), true);
    ops::attention_backward(bf16_input({B, T, C}, 40, d, o), qkv, out, lse, dqkv, int(H), true);
    return Outputs{out, lse, dqkv};
  };
  const Outputs want = run(0);
  const Outputs got = run(1);
  EXPECT_ALL_CLOSE(got[0], want[0], 2e-2, "attention bf16 out at offset 1 vs aligned");
  EXPECT_ALL_CLOSE(got[1], want[1], 2e-2, "attention bf16 lse at offset 1 vs aligned");
  EXPECT_ALL_CLOSE(got[2], want[2], 4e-2, "attention bf16 dqkv at offset 1 vs aligned");
}

TESSERA_INSTANTIATE_DEVICE_TESTS(ViewsTest);

}  // namespace
}  // namespace tessera
