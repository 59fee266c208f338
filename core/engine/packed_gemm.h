// Matrix multiplies against weights packed once: y = x W^T with W (n_out, n_in) repacked into
// 32-column panels, FP32 or BF16, and register-tiled micro-kernels for the instruction set the
// CPU has (core/engine/cpu_features.h: AVX-512 12 x 32, AVX2+FMA 6 x 16 twice, portable).
//
// Why not Eigen here: Eigen's GEMM repacks BOTH operands on every call. With the few rows an
// expert gets (T*K/N: 64 at T=256, N=8, K=2) repacking a (d_ff, d_model) weight costs about as
// much memory traffic as the multiply itself, and at T=1 it doubles it. And its multi-threaded
// GEMM splits even small products across threads that then spin-wait on each other: on 2 cores
// a 128-byte forward of the language model took 40-60 ms instead of 3 ms. Here the weights are
// packed once and streamed straight from memory; few rows (< 6) are the same kernel with fewer
// rows, a matrix-vector product that reads each weight exactly once; threads split the work
// into independent (row block, panel chunk) tasks, with no waiting inside a product.
//
// BF16 weights (real checkpoints) stay BF16 in memory, half the bytes, and take FP32 activations
// and give FP32 results. The AVX2, AVX-512 and portable kernels widen the weights to FP32 in
// registers (a shift or a mask, the panel layout is made for it) and accumulate in FP32: the
// exact products of the BF16 values. Where the CPU has AVX512_BF16 (Isa::Avx512Bf16) the
// kernel uses vdpbf16ps instead, which also rounds the activations to BF16 (as a BF16 model's
// activations are in torch): twice the multiply-adds per instruction, BF16's precision per
// product, still summed in FP32. MOE_ISA=avx512 keeps the FP32 activations on such a CPU.
//
// Used by the CPU backend's experts (backend_cpu.cpp) and the language model's projections and
// head (lm.cpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/engine/tensor.h"

namespace moe {

inline constexpr int kPanelWidth = 32;  // output columns per panel: two zmm or four ymm
// Below this much work a parallel region costs more than it saves: waking a thread costs
// microseconds on an idle machine and a scheduler slice (milliseconds) on a busy one.
inline constexpr int64_t kPackedParallelMinFlops = int64_t{1} << 21;

using AlignedFloats = std::vector<float, Eigen::aligned_allocator<float>>;
using AlignedWords = std::vector<uint32_t, Eigen::aligned_allocator<uint32_t>>;

// bfloat16 <-> float. The BF16 bits are the top half of the float's; to_bf16 rounds to nearest
// even (as torch's .to(torch.bfloat16) does) and keeps NaN a NaN.
inline float bf16_to_float(uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
inline uint16_t float_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
    u += 0x7FFFu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

enum class WeightType { F32, BF16 };

// W (n_out, n_in), row-major (out, in), repacked in panels of kPanelWidth output rows; missing
// rows are zero.
//   F32:  panel p holds, for every input index kk, W[p*32 .. p*32+31][kk] contiguously.
//   BF16: panel p holds, for every pair of input indices (2q, 2q+1), 32 words: word c is
//         W[p*32+c][2q] in its low 16 bits and W[p*32+c][2q+1] in its high 16 bits (zero past
//         n_in), so the kernel widens both depths with one shift and one mask.
struct PackedMatrix {
    int n_out = 0;
    int n_in = 0;
    int n_panels = 0;
    WeightType type = WeightType::F32;
    AlignedFloats data;   // F32: (n_panels, n_in, 32); empty for BF16
    AlignedWords bf16;    // BF16: (n_panels, ceil(n_in / 2), 32); empty for F32

    void pack(ConstMatRef w);  // w: (n_out, n_in), FP32 panels
    // FP32 panels of w^T, w (n_in, n_out): y = x w without a transposed copy (the backward
    // pass's dx = dy W, and dW = dy^T x with x as the packed side).
    void pack_transposed(ConstMatRef w);
    // BF16 panels from raw bfloat16 bits, row-major (n_out, n_in) with row stride ld (n_in when
    // 0): a safetensors "BF16" tensor as stored, no FP32 copy made.
    void pack_bf16(const uint16_t* w, int n_out, int n_in, int64_t ld = 0);
    // BF16 panels from FP32 weights, each rounded to BF16 (tests, benchmarks, halving memory).
    void pack_bf16(ConstMatRef w);
    size_t weight_bytes() const { return data.size() * sizeof(float) + bf16.size() * sizeof(uint32_t); }
    // What pack()/pack_bf16() allocate for (n_out, n_in): weight_bytes() before packing, for
    // memory estimates of packs held behind an interface (a backend's PackedExperts).
    static size_t packed_bytes(WeightType t, int n_out, int n_in) {
        const size_t panels = static_cast<size_t>((n_out + kPanelWidth - 1) / kPanelWidth);
        return t == WeightType::F32 ? panels * n_in * kPanelWidth * sizeof(float)
                                    : panels * static_cast<size_t>((n_in + 1) / 2) * kPanelWidth * sizeof(uint32_t);
    }
    // Row r of W (n_in floats) read back out of the panels: an embedding table kept only as its
    // packed (tied) head looks a token's row up here instead of holding a second copy.
    void row_to_float(int r, float* out) const {
        const int p = r / kPanelWidth, c = r % kPanelWidth;
        if (type == WeightType::F32) {
            const float* src = data.data() + static_cast<size_t>(p) * n_in * kPanelWidth + c;
            for (int k = 0; k < n_in; ++k) out[k] = src[static_cast<size_t>(k) * kPanelWidth];
            return;
        }
        const int n_pairs = (n_in + 1) / 2;
        const uint32_t* src = bf16.data() + static_cast<size_t>(p) * n_pairs * kPanelWidth + c;
        for (int q = 0; q < n_pairs; ++q) {
            const uint32_t word = src[static_cast<size_t>(q) * kPanelWidth];
            out[2 * q] = bf16_to_float(static_cast<uint16_t>(word & 0xFFFFu));
            if (2 * q + 1 < n_in) out[2 * q + 1] = bf16_to_float(static_cast<uint16_t>(word >> 16));
        }
    }
};

// C[:, columns of panels [p_begin, p_end)] = A W^T for rows [0, m). A (m, n_in) row-major with
// row stride lda, C (m, n_out) with row stride ldc. One thread: callers split work into tasks.
// Runs the active_isa() variant (core/engine/cpu_features.h).
void gemm_packed(const float* a, int lda, int m, const PackedMatrix& w, int p_begin, int p_end,
                 float* c, int ldc);

// y = x W^T: x (n, n_in), y (n, n_out), resized. OpenMP over (row block, panel chunk) tasks
// from kPackedParallelMinFlops of work; the same bits whatever the thread count (every output
// element is computed by one task, in the same order).
void matmul_packed(ConstMatRef x, const PackedMatrix& w, Mat& y);

// Baselines for the bench, run by the active_isa() variant at its vector width, so "peak" means
// this CPU's widest FMA. fma_chains: iters rounds of FMAs on independent register chains; adds
// the FLOPs done to *flops and returns a value to keep (nothing is optimised away).
// read_stream: one read-only pass over p[0, n), returns the sum.
double fma_chains(int64_t iters, double* flops);
double read_stream(const float* p, size_t n);
int isa_vector_floats();  // floats per vector register of the active variant: 4, 8, 16

}  // namespace moe
