// The register-tiled packed GEMM, written once with compiler vectors and instantiated by each
// instruction-set file (packed_gemm_portable/avx2/avx512.cpp) at its own vector width and tile.
//
// Everything here has internal linkage on purpose (an unnamed namespace in a header): each
// instruction-set file gets its own copy compiled with its own flags, and none can be linked in
// place of another's (see packed_gemm_kernels.h).
//
// [SECTION] Vectors      float / uint32 vectors of L lanes
// [SECTION] Micro-kernels MR rows x 32 columns, FP32 and BF16 panels
// [SECTION] Driver       depth and row blocking over a range of panels
// [SECTION] Baselines    FMA chains and a read-only stream, for the bench
#pragma once

#include "core/engine/packed_gemm_kernels.h"

namespace moe::kernels {
namespace {

// [SECTION] Vectors
template <int L>
struct Vec {
    typedef float f __attribute__((vector_size(4 * L)));
    typedef uint32_t u __attribute__((vector_size(4 * L)));
};

template <class V, class T>
inline V load_v(const T* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
template <class V>
inline void store_v(float* p, V v) {
    __builtin_memcpy(p, &v, sizeof v);
}
inline int min_i(int a, int b) { return a < b ? a : b; }
template <int L>
inline typename Vec<L>::f as_float(typename Vec<L>::u u) {  // the same bits
    typename Vec<L>::f f;
    __builtin_memcpy(&f, &u, sizeof f);
    return f;
}

template <int MR, int L, int NV>
inline void zero_tile(typename Vec<L>::f (&acc)[MR][NV]) {
    for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = typename Vec<L>::f{};
}

// acc (MR, NV vectors) into C's columns [0, n_cols): whole vectors where they fit.
template <int MR, int L, int NV>
inline void store_tile(typename Vec<L>::f (&acc)[MR][NV], float* c, int ldc, int n_cols, bool accumulate) {
    using F = typename Vec<L>::f;
    for (int i = 0; i < MR; ++i) {
        float* ci = c + static_cast<ptrdiff_t>(i) * ldc;
        if (n_cols == L * NV) {
            for (int v = 0; v < NV; ++v) {
                F r = acc[i][v];
                if (accumulate) r += load_v<F>(ci + v * L);
                store_v(ci + v * L, r);
            }
            continue;
        }
        float tile[L * NV];
        for (int v = 0; v < NV; ++v) store_v(tile + v * L, acc[i][v]);
        for (int j = 0; j < n_cols; ++j) ci[j] = accumulate ? ci[j] + tile[j] : tile[j];
    }
}

// [SECTION] Micro-kernels
// Each pass covers L*NV of the panel's 32 columns (AVX-512: one pass of 2 zmm; AVX2: two
// passes of 2 ymm, so 6 x 2 accumulators fit 16 registers). A rows are lda apart, C rows ldc.
// accumulate = false on the first depth block.

// FP32 panel block b (kc, 32).
template <int MR, int L, int NV>
void kernel_f32(const float* a, int lda, const float* b, int kc, float* c, int ldc, int n_cols, bool accumulate) {
    using F = typename Vec<L>::f;
    constexpr int kW = L * NV;
    for (int h = 0; h * kW < n_cols; ++h) {
        F acc[MR][NV];
        zero_tile<MR, L, NV>(acc);
        const float* bh = b + h * kW;
        for (int kk = 0; kk < kc; ++kk) {
            F bv[NV];
            for (int v = 0; v < NV; ++v) bv[v] = load_v<F>(bh + kk * kPanel + v * L);
            for (int i = 0; i < MR; ++i) {
                const float ai = a[static_cast<ptrdiff_t>(i) * lda + kk];
                for (int v = 0; v < NV; ++v) acc[i][v] += ai * bv[v];
            }
        }
        store_tile<MR, L, NV>(acc, c + h * kW, ldc, min_i(kW, n_cols - h * kW), accumulate);
    }
}

// BF16 panel block b (ceil(kc / 2), 32) of uint32 pairs: the low half is depth 2q, the high half
// depth 2q+1, so widening to FP32 is one shift (low) and one mask (high), no shuffles. kc may be
// odd only in the last block (the high half of the last pair is then zero padding).
template <int MR, int L, int NV>
void kernel_bf16(const float* a, int lda, const uint32_t* b, int kc, float* c, int ldc, int n_cols,
                 bool accumulate) {
    using F = typename Vec<L>::f;
    using U = typename Vec<L>::u;
    constexpr int kW = L * NV;
    const int n_pairs = kc / 2;
    for (int h = 0; h * kW < n_cols; ++h) {
        F acc[MR][NV];
        zero_tile<MR, L, NV>(acc);
        const uint32_t* bh = b + h * kW;
        // The even depth over all rows, then the odd one, each widened from the same words (an L1
        // hit): only NV weight registers live at a time, so AVX2's 6 x 2 accumulators fit 16.
        for (int q = 0; q < n_pairs; ++q) {
            const uint32_t* bq = bh + q * kPanel;
            F wv[NV];
            for (int v = 0; v < NV; ++v) wv[v] = as_float<L>(load_v<U>(bq + v * L) << 16);
            for (int i = 0; i < MR; ++i) {
                const float a0 = a[static_cast<ptrdiff_t>(i) * lda + 2 * q];
                for (int v = 0; v < NV; ++v) acc[i][v] += a0 * wv[v];
            }
            for (int v = 0; v < NV; ++v) wv[v] = as_float<L>(load_v<U>(bq + v * L) & 0xFFFF0000u);
            for (int i = 0; i < MR; ++i) {
                const float a1 = a[static_cast<ptrdiff_t>(i) * lda + 2 * q + 1];
                for (int v = 0; v < NV; ++v) acc[i][v] += a1 * wv[v];
            }
        }
        if (kc % 2) {
            F lo[NV];
            for (int v = 0; v < NV; ++v) {
                const U u = load_v<U>(bh + n_pairs * kPanel + v * L);
                lo[v] = as_float<L>(u << 16);
            }
            for (int i = 0; i < MR; ++i) {
                const float a0 = a[static_cast<ptrdiff_t>(i) * lda + 2 * n_pairs];
                for (int v = 0; v < NV; ++v) acc[i][v] += a0 * lo[v];
            }
        }
        store_tile<MR, L, NV>(acc, c + h * kW, ldc, min_i(kW, n_cols - h * kW), accumulate);
    }
}

// A tile of mr <= MR rows with the kernel instantiated for exactly mr.
template <int MR, int L, int NV, bool kBf16>
void run_tile(int mr, const float* a, int lda, const void* b, int kc, float* c, int ldc, int n_cols, bool accumulate) {
    if constexpr (MR > 1) {
        if (mr < MR) return run_tile<MR - 1, L, NV, kBf16>(mr, a, lda, b, kc, c, ldc, n_cols, accumulate);
    }
    if constexpr (kBf16)
        kernel_bf16<MR, L, NV>(a, lda, static_cast<const uint32_t*>(b), kc, c, ldc, n_cols, accumulate);
    else
        kernel_f32<MR, L, NV>(a, lda, static_cast<const float*>(b), kc, c, ldc, n_cols, accumulate);
}

// [SECTION] Driver
// Depth blocks of kKc keep a panel block (kKc x 32 floats: 16 KiB, or 8 KiB in BF16) and an A
// tile in L1 while the row tiles reuse it; row blocks of kMc keep the A block in L2. Products
// of one tile's rows or fewer (decode, small experts) skip the depth blocking: each weight is
// read once, in order, and C is written once.
constexpr int kKc = 128;
constexpr int kMc = 96;

template <int MR, int L, int NV, bool kBf16>
void gemm_tiles(const float* a, int lda, int m, const PanelView& w, int p_begin, int p_end, float* c, int ldc) {
    const int k = w.n_in;
    const int kc_max = m <= MR ? k : kKc;
    for (int k0 = 0; k0 < k; k0 += kc_max) {
        const int kc = min_i(kc_max, k - k0);
        const bool accumulate = k0 > 0;
        for (int m0 = 0; m0 < m; m0 += kMc) {
            const int mc = min_i(kMc, m - m0);
            for (int p = p_begin; p < p_end; ++p) {
                const void* b;
                if constexpr (kBf16)
                    b = w.bf16 + (static_cast<size_t>(p) * ((k + 1) / 2) + k0 / 2) * kPanel;
                else
                    b = w.f32 + (static_cast<size_t>(p) * k + k0) * kPanel;
                const int col0 = p * kPanel;
                const int n_cols = min_i(kPanel, w.n_out - col0);
                for (int i0 = 0; i0 < mc; i0 += MR) {
                    const int row = m0 + i0;
                    run_tile<MR, L, NV, kBf16>(min_i(MR, mc - i0), a + static_cast<size_t>(row) * lda + k0, lda, b, kc,
                                               c + static_cast<size_t>(row) * ldc + col0, ldc, n_cols, accumulate);
                }
            }
        }
    }
}

// [SECTION] Baselines
// kChains independent accumulators: enough to cover FMA latency (4 cycles) times the FMA ports
// (2) with registers to spare. Float recurrences cannot be reassociated without -ffast-math,
// so every FMA really runs.
template <int L, int kChains>
double fma_loop(int64_t iters) {
    using F = typename Vec<L>::f;
    F acc[kChains];
    for (int j = 0; j < kChains; ++j) acc[j] = F{} + 0.001f * static_cast<float>(j + 1);
    volatile float mul_s = 0.999999f, add_s = 1e-7f;  // not constants the compiler could fold
    const F mul = F{} + mul_s, add = F{} + add_s;
    for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 32  // all chains in registers: a loop over j would keep acc[] in memory
        for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * mul + add;
    }
    double sum = 0;
    for (int j = 0; j < kChains; ++j)
        for (int l = 0; l < L; ++l) sum += acc[j][l];
    return sum;
}

// Read-only stream: 4 independent sums so the adds keep up with the loads.
template <int L>
double read_stream(const float* p, size_t n) {
    using F = typename Vec<L>::f;
    F s0 = F{}, s1 = F{}, s2 = F{}, s3 = F{};
    size_t i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
        s0 += load_v<F>(p + i);
        s1 += load_v<F>(p + i + L);
        s2 += load_v<F>(p + i + 2 * L);
        s3 += load_v<F>(p + i + 3 * L);
    }
    const F s = (s0 + s1) + (s2 + s3);
    double sum = 0;
    for (int l = 0; l < L; ++l) sum += s[l];
    for (; i < n; ++i) sum += p[i];
    return sum;
}

}  // namespace
}  // namespace moe::kernels
