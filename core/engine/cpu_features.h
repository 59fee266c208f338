// Which instruction set the packed kernels (core/engine/packed_gemm.h) run with, chosen once per
// process from cpuid, and why.
//
// Why at run time: a binary built on an AVX-512 machine must still run on an AVX2-only laptop
// (no illegal instruction), and one built for a plain x86-64 must still use AVX-512 where it
// finds it. So the kernels are compiled three times, one file per instruction set with its own
// flags (core/CMakeLists.txt), and this picks one. MOE_ISA=portable|avx2|avx512|avx512bf16 forces a
// variant (tests and benchmarks compare them); a variant the CPU lacks falls back to the best
// one it has, and the reason says so.
#pragma once

#include <string>

namespace moe {

enum class Isa {
    Portable,  // compiler vectors at the baseline width (SSE2 on x86-64), no FMA
    Avx2,      // AVX2 + FMA, 16 ymm registers
    Avx512,    // AVX-512 F/BW/VL, 32 zmm registers; BF16 weights widened to FP32 in registers
    // Avx512 plus AVX512_BF16: BF16 weights by vdpbf16ps, the activations rounded to BF16 for
    // it (twice the multiply-adds per instruction; FP32 weights as Avx512)
    Avx512Bf16,
};

inline constexpr Isa kAllIsas[] = {Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16};

struct CpuFeatures {
    bool avx2 = false, fma = false;                            // both needed for Isa::Avx2
    bool avx512f = false, avx512bw = false, avx512vl = false;  // all three for Isa::Avx512
    bool avx512bf16 = false;                                   // vdpbf16ps
};

const CpuFeatures& cpu_features();  // cpuid (and the OS's register-state support), once
bool isa_supported(Isa isa);        // this CPU can run the variant
const char* isa_name(Isa isa);      // "portable", "avx2", "avx512", "avx512bf16"

// The variant in use. The first call decides: MOE_ISA if set and supported, else the widest the
// CPU has.
Isa active_isa();
// One line for the bench, the CLI and the app: "avx512 (cpuid: AVX-512 F/BW/VL, AVX512_BF16)"
// or "avx2 (MOE_ISA=avx512 asked for, but this CPU lacks AVX-512 F/BW/VL)".
std::string isa_reason();
// Switches the variant for the whole process (tests and the bench compare them). Throws
// moe::Error when the CPU cannot run it. Not while another thread runs a kernel.
void set_isa(Isa isa);

}  // namespace moe
