// The packed kernels' entry points, one set per instruction set (packed_gemm_portable.cpp,
// packed_gemm_avx2.cpp, packed_gemm_avx512.cpp), chosen by packed_gemm.cpp from active_isa().
//
// Raw pointers and plain structs only, no Eigen and no standard-library templates: the three
// files are compiled with different -m flags, and an inline function or template shared with
// the rest of the program could be emitted (and then linked) in its AVX-512 form, breaking the
// "runs on an older CPU" promise. Internal to core/engine/.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moe::kernels {

inline constexpr int kPanel = 32;  // output columns per panel (moe::kPanelWidth)

// One packed matrix, either element type (see moe::PackedMatrix for the layouts).
struct PanelView {
    const float* f32 = nullptr;      // (n_panels, n_in, 32) or null
    const uint32_t* bf16 = nullptr;  // (n_panels, ceil(n_in / 2), 32) pairs of bf16, or null
    int n_out = 0, n_in = 0, n_panels = 0;
};

// C[0..m)[columns of panels [p_begin, p_end)] = A W^T. A (m, n_in) with row stride lda, C with
// row stride ldc. One thread.
using GemmFn = void (*)(const float* a, int lda, int m, const PanelView& w, int p_begin, int p_end, float* c,
                        int ldc);

struct KernelSet {
    GemmFn gemm_f32 = nullptr;
    GemmFn gemm_bf16 = nullptr;  // FP32 activations, BF16 weights, FP32 accumulation
    int vector_floats = 0;       // floats per register: 4, 8, 16
    // Baselines for the bench, at this variant's vector width: iters x n_chains FMAs on
    // independent register chains (returns a sum so nothing is optimised away), and a
    // read-only pass over n floats (returns their sum).
    int fma_chains = 0;
    double (*fma_loop)(int64_t iters) = nullptr;
    double (*read_stream)(const float* p, size_t n) = nullptr;
};

const KernelSet& portable_kernels();
const KernelSet& avx2_kernels();    // only callable where the CPU has AVX2+FMA
const KernelSet& avx512_kernels();  // only callable where the CPU has AVX-512 F/BW/VL
const KernelSet& avx512bf16_kernels();  // ... and AVX512_BF16

}  // namespace moe::kernels
