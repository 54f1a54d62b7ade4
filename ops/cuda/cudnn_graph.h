#pragma once
// A thin layer over cuDNN 9's backend graph API (cudnn_graph.h: cudnnBackendCreateDescriptor,
// ...SetAttribute, ...Finalize, ...Execute), enough to describe an operation graph of matmuls,
// pointwise ops and reductions, let cuDNN's heuristics pick an engine, and run the plan.
// Every failure throws tessera::Error with cuDNN's status and its last error message. CUDA
// builds only (linked against libcudnn).

#include <cudnn.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tessera::ops::cuda::cudnn {

// One backend descriptor, destroyed with its owner.
class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t type);
  ~Desc();
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;

  Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
            const void* values);
  Desc& set_desc(cudnnBackendAttributeName_t name, const Desc& other);  // one descriptor
  Desc& finalize(const char* what);
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

using Dims = std::array<int64_t, 4>;

// Builds one operation graph. Tensors get unique ids; the builder owns every descriptor, so they
// live as long as the plan made from it.
class GraphBuilder {
 public:
  // A 4-D tensor. Non-virtual tensors are bound to pointers by `uid` at execution.
  const Desc& tensor(int64_t uid, cudnnDataType_t type, const Dims& dims, const Dims& strides,
                     bool is_virtual, bool by_value = false, bool reorder_f16x16 = false);
  // A virtual tensor with a fresh id (>= 1000), row-major strides (or the given ones).
  const Desc& virt(cudnnDataType_t type, const Dims& dims, bool reorder_f16x16 = false);
  const Desc& virt_strided(cudnnDataType_t type, const Dims& dims, const Dims& strides);

  void matmul(const Desc& a, const Desc& b, const Desc& c);  // f32 compute
  // y = op(x) / op(x, b) / op(x, b, t); axis: for GEN_INDEX; compute: the math precision
  // (BOOLEAN for comparisons).
  void pointwise(cudnnPointwiseMode_t mode, const Desc& x, const Desc* b, const Desc& y,
                 const Desc* t = nullptr, int64_t axis = -1,
                 cudnnDataType_t compute = CUDNN_DATA_FLOAT);
  void reduction(cudnnReduceTensorOp_t op, const Desc& x, const Desc& y);  // f32 compute
  void reshape(const Desc& x, const Desc& y);  // y: x's elements under other dims/strides
  // One operation of `type` whose attributes are tensor descriptors (e.g. the fused SDPA ops).
  void operation(cudnnBackendDescriptorType_t type,
                 const std::vector<std::pair<cudnnBackendAttributeName_t, const Desc*>>& tensors,
                 const char* what);

  // Finalizes the graph on `handle` and the first engine configuration of heuristics mode A
  // that finalizes into a plan.
  void build(cudnnHandle_t handle, const std::string& what);
  // Finalizes the operation graph only. With a null handle no engine can be chosen afterwards,
  // but every descriptor and the graph itself are validated by cuDNN on the host: the test of
  // the attention graphs on a machine without a GPU.
  void finalize_graph(cudnnHandle_t handle, const std::string& what);
  int64_t workspace_bytes() const { return workspace_; }
  // Runs the plan: uids[i] bound to pointers[i] (device memory, or host memory for by-value
  // tensors); workspace of workspace_bytes().
  void execute(cudnnHandle_t handle, const std::vector<int64_t>& uids,
               const std::vector<void*>& pointers, void* workspace) const;

 private:
  Desc& own(cudnnBackendDescriptorType_t type);

  std::vector<std::unique_ptr<Desc>> owned_;
  std::vector<cudnnBackendDescriptor_t> ops_;
  std::unique_ptr<Desc> graph_, plan_;
  std::vector<std::unique_ptr<Desc>> configs_;
  int64_t next_virtual_ = 1000;
  int64_t workspace_ = 0;
  std::string what_;
};

// The cuDNN handle of the current device (made on first use).
cudnnHandle_t handle_for_current_device();

// Throws "cuDNN WHAT: <status> (<last error message>)" unless s is success.
void check(cudnnStatus_t s, const std::string& what);

}  // namespace tessera::ops::cuda::cudnn
