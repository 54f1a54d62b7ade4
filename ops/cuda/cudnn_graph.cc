#include "ops/cuda/cudnn_graph.h"

#include <cuda_runtime.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "core/error.h"

namespace tessera::ops::cuda::cudnn {

void check(cudnnStatus_t s, const std::string& what) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  // An allocation failure reads "out of memory" so that `tessera train` adds its advice
  // (train/run_train.cc).
  const bool oom = s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                   s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
  throw_error(absl::StrCat(oom ? "out of memory in " : "", "cuDNN ", what, ": ",
                           cudnnGetErrorString(s),
                           detail[0] ? absl::StrCat(" (", detail, ")") : std::string()));
}

Desc::Desc(cudnnBackendDescriptorType_t type) {
  check(cudnnBackendCreateDescriptor(type, &d_), "cudnnBackendCreateDescriptor");
}

Desc::~Desc() {
  if (d_) cudnnBackendDestroyDescriptor(d_);
}

Desc& Desc::set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
                const void* values) {
  check(cudnnBackendSetAttribute(d_, name, type, count, values),
        absl::StrCat("cudnnBackendSetAttribute(", int(name), ")"));
  return *this;
}

Desc& Desc::set_desc(cudnnBackendAttributeName_t name, const Desc& other) {
  cudnnBackendDescriptor_t d = other.get();
  return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d);
}

Desc& Desc::finalize(const char* what) {
  check(cudnnBackendFinalize(d_), absl::StrCat("finalize ", what));
  return *this;
}

Desc& GraphBuilder::own(cudnnBackendDescriptorType_t type) {
  owned_.push_back(std::make_unique<Desc>(type));
  return *owned_.back();
}

const Desc& GraphBuilder::tensor(int64_t uid, cudnnDataType_t type, const Dims& dims,
                                 const Dims& strides, bool is_virtual, bool by_value,
                                 bool reorder_f16x16) {
  const int64_t alignment = 16;
  const bool v = is_virtual, bv = by_value;
  Desc& t = own(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type)
      .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data())
      .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data())
      .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)
      .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment)
      .set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v)
      .set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &bv);
  if (reorder_f16x16) {
    const cudnnBackendTensorReordering_t mode = CUDNN_TENSOR_REORDERING_F16x16;
    t.set(CUDNN_ATTR_TENSOR_REORDERING_MODE, CUDNN_TYPE_TENSOR_REORDERING_MODE, 1, &mode);
  }
  t.finalize("tensor");
  return t;
}

const Desc& GraphBuilder::virt(cudnnDataType_t type, const Dims& dims, bool reorder_f16x16) {
  const Dims strides = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
  return tensor(next_virtual_++, type, dims, strides, /*is_virtual=*/true, false, reorder_f16x16);
}

const Desc& GraphBuilder::virt_strided(cudnnDataType_t type, const Dims& dims,
                                       const Dims& strides) {
  return tensor(next_virtual_++, type, dims, strides, /*is_virtual=*/true);
}

void GraphBuilder::reshape(const Desc& x, const Desc& y) {
  Desc& op = own(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
  op.set_desc(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x)
      .set_desc(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y)
      .finalize("reshape operation");
  ops_.push_back(op.get());
}

void GraphBuilder::operation(
    cudnnBackendDescriptorType_t type,
    const std::vector<std::pair<cudnnBackendAttributeName_t, const Desc*>>& tensors,
    const char* what) {
  Desc& op = own(type);
  for (const auto& [attribute, tensor] : tensors) op.set_desc(attribute, *tensor);
  op.finalize(what);
  ops_.push_back(op.get());
}

void GraphBuilder::matmul(const Desc& a, const Desc& b, const Desc& c) {
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  Desc& m = own(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
  m.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32).finalize("matmul");
  Desc& op = own(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
  op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c)
      .set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, m)
      .finalize("matmul operation");
  ops_.push_back(op.get());
}

void GraphBuilder::pointwise(cudnnPointwiseMode_t mode, const Desc& x, const Desc* b, const Desc& y,
                             const Desc* t, int64_t axis, cudnnDataType_t compute) {
  Desc& p = own(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  p.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode)
      .set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  if (axis >= 0) p.set(CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
  p.finalize("pointwise");
  Desc& op = own(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, p)
      .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
  if (b) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *b);
  op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
  if (t) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, *t);
  op.finalize("pointwise operation");
  ops_.push_back(op.get());
}

void GraphBuilder::reduction(cudnnReduceTensorOp_t reduce, const Desc& x, const Desc& y) {
  const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  Desc& r = own(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
  r.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &reduce)
      .set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32)
      .finalize("reduction");
  Desc& op = own(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
  op.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x)
      .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y)
      .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, r)
      .finalize("reduction operation");
  ops_.push_back(op.get());
}

void GraphBuilder::finalize_graph(cudnnHandle_t handle, const std::string& what) {
  what_ = what;
  graph_ = std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  graph_->set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(ops_.size()),
              ops_.data());
  if (handle) graph_->set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  graph_->finalize(absl::StrCat(what, ": operation graph").c_str());
}

void GraphBuilder::build(cudnnHandle_t handle, const std::string& what) {
  finalize_graph(handle, what);

  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, *graph_)
      .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode)
      .finalize("engine heuristics");
  int64_t count = 0;
  check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
        absl::StrCat(what, ": engine count"));
  TESSERA_CHECK(count > 0, "cuDNN ", what, ": heuristics found no engine for the graph");
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs_.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(configs_.back()->get());
  }
  int64_t returned = 0;
  check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, raw.data()),
        absl::StrCat(what, ": engine configurations"));
  std::string errors;
  for (int64_t i = 0; i < returned; ++i) {
    try {
      auto plan = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)
          .set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, *configs_[i])
          .finalize("execution plan");
      int64_t bytes = 0, n = 0;
      check(cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                     CUDNN_TYPE_INT64, 1, &n, &bytes),
            "workspace size");
      plan_ = std::move(plan);
      workspace_ = bytes;
      return;
    } catch (const Error& e) {
      absl::StrAppend(&errors, errors.empty() ? "" : "; ", "engine config ", i, ": ", e.what());
    }
  }
  throw_error(absl::StrCat("cuDNN ", what, ": no engine configuration finalized (", returned,
                           " tried): ", errors));
}

void GraphBuilder::execute(cudnnHandle_t handle, const std::vector<int64_t>& uids,
                           const std::vector<void*>& pointers, void* workspace) const {
  TESSERA_CHECK(plan_ != nullptr, "cuDNN ", what_, ": execute before build");
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data())
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(pointers.size()),
           pointers.data())
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace)
      .finalize("variant pack");
  check(cudnnBackendExecute(handle, plan_->get(), pack.get()), absl::StrCat(what_, ": execute"));
}

cudnnHandle_t handle_for_current_device() {
  static std::mutex mutex;
  static std::vector<cudnnHandle_t> handles;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) throw_error("cuDNN: cudaGetDevice failed");
  std::lock_guard<std::mutex> lock(mutex);
  if (int(handles.size()) <= device) handles.resize(size_t(device) + 1, nullptr);
  if (!handles[device]) check(cudnnCreate(&handles[device]), "cudnnCreate");
  return handles[device];
}

}  // namespace tessera::ops::cuda::cudnn
