// The BF16-weight kernel on AVX512_BF16's dot product (vdpbf16ps), compiled with -mavx512bf16 for
// this file alone (core/CMakeLists.txt) and only called where cpuid reports it. FP32 panels use
// the AVX-512 kernels.
//
// vdpbf16ps multiplies BF16 by BF16, so each A block is rounded to BF16 pairs first (as a BF16
// model's activations are in torch), then one instruction does two depths of 16 columns: twice
// the multiply-adds of an FP32 FMA. The products are exact in FP32 and summed in FP32: the
// result is the FP32 product of the BF16-rounded activations and weights.
#include "core/engine/packed_gemm_tile.h"

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace moe::kernels {

#if defined(__AVX512BF16__) && defined(__AVX512F__)
namespace {

constexpr int kMr = 12;              // 12 x 2 zmm accumulators + 2 of B, as the AVX-512 tile
constexpr int kAStride = kKc / 2;    // words per packed A row
using F = Vec<16>::f;

// An A tile's row block, (mc, kc) floats -> (mc, ceil(kc / 2)) BF16 pairs (low half the even
// depth), round to nearest even; past kc the halves are zero. A per-thread buffer of one block.
thread_local uint32_t t_a_pairs[kMc * kAStride];

void pack_a(const float* a, int lda, int mc, int kc, uint32_t* dst) {
    for (int i = 0; i < mc; ++i) {
        const float* ai = a + static_cast<ptrdiff_t>(i) * lda;
        uint32_t* di = dst + i * kAStride;
        for (int kk = 0; kk < kc; kk += 32) {
            const int left = kc - kk;
            const __mmask16 m_lo = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
            const __mmask16 m_hi = left >= 32 ? 0xFFFF : left > 16 ? static_cast<__mmask16>((1u << (left - 16)) - 1) : 0;
            const __m512 lo = _mm512_maskz_loadu_ps(m_lo, ai + kk);
            const __m512 hi = _mm512_maskz_loadu_ps(m_hi, ai + kk + 16);
            const __m512bh pairs = _mm512_cvtne2ps_pbh(hi, lo);  // BF16 of a[kk .. kk + 31], in order
            const int words = min_i(16, (left + 1) / 2);
            _mm512_mask_storeu_epi32(di + kk / 2, static_cast<__mmask16>((1u << words) - 1), (__m512i)pairs);
        }
    }
}

template <int MR>
void kernel_dp(const uint32_t* ap, const uint32_t* b, int n_pairs, float* c, int ldc, int n_cols, bool accumulate) {
    F acc[MR][2];
    zero_tile<MR, 16, 2>(acc);
    for (int q = 0; q < n_pairs; ++q) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + q * kPanel);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + q * kPanel + 16);
        for (int i = 0; i < MR; ++i) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[i * kAStride + q]));
            acc[i][0] = (F)_mm512_dpbf16_ps((__m512)acc[i][0], ai, b0);
            acc[i][1] = (F)_mm512_dpbf16_ps((__m512)acc[i][1], ai, b1);
        }
    }
    store_tile<MR, 16, 2>(acc, c, ldc, n_cols, accumulate);
}

template <int MR>
void run_dp(int mr, const uint32_t* ap, const uint32_t* b, int n_pairs, float* c, int ldc, int n_cols, bool accumulate) {
    if constexpr (MR > 1) {
        if (mr < MR) return run_dp<MR - 1>(mr, ap, b, n_pairs, c, ldc, n_cols, accumulate);
    }
    kernel_dp<MR>(ap, b, n_pairs, c, ldc, n_cols, accumulate);
}

// The blocking of gemm_tiles (packed_gemm_tile.h), with the A block rounded to BF16 pairs once
// per (depth block, row block) and reused across the panels.
void gemm_bf16_dp(const float* a, int lda, int m, const PanelView& w, int p_begin, int p_end, float* c, int ldc) {
    const int k = w.n_in;
    uint32_t* ap = t_a_pairs;
    for (int k0 = 0; k0 < k; k0 += kKc) {
        const int kc = min_i(kKc, k - k0);
        const int n_pairs = (kc + 1) / 2;
        for (int m0 = 0; m0 < m; m0 += kMc) {
            const int mc = min_i(kMc, m - m0);
            pack_a(a + static_cast<size_t>(m0) * lda + k0, lda, mc, kc, ap);
            for (int p = p_begin; p < p_end; ++p) {
                const uint32_t* b = w.bf16 + (static_cast<size_t>(p) * ((k + 1) / 2) + k0 / 2) * kPanel;
                const int col0 = p * kPanel;
                const int n_cols = min_i(kPanel, w.n_out - col0);
                for (int i0 = 0; i0 < mc; i0 += kMr)
                    run_dp<kMr>(min_i(kMr, mc - i0), ap + i0 * kAStride, b, n_pairs,
                                c + static_cast<size_t>(m0 + i0) * ldc + col0, ldc, n_cols, k0 > 0);
            }
        }
    }
}

}  // namespace

const KernelSet& avx512bf16_kernels() {
    static const KernelSet k = [] {
        KernelSet s = avx512_kernels();  // FP32 panels and the baselines: AVX-512's
        s.gemm_bf16 = gemm_bf16_dp;
        return s;
    }();
    return k;
}
#else
// Not an x86-64 build: cpu_features never reports AVX512_BF16 here, so this is never called.
const KernelSet& avx512bf16_kernels() { return avx512_kernels(); }
#endif

}  // namespace moe::kernels
