// CUDA implementation of ops/matmul.h's products (cuBLASLt) and its small helper kernels.
//
// Row-major to cuBLASLt's column-major: a row-major (r, c) matrix is the column-major (c, r)
// matrix of its transpose, so C = op(A) op(B) (row-major, m x n) is computed as the column-major
// C^T (n x m) = op(B)^T op(A)^T: cuBLASLt's first operand is b, its second is a, and each keeps
// its own transpose flag.
#include <cublasLt.h>

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/matmul.cuh"

namespace tessera::ops::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;
constexpr int kBlock = 256;
constexpr int64_t kChunkRows = 256;  // rows per partial column sum

void check_lt(cublasStatus_t status, const std::string& what) {
  if (status == CUBLAS_STATUS_ALLOC_FAILED) {
    // "out of memory" so that `tessera train` adds its advice (train/run_train.cc).
    throw_error("out of memory in cuBLASLt " + what + " (CUBLAS_STATUS_ALLOC_FAILED)");
  }
  if (status != CUBLAS_STATUS_SUCCESS) {
    // cublasGetStatusString lives in libcublas, which is not linked: the status number.
    throw_error("cuBLASLt " + what + " failed: cublasStatus_t " + std::to_string(int(status)));
  }
}

struct LtDevice {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};

// The handle and workspace of the current device, made on first use and kept for the process.
// The workspace is only used by work on the device's compute stream, so one per device suffices.
const LtDevice& lt_device() {
  static std::mutex mutex;
  static std::deque<LtDevice> devices;  // deque: growing it keeps earlier references valid
  int device = 0;
  ::tessera::cuda::check(cudaGetDevice(&device), "matmul: cudaGetDevice");
  std::lock_guard<std::mutex> lock(mutex);
  if (devices.size() <= size_t(device)) devices.resize(size_t(device) + 1);
  LtDevice& d = devices[size_t(device)];
  if (d.handle == nullptr) {
    check_lt(cublasLtCreate(&d.handle), "cublasLtCreate");
    ::tessera::cuda::check(cudaMalloc(&d.workspace, kWorkspaceBytes), "matmul: workspace");
  }
  return d;
}

// The largest power of two (at most 256) that divides the address.
uint32_t alignment(const void* p) {
  const uintptr_t u = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 1;
  while (a < 256 && (u & (2 * a - 1)) == 0) a *= 2;
  return a;
}

// Owns the descriptors of one call.
struct LtCall {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtCall() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void make_layout(cublasLtMatrixLayout_t* layout, cudaDataType type, int64_t rows, int64_t cols,
                 int64_t batch) {
  check_lt(cublasLtMatrixLayoutCreate(layout, type, uint64_t(rows), uint64_t(cols), rows),
           "cublasLtMatrixLayoutCreate");
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    const int64_t stride = rows * cols;
    check_lt(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                              sizeof(count)),
             "batch count");
    check_lt(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                              &stride, sizeof(stride)),
             "batch stride");
  }
}

// c = beta * c for the k = 0 product (cuBLASLt does not take k = 0); beta = 0 writes zeros.
template <typename T>
__global__ void scale_kernel(T* c, float beta, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (sizeof(T) == 4) {
      c[i] = beta == 0.0f ? 0.0f : beta * c[i];
    } else {
      c[i] = beta == 0.0f ? uint16_t(0) : float_to_bf16_bits(beta * bf16_bits_to_float(c[i]));
    }
  }
}

