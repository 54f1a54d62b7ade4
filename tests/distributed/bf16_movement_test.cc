// bf16 through the communicators (ctest distributed_bf16_movement_test, 2 ranks): the operations
// that only move data (all_gather, broadcast, send/recv) take bf16, so ZeRO-3 with bf16 compute
// can gather the bf16 shadow instead of the f32 master (half the bytes). The reference: every
// rank converts the f32 collective's result to bf16 itself (core/bf16.h rounding); the bf16
// collective must give those bits exactly. Device-parameterised: the CPU variant runs the world
// communicator the trainer picks (MPI), the CUDA one (NCCL behind a RoutedCommunicator) skips
// with "no CUDA device" where there is none, or not one per rank.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core/allocator.h"
#include "core/bf16.h"
#include "distributed/local_communicator.h"
#include "distributed/make_communicator.h"
#include "distributed/mpi_communicator.h"
#include "distributed/routed_communicator.h"
#include "tests/distributed/mpi_test_env.h"
#include "tests/support/devices.h"

namespace tessera::distributed {
namespace {

using namespace testing;  // NOLINT: test_world, value_of

// Values with low mantissa bits set, so the bf16 conversion rounds (value_of alone is small
// integers, exact in bf16).
float value(int rank, int64_t i) {
  return value_of(rank, i) * 1.000123f + 1.0f / float(3 + i % 11);
}

Tensor f32_values(int64_t n, int rank, int64_t offset = 0) {
  Tensor t = Tensor::empty({n}, DType::f32);
  for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = value(rank, offset + i);
  return t;
}

Tensor to_bf16(const Tensor& f32) {  // on the CPU
  Tensor out = Tensor::empty(f32.shape(), DType::bf16);
  for (int64_t i = 0; i < f32.numel(); ++i)
    out.data<bf16>()[i] = float_to_bf16(f32.data<float>()[i]);
  return out;
}

Tensor on(const Tensor& t, Device d) {
  return d.is_cpu() ? t : to_device(t, d);
}
Tensor host(const Tensor& t) {
  return t.device().is_cpu() ? t : to_device(t, Device::cpu());
}

// Bitwise equality of two bf16 tensors (any device), reporting the first difference.
void expect_same_bits(const Tensor& got_any, const Tensor& want_any, const std::string& what) {
  const Tensor got = host(got_any), want = host(want_any);
  ASSERT_EQ(got.dtype(), DType::bf16) << what;
  ASSERT_EQ(got.numel(), want.numel()) << what;
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (got.data<bf16>()[i].bits != want.data<bf16>()[i].bits) {
      if (first < 0) first = i;
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": first difference at " << first;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class Bf16Movement : public tessera::testing::DeviceTest {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    if (IsSkipped()) return;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (device().is_cuda() && cuda_device_count() < size)
      GTEST_SKIP() << "no CUDA device for every rank (" << size << " ranks, " << cuda_device_count()
                   << " devices)";
    if (device().is_cuda()) device_ = local_cuda_device();
    CommunicatorOptions options;
    options.timeout_s = 30;
    world_ = make_world_communicator(device_, options);
  }
  Device d() const { return device_.is_cuda() ? device_ : Device::cpu(); }
  Device device_ = Device::cpu();
  std::unique_ptr<Communicator> world_;
};

// Sizes: tiny, odd, and one above MpiOptions::bulk_min_bytes in bf16 (the bulk path).
const int64_t kSizes[] = {1, 7, 600001};

TEST_P(Bf16Movement, AllGatherEqualsConvertingTheF32AllGather) {
  Communicator& w = *world_;
  const int S = w.size();
  for (int64_t n : kSizes) {
    const Tensor in32 = f32_values(n, w.rank());
    Tensor out32 = Tensor::zeros({S * n}, DType::f32, d());
    w.all_gather(on(in32, d()), out32)->wait();
    Tensor out16 = Tensor::zeros({S * n}, DType::bf16, d());
    w.all_gather(on(to_bf16(in32), d()), out16)->wait();
    expect_same_bits(out16, to_bf16(host(out32)), "all_gather n=" + std::to_string(n));
    // In place (ZeRO-3's gathers): the input is this rank's range of the output.
    Tensor inplace = Tensor::zeros({S * n}, DType::bf16, d());
    const Tensor mine = inplace.flat_view(w.rank() * n, {n});
    copy(on(to_bf16(in32), d()), mine);
    w.all_gather(mine, inplace)->wait();
    expect_same_bits(inplace, to_bf16(host(out32)), "in-place all_gather n=" + std::to_string(n));
  }
}

TEST_P(Bf16Movement, BroadcastAndSendRecvMoveBf16) {
  Communicator& w = *world_;
  const int S = w.size(), R = w.rank();
  for (int64_t n : kSizes) {
    for (int root = 0; root < S; ++root) {
      Tensor t = on(to_bf16(f32_values(n, R)), d());
      w.broadcast(t, root)->wait();
      expect_same_bits(t, to_bf16(f32_values(n, root)), "broadcast root " + std::to_string(root));
    }
    const int right = (R + 1) % S, left = (R + S - 1) % S;
    Tensor mine = on(to_bf16(f32_values(n, R, 5)), d());
    Tensor got = Tensor::zeros({n}, DType::bf16, d());
    auto s = w.send(mine, right);
    auto r = w.recv(got, left);
    s->wait();
    r->wait();
    expect_same_bits(got, to_bf16(f32_values(n, left, 5)), "ring n=" + std::to_string(n));
  }
}

TEST_P(Bf16Movement, MismatchedDtypesAreRefusedNamingBoth) {
  Communicator& w = *world_;
  const Tensor in = on(to_bf16(f32_values(4, w.rank())), d());
  const Tensor out = Tensor::zeros({w.size() * 4}, DType::f32, d());
  const std::string err = error_of([&] { w.all_gather(in, out); });
  EXPECT_NE(err.find("all_gather"), std::string::npos) << err;
  EXPECT_NE(err.find("bf16"), std::string::npos) << err;
  EXPECT_NE(err.find("f32"), std::string::npos) << err;
  EXPECT_NE(err.find("dtype"), std::string::npos) << err;
}

// MPI moves bf16 as 16-bit patterns and has no bf16 arithmetic: reductions refuse it, naming the
// operation, the argument and the dtype. Host tensors on the CPU world: MPI's behaviour, not a
// device's (NCCL reduces bf16 natively).
TEST(Bf16MovementMpi, RefusesBf16Reductions) {
  CommunicatorOptions options;
  options.timeout_s = 30;
  const std::unique_ptr<Communicator> world = make_world_communicator(Device::cpu(), options);
  Communicator& w = *world;
  const int S = w.size();
  Tensor t = Tensor::zeros({8}, DType::bf16);
  std::string err = error_of([&] { w.all_reduce(t, ReduceOp::kSum); });
  EXPECT_NE(err.find("all_reduce"), std::string::npos) << err;
  EXPECT_NE(err.find("bf16"), std::string::npos) << err;
  EXPECT_NE(err.find("never reduced"), std::string::npos) << err;
  Tensor in = Tensor::zeros({8 * S}, DType::bf16), out = Tensor::zeros({8}, DType::bf16);
  err = error_of([&] { w.reduce_scatter(in, out, ReduceOp::kSum); });
  EXPECT_NE(err.find("reduce_scatter"), std::string::npos) << err;
  EXPECT_NE(err.find("input"), std::string::npos) << err;
  EXPECT_NE(err.find("bf16"), std::string::npos) << err;
}

TESSERA_INSTANTIATE_DEVICE_TESTS(Bf16Movement);

// A group of one and the router take bf16 as well (ZeRO-3 on one rank, the trainer's CUDA
// world for host tensors).
TEST(Bf16MovementLocal, LocalAndRoutedMoveBf16) {
  LocalCommunicator solo("solo");
  const Tensor in = to_bf16(f32_values(9, 0));
  Tensor out = Tensor::zeros({9}, DType::bf16);
  solo.all_gather(in, out)->wait();
  expect_same_bits(out, in, "local all_gather");
  Tensor msg = Tensor::zeros({9}, DType::bf16);
  solo.send(in, 0)->wait();
  solo.recv(msg, 0)->wait();
  expect_same_bits(msg, in, "local send/recv");
  const std::string err = error_of([&] { solo.all_gather(in, Tensor::zeros({9}, DType::f32)); });
  EXPECT_NE(err.find("one dtype"), std::string::npos) << err;

  RoutedCommunicator routed(test_world(), test_world());
  const Tensor in32 = f32_values(7, routed.rank());
  Tensor out16 = Tensor::zeros({7 * routed.size()}, DType::bf16);
  Tensor out32 = Tensor::zeros({7 * routed.size()}, DType::f32);
  routed.all_gather(in32, out32)->wait();
  routed.all_gather(to_bf16(in32), out16)->wait();
  expect_same_bits(out16, to_bf16(out32), "routed all_gather");
}

}  // namespace
}  // namespace tessera::distributed
