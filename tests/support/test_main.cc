#include <gtest/gtest.h>

#include <cstdio>
#include <exception>

#include "core/threads.h"
#include "ops/cpu/isa.h"

// Exit status of a test binary asked (TESSERA_CPU_ISA) for an instruction-set path this CPU
// lacks; CTest reports it as skipped with the reason printed (tests/ops/CMakeLists.txt).
constexpr int kIsaUnavailableStatus = 77;

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  tessera::init_threads_from_env();
  namespace cpu = tessera::ops::cpu;
  try {
    // Every test output says which CPU path its kernels ran.
    std::printf("[ cpu path ] %s\n", cpu::cpu_isa_summary().c_str());
  } catch (const std::exception& e) {
    std::printf("[ cpu path ] skipped: %s\n", e.what());
    return kIsaUnavailableStatus;
  }
  return RUN_ALL_TESTS();
}