void lt_gemm(const GemmShape& s, float alpha, const void* a, const void* b, cudaDataType ab_type,
             float beta, void* c, cudaDataType c_type, cudaStream_t stream) {
  if (s.batch == 0 || s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    const int64_t n = s.batch * s.m * s.n;
    if (c_type == CUDA_R_32F) {
      scale_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<float*>(c), beta, n);
    } else {
      scale_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(static_cast<uint16_t*>(c), beta, n);
    }
    check_launch("matmul (k = 0)");
    return;
  }
  const LtDevice& dev = lt_device();
  LtCall call;
  check_lt(cublasLtMatmulDescCreate(&call.op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
           "cublasLtMatmulDescCreate");
  const cublasOperation_t op_first = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;   // Lt's A = b
  const cublasOperation_t op_second = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // Lt's B = a
  check_lt(cublasLtMatmulDescSetAttribute(call.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                          sizeof(op_first)),
           "transa");
  check_lt(cublasLtMatmulDescSetAttribute(call.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                          sizeof(op_second)),
           "transb");
  // Stored column-major shapes (rows, cols) with ld = rows.
  if (s.trans_b) {
    make_layout(&call.a, ab_type, s.k, s.n, s.batch);  // b row-major (n, k)
  } else {
    make_layout(&call.a, ab_type, s.n, s.k, s.batch);  // b row-major (k, n)
  }
  if (s.trans_a) {
    make_layout(&call.b, ab_type, s.m, s.k, s.batch);  // a row-major (k, m)
  } else {
    make_layout(&call.b, ab_type, s.k, s.m, s.batch);  // a row-major (m, k)
  }
  make_layout(&call.c, c_type, s.n, s.m, s.batch);  // c row-major (m, n)
  check_lt(cublasLtMatmulPreferenceCreate(&call.pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = kWorkspaceBytes;
  check_lt(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &ws, sizeof(ws)),
           "workspace preference");
  // Heuristics assume 256-byte aligned buffers unless told otherwise; views into flat buffers
  // may start anywhere, so state each pointer's actual alignment.
  const uint32_t align[4] = {alignment(b), alignment(a), alignment(c), alignment(c)};
  const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i) {
    check_lt(
        cublasLtMatmulPreferenceSetAttribute(call.pref, align_attr[i], &align[i], sizeof(uint32_t)),
        "alignment preference");
  }
  cublasLtMatmulHeuristicResult_t heuristic = {};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      dev.handle, call.op, call.a, call.b, call.c, call.c, call.pref, 1, &heuristic, &found);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0)) {
    // Name everything the heuristic looked at, so a refusal on a GPU can be diagnosed offline.
    throw_error("matmul: cuBLASLt has no algorithm for batch " + std::to_string(s.batch) + " m " +
                std::to_string(s.m) + " n " + std::to_string(s.n) + " k " + std::to_string(s.k) +
                (s.trans_a ? " trans_a" : "") + (s.trans_b ? " trans_b" : "") + " operands " +
                (ab_type == CUDA_R_16BF ? "bf16" : "f32") + " result " +
                (c_type == CUDA_R_16BF ? "bf16" : "f32") + ", pointer alignments a " +
                std::to_string(align[1]) + " b " + std::to_string(align[0]) + " c " +
                std::to_string(align[2]) + " bytes");
  }
  check_lt(status, "cublasLtMatmulAlgoGetHeuristic");
  check_lt(cublasLtMatmul(dev.handle, call.op, &alpha, b, call.a, a, call.b, &beta, c, call.c, c,
                          call.c, &heuristic.algo, dev.workspace, kWorkspaceBytes, stream),
           "cublasLtMatmul for batch " + std::to_string(s.batch) + " m " + std::to_string(s.m) +
               " n " + std::to_string(s.n) + " k " + std::to_string(s.k) +
               (s.trans_a ? " trans_a" : "") + (s.trans_b ? " trans_b" : ""));
}

__device__ inline float load_any(const void* p, bool is_bf16, int64_t i) {
  return is_bf16 ? bf16_bits_to_float(static_cast<const uint16_t*>(p)[i])
                 : static_cast<const float*>(p)[i];
}

__global__ void broadcast_kernel(const void* bias, bool bias_bf16, int64_t cols, int64_t n,
                                 float* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = load_any(bias, bias_bf16, i % cols);
  }
}

__global__ void add_rows_kernel(const void* bias, bool bias_bf16, int64_t cols, int64_t n,
                                uint16_t* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = float_to_bf16_bits(bf16_bits_to_float(y[i]) + load_any(bias, bias_bf16, i % cols));
  }
}

