#include "models/layers/tensor_parallel.h"

#include <cmath>

#include "ops/reduce.h"

namespace tessera::models {

void tp_all_reduce(const ParamStore& store, const Tensor& t, distributed::ReduceOp op) {
  distributed::Communicator* tp = store.tp_comm();
  if (tp == nullptr) {
    TESSERA_CHECK(store.tp_size() == 1, "tensor parallel layer with tp_size ", store.tp_size(),
                  " but no TP communicator (build the model with one: make_model(config, tp))");
    return;
  }
  tp->all_reduce(t, op)->wait();
}

double tp_grad_l2_norm(const ParamStore& store) {
  if (store.tp_comm() == nullptr) return ops::l2_norm(store.grads());
  double split = 0, replicated = 0;
  for (size_t id = 0; id < store.infos().size(); ++id) {
    const ParamInfo& info = store.infos()[id];
    const double ss = ops::sum_squares(store.grad(static_cast<ParamId>(id)));
    (info.spec.split_dim >= 0 ? split : replicated) += ss;
  }
  // f32 all-reduce of a double: ample for a norm, and identical on every rank. A host tensor also
  // for CUDA parameters: the sums are on the host already, and the TP group of a CUDA run (a
  // RoutedCommunicator) sends host tensors over MPI.
  Tensor t = Tensor::empty({1}, DType::f32);
  t.data<float>()[0] = static_cast<float>(split);
  tp_all_reduce(store, t);
  return std::sqrt(double(t.data<float>()[0]) + replicated);
}

}  // namespace tessera::models
