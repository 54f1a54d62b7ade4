// models::tp_grad_l2_norm on every device, over tensor-parallel groups of 1, 2 and 4 ranks run
// as threads of this process (tests/support/thread_group.h, so the CUDA variant needs neither MPI
// nor NCCL): each rank holds its shards of the split gradients and all of the replicated ones;
// the norm every rank computes equals the L2 norm of the unsplit gradients, summed on the host in
// double, and is the same on every rank. Parameters split along dimension 0 and 1 and replicated
// ones alternate in the layout, so the split/replicated bookkeeping is what is tested.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "models/layers/tensor_parallel.h"
#include "models/param_store.h"
#include "tests/support/devices.h"
#include "tests/support/thread_group.h"

namespace tessera::models {
namespace {

struct Spec {
  std::string name;
  Shape shape;
  int split_dim;
};

const Spec kSpecs[] = {{"a.weight", {8, 6}, 0}, {"a.bias", {8}, 0},     {"ln.weight", {6}, -1},
                       {"c.weight", {6, 8}, 1}, {"c.bias", {6}, -1},    {"emb.weight", {12, 6}, 0},
                       {"ln2.bias", {4}, -1},   {"d.weight", {4, 4}, 1}};

// Global gradient element i of parameter k: multiples of 1/16, some of each sign.
float global_grad(int k, int64_t i) {
  return float(((i * 7 + k * 13) % 37) - 18) / 16.0f;
}

// Fills every gradient of `store` with this rank's part of the global gradients.
void fill_local_grads(ParamStore& store) {
  for (size_t k = 0; k < store.infos().size(); ++k) {
    const ParamInfo& info = store.infos()[k];
    const Shape& g = info.spec.shape;
    const int d = store.tp_size() > 1 ? info.spec.split_dim : -1;
    int64_t inner = 1;
    for (int j = d + 1; d >= 0 && j < int(g.size()); ++j) inner *= g[j];
    const int64_t local_split = d >= 0 ? info.local_shape[d] : 1, global_split = d >= 0 ? g[d] : 1;
    Tensor host = Tensor::empty(info.local_shape, DType::f32);
    for (int64_t l = 0; l < info.numel; ++l) {
      int64_t global = l;
      if (d >= 0) {
        const int64_t o = l / (local_split * inner), rest = l % (local_split * inner);
        global = (o * global_split + info.local_begin + rest / inner) * inner + rest % inner;
      }
      host.data<float>()[l] = global_grad(int(k), global);
    }
    copy(host, store.grad(ParamId(k)));
  }
}

double reference_norm() {
  double ss = 0;
  int k = 0;
  for (const Spec& s : kSpecs) {
    for (int64_t i = 0; i < shape_numel(s.shape); ++i) ss += std::pow(double(global_grad(k, i)), 2);
    ++k;
  }
  return std::sqrt(ss);
}

class TpNormTest : public testing::DeviceTest {};

TEST_P(TpNormTest, EqualsTheUnsplitNormOnEveryRank) {
  const double want = reference_norm();
  for (const int tp : {1, 2, 4}) {
    SCOPED_TRACE("tensor_parallel " + std::to_string(tp));
    testing::Rendezvous group(tp);
    std::vector<std::unique_ptr<testing::ThreadRank>> comms;
    std::vector<std::unique_ptr<ParamStore>> stores;
    for (int r = 0; r < tp; ++r) {
      comms.push_back(std::make_unique<testing::ThreadRank>(group, r, "tp"));
      // A group of one: no communicator, the plain l2_norm path.
      stores.push_back(std::make_unique<ParamStore>(tp > 1 ? comms[r].get() : nullptr));
      for (const Spec& s : kSpecs) {
        stores[r]->add({s.name, s.shape, s.split_dim, Init::zeros(), ParamGroup::kWeight});
      }
      stores[r]->finalize(device());
      fill_local_grads(*stores[r]);
    }
    std::vector<double> norms(tp);
    std::vector<std::string> errors(tp);
    std::vector<std::thread> threads;
    for (int r = 0; r < tp; ++r) {
      threads.emplace_back([&, r] {
        try {
          norms[r] = tp_grad_l2_norm(*stores[r]);
        } catch (const std::exception& e) {
          errors[r] = e.what();
          group.fail();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < tp; ++r) {
      ASSERT_EQ(errors[r], "") << "rank " << r;
      EXPECT_EQ(norms[r], norms[0]) << "rank " << r;
      // The split part crosses the group as one f32: ~1e-7 relative.
      EXPECT_NEAR(norms[r], want, 1e-6 * want) << "rank " << r;
    }
  }
}

TESSERA_INSTANTIATE_DEVICE_TESTS(TpNormTest);

}  // namespace
}  // namespace tessera::models