// partial[k, j] = sum of x[r, j] over the rows r of chunk k, in row order. grid (col blocks, k).
template <typename T>
__global__ void column_chunk_kernel(const T* x, int64_t rows, int64_t cols, float* partial) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  const int64_t r0 = blockIdx.y * kChunkRows, r1 = min(rows, r0 + kChunkRows);
  float s = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    if constexpr (sizeof(T) == 4) {
      s += x[r * cols + j];
    } else {
      s += bf16_bits_to_float(x[r * cols + j]);
    }
  }
  partial[blockIdx.y * cols + j] = s;
}

__global__ void column_total_kernel(const float* partial, int64_t chunks, int64_t cols,
                                    float* out) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  float s = 0.0f;
  for (int64_t k = 0; k < chunks; ++k) s += partial[k * cols + j];
  out[j] += s;
}

template <typename T>
void column_sums(const T* x, int64_t rows, int64_t cols, float* out, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
  // chunks <= 65535 (grid.y): 16.7 M rows.
  const dim3 grid(unsigned((cols + kBlock - 1) / kBlock), grid_y(chunks, "column_sums_add"));
  float* partial = nullptr;
  ::tessera::cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&partial),
                                         size_t(chunks * cols) * sizeof(float), stream),
                         "column_sums_add: cudaMallocAsync");
  column_chunk_kernel<<<grid, kBlock, 0, stream>>>(x, rows, cols, partial);
  column_total_kernel<<<grid_for(cols, kBlock), kBlock, 0, stream>>>(partial, chunks, cols, out);
  check_launch("column_sums_add");
  ::tessera::cuda::check(cudaFreeAsync(partial, stream), "column_sums_add: cudaFreeAsync");
}

__global__ void to_bf16_kernel(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    dst[i] = float_to_bf16_bits(src[i]);
  }
}

__global__ void to_f32_kernel(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    dst[i] = bf16_bits_to_float(src[i]);
  }
}

}  // namespace

void gemm_f32(const GemmShape& s, float alpha, const float* a, const float* b, float beta, float* c,
              cudaStream_t stream) {
  lt_gemm(s, alpha, a, b, CUDA_R_32F, beta, c, CUDA_R_32F, stream);
}

void gemm_bf16(const GemmShape& s, float alpha, const bf16* a, const bf16* b, float beta, void* c,
               DType c_dtype, cudaStream_t stream) {
  lt_gemm(s, alpha, a, b, CUDA_R_16BF, beta, c, c_dtype == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F,
          stream);
}

void broadcast_rows(const void* bias, DType bias_dtype, int64_t rows, int64_t cols, float* y,
                    cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  broadcast_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(bias, bias_dtype == DType::bf16,
                                                               cols, n, y);
  check_launch("broadcast_rows");
}

void add_rows_bf16(const void* bias, DType bias_dtype, int64_t rows, int64_t cols, bf16* y,
                   cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  add_rows_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(bias, bias_dtype == DType::bf16, cols,
                                                              n, reinterpret_cast<uint16_t*>(y));
  check_launch("add_rows_bf16");
}

void column_sums_add(const float* x, int64_t rows, int64_t cols, float* out, cudaStream_t stream) {
  column_sums(x, rows, cols, out, stream);
}

void column_sums_add(const bf16* x, int64_t rows, int64_t cols, float* out, cudaStream_t stream) {
  column_sums(reinterpret_cast<const uint16_t*>(x), rows, cols, out, stream);
}

void convert(const float* src, bf16* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  to_bf16_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(src, reinterpret_cast<uint16_t*>(dst),
                                                             n);
  check_launch("convert");
}

void convert(const bf16* src, float* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  to_f32_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(reinterpret_cast<const uint16_t*>(src),
                                                            dst, n);
  check_launch("convert");
}

}  // namespace tessera::ops::cuda
