#pragma once
// Which instruction-set path the CPU kernels run, chosen once per process.
//
// Hot kernels are compiled three times (TESSERA_CPU_KERNEL in ops/cpu/simd.h): for x86-64-v4
// (AVX-512 F/BW/CD/DQ/VL), x86-64-v3 (AVX2 + FMA) and baseline x86-64. The path is the best one
// the CPU supports, or a lower one named by the environment variable TESSERA_CPU_ISA
// (avx512 | avx2 | baseline), so that every path can be tested and measured on one machine.
// Forcing a lower path also caps oneDNN at the same level (unless ONEDNN_MAX_CPU_ISA is set).

#include <string>

namespace tessera::ops::cpu {

enum class CpuIsa : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The best path this CPU (and OS) supports.
CpuIsa detected_cpu_isa();

// The path in use: detected_cpu_isa() or TESSERA_CPU_ISA. Throws tessera::Error naming the
// variable when it holds an unknown name or a path this CPU cannot run; call it once at
// start-up (the trainer and `tessera info` do) so that the error comes before any work.
CpuIsa cpu_isa();

const char* cpu_isa_name(CpuIsa isa);  // "avx512", "avx2", "baseline"

// One line for logs: the path in use, what the CPU has and why they differ, e.g.
// "avx2 (TESSERA_CPU_ISA; the CPU has avx512, avx512_bf16)".
std::string cpu_isa_summary();

}  // namespace tessera::ops::cpu
