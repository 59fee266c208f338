// Matrix multiplies against weights packed once: y = x W^T with W (n_out, n_in) repacked into
// 16-column panels, one register-tiled micro-kernel (6 rows x 16 columns of FMAs).
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
// Used by the CPU backend's experts (backend_cpu.cpp) and the language model's projections and
// head (lm.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/engine/tensor.h"

namespace moe {

inline constexpr int kPanelWidth = 16;  // output columns per panel: two 8-float vectors
// Below this much work a parallel region costs more than it saves: waking a thread costs
// microseconds on an idle machine and a scheduler slice (milliseconds) on a busy one.
inline constexpr int64_t kPackedParallelMinFlops = int64_t{1} << 21;

using AlignedFloats = std::vector<float, Eigen::aligned_allocator<float>>;

// W (n_out, n_in), row-major (out, in), repacked so that panel p holds, for every input index
// kk, the 16 weights W[p*16 .. p*16+15][kk] contiguously; missing rows are zero.
struct PackedMatrix {
    int n_out = 0;
    int n_in = 0;
    int n_panels = 0;
    AlignedFloats data;  // (n_panels, n_in, 16)

    void pack(ConstMatRef w);  // w: (n_out, n_in)
    float* panel(int p) { return data.data() + static_cast<size_t>(p) * n_in * kPanelWidth; }
    const float* panel(int p) const { return data.data() + static_cast<size_t>(p) * n_in * kPanelWidth; }
};

// C[:, columns of panels [p_begin, p_end)] = A W^T for rows [0, m). A (m, n_in) row-major with
// row stride lda, C (m, n_out) with row stride ldc. One thread: callers split work into tasks.
void gemm_packed(const float* a, int lda, int m, const PackedMatrix& w, int p_begin, int p_end,
                 float* c, int ldc);

// y = x W^T: x (n, n_in), y (n, n_out), resized. OpenMP over (row block, panel chunk) tasks
// from kPackedParallelMinFlops of work; the same bits whatever the thread count (every output
// element is computed by one task, in the same order).
void matmul_packed(ConstMatRef x, const PackedMatrix& w, Mat& y);

}  // namespace moe
