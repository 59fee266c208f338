// The instruction set the code outside the packed kernels was compiled for (CMake's MOE_ARCH), and
// a start-up check that this CPU has it.
//
// Why: the kernels are chosen at run time (cpu_features.h), but everything else (Eigen, the
// tokenizer, the app) is compiled once, for MOE_ARCH. A binary built for x86-64-v3 (the default)
// or for `native` on an AVX-512 machine and copied to an older CPU would die of SIGILL at some
// random instruction. Instead, a constructor that runs before any other initialiser of the
// program (cpu_baseline.cpp, compiled for plain x86-64 and using only C functions) compares
// what the build needs with what cpuid reports and, when something is missing, prints one line
// naming it and how to rebuild, and exits with status 2.
//
// This header is plain C++ with no library templates: cpu_baseline.cpp includes it.
#pragma once

#include <cstddef>

namespace moe {

// One bit per instruction-set extension the compiler may use on its own at -march levels up to
// native on current x86 CPUs.
enum CpuFeatureBit : unsigned {
    kSse3, kSsse3, kSse41, kSse42, kPopcnt, kAvx, kAvx2, kFma, kBmi, kBmi2, kF16c, kLzcnt, kMovbe,
    kAvx512F, kAvx512Bw, kAvx512Vl, kAvx512Dq, kAvx512Cd, kAvx512Vnni, kAvx512Bf16, kAvx512Vbmi,
    kAvx512Vbmi2, kAvx512Ifma, kAvx512Bitalg, kAvx512Vpopcntdq, kAvx512Fp16, kGfni, kVpclmulqdq,
    kAes, kPclmul, kSse4a,
    kCpuFeatureCount
};
// GCC's names for them (as in __builtin_cpu_supports), indexed by CpuFeatureBit.
inline constexpr const char* kCpuFeatureNames[kCpuFeatureCount] = {
    "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "bmi", "bmi2", "f16c", "lzcnt", "movbe",
    "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512vnni", "avx512bf16", "avx512vbmi",
    "avx512vbmi2", "avx512ifma", "avx512bitalg", "avx512vpopcntdq", "avx512fp16", "gfni", "vpclmulqdq",
    "aes", "pclmul", "sse4a",
};

// The extensions the non-kernel code was compiled with (from the compiler's __AVX2__-style macros
// in a file built with the project's flags), and MOE_ARCH as configured ("x86-64-v3", "native").
unsigned long long built_for_features();
const char* built_for_arch();
// What this CPU (and its OS) supports, from cpuid; 0 on non-x86.
unsigned long long supported_features();

// The start-up check's decision as a pure function (the tests feed it made-up CPUs): when
// `required` has a bit `supported` lacks, writes one line (NUL-terminated, cut to `n`) naming
// the program, MOE_ARCH, every missing extension and the rebuild to `out` and returns true.
bool cpu_baseline_message(unsigned long long required, unsigned long long supported, const char* arch,
                          const char* program, char* out, std::size_t n);

}  // namespace moe
