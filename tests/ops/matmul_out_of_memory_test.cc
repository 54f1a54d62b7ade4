// oneDNN running out of memory inside a matmul (its packing buffers, as under `ulimit -v`) ends
// in a tessera::Error that says "out of memory" and names the oneDNN call, the op and its shapes
// (ops/cpu/onednn_status.h), so that `tessera train` adds its advice on what to change
// (train/run_train.cc; tests/train/onednn_out_of_memory_test.sh checks that end to end).
//
// Each case runs in a forked child: it allocates the operands, runs the product once (oneDNN
// generates its kernels and frees its buffers), then lowers its own address-space limit
// (RLIMIT_AS) to what it has mapped now and runs the product again. A fixed mmap threshold makes
// every large allocation a fresh mapping, so oneDNN's next buffer is what the limit refuses. The
// parent never runs a product itself (no OpenMP threads exist when it forks).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/tensor.h"
#include "ops/matmul.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// This process's address space (VmSize), the quantity RLIMIT_AS limits.
size_t address_space_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmSize:", 0) == 0) return size_t(std::stoull(line.substr(7))) * 1024;
  }
  return 0;
}

// Runs prepare() and then fn() in a forked child, fn under an address-space limit of what the
// child has mapped after prepare(). Returns what fn threw ("tessera::Error: ..." or
// "std::exception: ..."), "no error", or how the child ended.
std::string run_in_limited_child(const std::function<void()>& prepare,
                                 const std::function<void()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    close(fds[0]);
    std::string message;
    try {
      omp_set_num_threads(1);                 // no thread stacks to map under the limit
      mallopt(M_MMAP_THRESHOLD, 128 * 1024);  // fixed: large blocks are fresh mappings
      mallopt(M_ARENA_MAX, 1);  // no spare arena whose reserved heap a failed malloc falls back to
      prepare();
      const rlimit limit{address_space_bytes(), RLIM_INFINITY};
      if (setrlimit(RLIMIT_AS, &limit) != 0) {
        message = "setrlimit failed";
      } else {
        fn();
        message = "no error";
      }
    } catch (const Error& e) {
      message = std::string("tessera::Error: ") + e.what();
    } catch (const std::exception& e) {
      message = std::string("std::exception: ") + e.what();
    }
    const ssize_t written = write(fds[1], message.data(), message.size());
    _exit(written == ssize_t(message.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string message;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) message.append(buffer, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return "child killed by signal " + std::to_string(WTERMSIG(status));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child failed: " + message;
  std::printf("child: %s\n", message.c_str());
  return message;
}

// GPT-2's head on one vocabulary slice: (512, 768) @ (8533, 768)^T.
TEST(MatmulOutOfMemory, f32_sgemm_cpu) {
  Tensor a, b, out;
  const auto product = [&] { ops::matmul(a, b, out, false, /*trans_b=*/true); };
  const std::string message = run_in_limited_child(
      [&] {
        a = Tensor::zeros({512, 768}, DType::f32);
        b = Tensor::zeros({8533, 768}, DType::f32);
        out = Tensor::empty({512, 8533}, DType::f32);
        product();
      },
      product);
  EXPECT_THAT(message, HasSubstr("tessera::Error: out of memory in oneDNN's dnnl_sgemm"));
  EXPECT_THAT(message, HasSubstr("f32 matmul m=512 n=8533 k=768 trans_b: A (512, 768), "
                                 "B (8533, 768), C (512, 8533)"));
}

// A batched product (attention's shape class) names its batch.
TEST(MatmulOutOfMemory, f32_sgemm_batched_cpu) {
  Tensor a, b, out;
  const auto product = [&] { ops::matmul(a, b, out, /*trans_a=*/true, false); };
  const std::string message = run_in_limited_child(
      [&] {
        a = Tensor::zeros({2, 768, 1024}, DType::f32);
        b = Tensor::zeros({2, 768, 2048}, DType::f32);
        out = Tensor::empty({2, 1024, 2048}, DType::f32);
        product();
      },
      product);
  EXPECT_THAT(message, HasSubstr("tessera::Error: out of memory in oneDNN's dnnl_sgemm"));
  EXPECT_THAT(message,
              HasSubstr("f32 matmul batch=2 m=1024 n=2048 k=768 trans_a: A (2, 768, 1024), "
                        "B (2, 768, 2048), C (2, 1024, 2048)"));
}

// bf16: oneDNN's matmul primitive where this CPU path has one, else the f32 sgemm on widened
// operands (the isa variants of this test). The product runs first on another thread, so the
// primitive exists and only this thread's per-thread buffers (the primitive's scratchpad, or the
// widened copies) are left to allocate under the limit. (Creating a oneDNN primitive under the
// limit is not tested: oneDNN 2.6's kernel generation crashed with SIGSEGV there.)
TEST(MatmulOutOfMemory, bf16_cpu) {
  Tensor a, b, out;
  const auto product = [&] { ops::matmul(a, b, out, false, /*trans_b=*/true); };
  const std::string message = run_in_limited_child(
      [&] {
        a = Tensor::zeros({512, 768}, DType::bf16);
        b = Tensor::zeros({8533, 768}, DType::bf16);
        out = Tensor::empty({512, 8533}, DType::f32);
        std::thread(product).join();
      },
      product);
  EXPECT_THAT(message, HasSubstr("tessera::Error: out of memory"));
  EXPECT_THAT(message, HasSubstr("bf16 matmul m=512 n=8533 k=768 trans_b: A (512, 768), "
                                 "B (8533, 768), C (512, 8533)"));
}

}  // namespace
}  // namespace tessera
