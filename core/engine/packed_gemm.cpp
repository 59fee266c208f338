// The packed GEMM (see packed_gemm.h): packing, the choice of kernel, the parallel product. The
// kernels themselves are in packed_gemm_tile.h, compiled once per instruction set.
//
// [SECTION] Packing
// [SECTION] Packed GEMM      the active_isa() kernel over a range of rows and output panels
// [SECTION] Parallel product
#include "core/engine/packed_gemm.h"

#include <algorithm>

#include "core/engine/cpu_features.h"
#include "core/engine/packed_gemm_kernels.h"
#include "core/error.h"

namespace moe {

static_assert(kPanelWidth == kernels::kPanel, "one panel width for the layout and the kernels");

// [SECTION] Packing
namespace {
// The shape and element type, and the other type's storage released.
void set_shape(PackedMatrix& m, int n_out, int n_in, WeightType type) {
    MOE_ASSERT(n_out >= 0 && n_in >= 0, "pack: negative shape");
    m.n_out = n_out;
    m.n_in = n_in;
    m.n_panels = (n_out + kPanelWidth - 1) / kPanelWidth;
    m.type = type;
    if (type == WeightType::F32) {
        m.bf16.clear();
        m.bf16.shrink_to_fit();
    } else {
        m.data.clear();
        m.data.shrink_to_fit();
    }
}

// The FP32 layout from any source of (row, column) -> weight.
template <class Get>
void pack_f32_panels(PackedMatrix& m, int n_out, int n_in, Get get) {
    set_shape(m, n_out, n_in, WeightType::F32);
    m.data.assign(static_cast<size_t>(m.n_panels) * n_in * kPanelWidth, 0.0f);
    for (int p = 0; p < m.n_panels; ++p) {
        float* dst = m.data.data() + static_cast<size_t>(p) * n_in * kPanelWidth;
        const int cols = std::min(kPanelWidth, n_out - p * kPanelWidth);
        for (int kk = 0; kk < n_in; ++kk)
            for (int c = 0; c < cols; ++c) dst[static_cast<size_t>(kk) * kPanelWidth + c] = get(p * kPanelWidth + c, kk);
    }
}
}  // namespace

void PackedMatrix::pack(ConstMatRef w) {
    pack_f32_panels(*this, static_cast<int>(w.rows()), static_cast<int>(w.cols()), [&](int r, int kk) { return w(r, kk); });
}

void PackedMatrix::pack_transposed(ConstMatRef w) {
    // Panel rows are w's columns: reading w(kk, c) along c is w's own row order.
    pack_f32_panels(*this, static_cast<int>(w.cols()), static_cast<int>(w.rows()), [&](int c, int kk) { return w(kk, c); });
}

namespace {
// The BF16 layout from any source of (row, column) -> bf16 bits.
template <class Get>
void pack_bf16_panels(PackedMatrix& m, int n_out, int n_in, Get get) {
    set_shape(m, n_out, n_in, WeightType::BF16);
    const int n_pairs = (n_in + 1) / 2;
    m.bf16.assign(static_cast<size_t>(m.n_panels) * n_pairs * kPanelWidth, 0u);
    for (int p = 0; p < m.n_panels; ++p) {
        uint32_t* dst = m.bf16.data() + static_cast<size_t>(p) * n_pairs * kPanelWidth;
        const int cols = std::min(kPanelWidth, n_out - p * kPanelWidth);
        for (int c = 0; c < cols; ++c) {
            const int row = p * kPanelWidth + c;
            for (int kk = 0; kk < n_in; ++kk) {
                const uint32_t bits = get(row, kk);
                dst[static_cast<size_t>(kk / 2) * kPanelWidth + c] |= (kk % 2) ? bits << 16 : bits;
            }
        }
    }
}
}  // namespace

void PackedMatrix::pack_bf16(const uint16_t* w, int n_out_, int n_in_, int64_t ld) {
    if (ld == 0) ld = n_in_;
    MOE_ASSERT(ld >= n_in_, "pack_bf16: row stride shorter than a row");
    MOE_ASSERT(w || int64_t{n_out_} * n_in_ == 0, "pack_bf16: null weights");
    pack_bf16_panels(*this, n_out_, n_in_, [&](int r, int kk) { return w[r * ld + kk]; });
}

void PackedMatrix::pack_bf16(ConstMatRef w) {
    pack_bf16_panels(*this, static_cast<int>(w.rows()), static_cast<int>(w.cols()),
                     [&](int r, int kk) { return float_to_bf16(w(r, kk)); });
}

// [SECTION] Packed GEMM
namespace {
const kernels::KernelSet& kernels_for(Isa isa) {
    switch (isa) {
        case Isa::Avx512Bf16: return kernels::avx512bf16_kernels();
        case Isa::Avx512: return kernels::avx512_kernels();
        case Isa::Avx2: return kernels::avx2_kernels();
        case Isa::Portable: break;
    }
    return kernels::portable_kernels();
}
}  // namespace

void gemm_packed(const float* a, int lda, int m, const PackedMatrix& w, int p_begin, int p_end,
                 float* c, int ldc) {
    if (m <= 0 || p_begin >= p_end) return;
    const kernels::PanelView view{w.data.empty() ? nullptr : w.data.data(), w.bf16.empty() ? nullptr : w.bf16.data(),
                                  w.n_out, w.n_in, w.n_panels};
    const kernels::KernelSet& k = kernels_for(active_isa());
    if (w.n_in == 0) {  // an empty sum: zeros, and no kernel reads a panel that is not there
        for (int i = 0; i < m; ++i)
            for (int col = p_begin * kPanelWidth; col < std::min(w.n_out, p_end * kPanelWidth); ++col)
                c[static_cast<size_t>(i) * ldc + col] = 0.0f;
        return;
    }
    (w.type == WeightType::BF16 ? k.gemm_bf16 : k.gemm_f32)(a, lda, m, view, p_begin, p_end, c, ldc);
}

double fma_chains(int64_t iters, double* flops) {
    const kernels::KernelSet& k = kernels_for(active_isa());
    *flops += 2.0 * static_cast<double>(iters) * k.fma_chains * k.vector_floats;
    return k.fma_loop(iters);
}

double read_stream(const float* p, size_t n) { return kernels_for(active_isa()).read_stream(p, n); }

int isa_vector_floats() { return kernels_for(active_isa()).vector_floats; }

// [SECTION] Parallel product
void matmul_packed(ConstMatRef x, const PackedMatrix& w, Mat& y) {
    MOE_ASSERT(x.cols() == w.n_in, "matmul_packed: x width must equal the packed matrix's n_in");
    const int n = static_cast<int>(x.rows());
    y.resize(n, w.n_out);
    if (n == 0 || w.n_out == 0) return;
    // Tasks: blocks of 32 rows x chunks of 2 panels (64 columns), enough to keep 2+ threads busy
    // at n = 32 and to reuse each panel block from L1 across a block's rows.
    constexpr int kRowsPerTask = 32, kPanelsPerTask = 2;
    const int n_row_blocks = (n + kRowsPerTask - 1) / kRowsPerTask;
    const int n_chunks = (w.n_panels + kPanelsPerTask - 1) / kPanelsPerTask;
    const int n_tasks = n_row_blocks * n_chunks;
    const int64_t flops = int64_t{2} * n * w.n_in * w.n_out;
    const float* a = x.data();
    const int lda = static_cast<int>(x.outerStride());
    float* c = y.data();
    active_isa();  // decided before the parallel region, never inside it
#pragma omp parallel for schedule(static) if (n_tasks > 1 && flops > kPackedParallelMinFlops)
    for (int t = 0; t < n_tasks; ++t) {
        const int r0 = (t / n_chunks) * kRowsPerTask;
        const int p0 = (t % n_chunks) * kPanelsPerTask;
        gemm_packed(a + static_cast<size_t>(r0) * lda, lda, std::min(kRowsPerTask, n - r0), w, p0,
                    std::min(w.n_panels, p0 + kPanelsPerTask), c + static_cast<size_t>(r0) * w.n_out, w.n_out);
    }
}

}  // namespace moe
