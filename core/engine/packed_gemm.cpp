// The packed GEMM (see packed_gemm.h).
//
// [SECTION] Packing
// [SECTION] Micro-kernel     MR x 16 register tile, the only hot loop
// [SECTION] Packed GEMM      C = A W^T over a range of rows and output panels
// [SECTION] Parallel product
#include "core/engine/packed_gemm.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace moe {

namespace {
constexpr int kMr = 6;    // rows per register tile: 6 x 2 accumulators + 2 B + 1 A = 15 ymm
constexpr int kKc = 256;  // depth block: a panel block (16 KiB) and an A tile (6 KiB) stay in L1
constexpr int kMc = 96;   // row block: A block (96 x 256 floats, 96 KiB) stays in L2
}  // namespace

// [SECTION] Packing
void PackedMatrix::pack(ConstMatRef w) {
    n_out = static_cast<int>(w.rows());
    n_in = static_cast<int>(w.cols());
    n_panels = (n_out + kPanelWidth - 1) / kPanelWidth;
    data.assign(static_cast<size_t>(n_panels) * n_in * kPanelWidth, 0.0f);
    for (int p = 0; p < n_panels; ++p) {
        float* dst = panel(p);
        const int cols = std::min(kPanelWidth, n_out - p * kPanelWidth);
        for (int c = 0; c < cols; ++c)
            for (int kk = 0; kk < n_in; ++kk) dst[static_cast<size_t>(kk) * kPanelWidth + c] = w(p * kPanelWidth + c, kk);
    }
}

namespace {
// [SECTION] Micro-kernel
// GCC/Clang vector extensions: AVX2+FMA registers with -march=native, plain SSE otherwise.
typedef float V8 __attribute__((vector_size(32)));

inline V8 load8(const float* p) {
    V8 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store8(float* p, V8 v) { std::memcpy(p, &v, sizeof v); }

// C[0..MR)[0..n_cols) (+)= A[0..MR)[0..kc) * B, B one panel block (kc, 16). A rows are lda
// apart, C rows ldc apart. accumulate = false on the first depth block.
template <int MR>
void micro_kernel(const float* a, int lda, const float* b, int kc, float* c, int ldc, int n_cols,
                  bool accumulate) {
    V8 acc0[MR], acc1[MR];
    for (int i = 0; i < MR; ++i) {
        acc0[i] = V8{};
        acc1[i] = V8{};
    }
    for (int kk = 0; kk < kc; ++kk) {
        const V8 b0 = load8(b + kk * kPanelWidth);
        const V8 b1 = load8(b + kk * kPanelWidth + 8);
        for (int i = 0; i < MR; ++i) {
            const float ai = a[i * lda + kk];
            acc0[i] += ai * b0;
            acc1[i] += ai * b1;
        }
    }
    if (n_cols == kPanelWidth) {
        for (int i = 0; i < MR; ++i) {
            float* ci = c + i * ldc;
            if (accumulate) {
                acc0[i] += load8(ci);
                acc1[i] += load8(ci + 8);
            }
            store8(ci, acc0[i]);
            store8(ci + 8, acc1[i]);
        }
        return;
    }
    for (int i = 0; i < MR; ++i) {  // last panel of a width that is not a multiple of 16
        float tile[kPanelWidth];
        store8(tile, acc0[i]);
        store8(tile + 8, acc1[i]);
        float* ci = c + i * ldc;
        for (int j = 0; j < n_cols; ++j) ci[j] = accumulate ? ci[j] + tile[j] : tile[j];
    }
}

using KernelFn = void (*)(const float*, int, const float*, int, float*, int, int, bool);
constexpr KernelFn kKernels[kMr + 1] = {nullptr,           micro_kernel<1>, micro_kernel<2>,
                                        micro_kernel<3>,   micro_kernel<4>, micro_kernel<5>,
                                        micro_kernel<6>};

}  // namespace

// [SECTION] Packed GEMM
// C[:, panels [p_begin, p_end)] = A W^T for all m rows. A (m, n_in) row-major with lda,
// C (m, n_out) with ldc. Single-threaded: callers split work into tasks.
void gemm_packed(const float* a, int lda, int m, const PackedMatrix& w, int p_begin, int p_end,
                 float* c, int ldc) {
    const int k = w.n_in;
    for (int k0 = 0; k0 < k; k0 += kKc) {
        const int kc = std::min(kKc, k - k0);
        const bool accumulate = k0 > 0;
        for (int m0 = 0; m0 < m; m0 += kMc) {
            const int mc = std::min(kMc, m - m0);
            for (int p = p_begin; p < p_end; ++p) {
                const float* b = w.panel(p) + static_cast<size_t>(k0) * kPanelWidth;
                const int col0 = p * kPanelWidth;
                const int n_cols = std::min(kPanelWidth, w.n_out - col0);
                for (int i0 = 0; i0 < mc; i0 += kMr) {
                    const int mr = std::min(kMr, mc - i0);
                    const int row = m0 + i0;
                    kKernels[mr](a + static_cast<size_t>(row) * lda + k0, lda, b, kc,
                                 c + static_cast<size_t>(row) * ldc + col0, ldc, n_cols,
                                 accumulate);
                }
            }
        }
    }
}

// [SECTION] Parallel product
void matmul_packed(ConstMatRef x, const PackedMatrix& w, Mat& y) {
    MOE_ASSERT(x.cols() == w.n_in, "matmul_packed: x width must equal the packed matrix's n_in");
    const int n = static_cast<int>(x.rows());
    y.resize(n, w.n_out);
    if (n == 0 || w.n_out == 0) return;
    // Tasks: blocks of 32 rows x chunks of 4 panels (64 columns), enough to keep 2+ threads busy
    // at n = 32 and to reuse each panel block from L1 across a block's rows.
    constexpr int kRowsPerTask = 32, kPanelsPerTask = 4;
    const int n_row_blocks = (n + kRowsPerTask - 1) / kRowsPerTask;
    const int n_chunks = (w.n_panels + kPanelsPerTask - 1) / kPanelsPerTask;
    const int n_tasks = n_row_blocks * n_chunks;
    const int64_t flops = int64_t{2} * n * w.n_in * w.n_out;
    const float* a = x.data();
    const int lda = static_cast<int>(x.outerStride());
    float* c = y.data();
#pragma omp parallel for schedule(static) if (n_tasks > 1 && flops > kPackedParallelMinFlops)
    for (int t = 0; t < n_tasks; ++t) {
        const int r0 = (t / n_chunks) * kRowsPerTask;
        const int p0 = (t % n_chunks) * kPanelsPerTask;
        gemm_packed(a + static_cast<size_t>(r0) * lda, lda, std::min(kRowsPerTask, n - r0), w, p0,
                    std::min(w.n_panels, p0 + kPanelsPerTask), c + static_cast<size_t>(r0) * w.n_out, w.n_out);
    }
}

}  // namespace moe
