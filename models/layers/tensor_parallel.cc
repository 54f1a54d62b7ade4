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
  // Sums of squares over runs of neighbouring parameters of one kind (split or replicated) in the
  // flat layout (reverse registration order): one reduction -- on a device one read-back -- per
  // run instead of one per parameter.
  double split = 0, replicated = 0;
  const std::vector<ParamInfo>& infos = store.infos();
  int64_t run_begin = 0, run_end = 0;
  bool run_split = false;
  auto flush = [&] {
    if (run_end == run_begin) return;
    const double ss = ops::sum_squares(store.grads().flat_view(run_begin, {run_end - run_begin}));
    (run_split ? split : replicated) += ss;
  };
  for (auto it = infos.rbegin(); it != infos.rend(); ++it) {
    if (it->offset >= store.trainable_numel()) continue;  // frozen: no gradient (freeze())
    const bool is_split = it->spec.split_dim >= 0;
    if (it->offset != run_end || is_split != run_split) {
      flush();
      run_begin = it->offset;
      run_split = is_split;
    }
    run_end = it->offset + it->numel;
  }
  flush();
  // f32 all-reduce of a double: ample for a norm, and identical on every rank. A host tensor also
  // for CUDA parameters: the sums are on the host already, and the TP group of a CUDA run (a
  // RoutedCommunicator) sends host tensors over MPI.
  Tensor t = Tensor::empty({1}, DType::f32);
  t.data<float>()[0] = static_cast<float>(split);
  tp_all_reduce(store, t);
  return std::sqrt(double(t.data<float>()[0]) + replicated);
}

}  // namespace tessera::models
