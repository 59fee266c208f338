// The CPU backend: the reference every other backend is tested against, and fast enough that
// the MoE layer keeps up with a dense Eigen FFN of the same active FLOPs.
//
// [SECTION] Packed weights   panel layout, built once per weight change
// [SECTION] Micro-kernel     MR x 16 register tile, the only hot loop
// [SECTION] Packed GEMM      C = A W^T over a range of rows and output panels
// [SECTION] Activations      vectorised epilogues
// [SECTION] CpuBackend       the four operations, OpenMP over (expert, column chunk) tasks
//
// Why not Eigen for the experts: Eigen's GEMM repacks BOTH operands on every call. With
// T*K/N rows per expert (64 at T=256, N=8, K=2) repacking a (d_ff, d_model) weight costs about
// as much memory traffic as the multiply itself, and at T=1 it doubles it. Here the weights are
// packed once into 16-column panels that the micro-kernel streams straight from memory, and the
// few-row case (T*K/N < 6) is the same kernel with fewer rows: a matrix-vector product that
// reads each weight exactly once.
#include <algorithm>
#include <cstring>
#include <omp.h>

#include "core/backend.h"
#ifdef MOE_HAVE_CUDA
#include "core/backend_cuda.h"
#endif
#include "core/error.h"

namespace moe {

const char* backend_op_name(BackendOp op) {
    switch (op) {
        case BackendOp::RouterLogits: return "router_logits";
        case BackendOp::GatherRows: return "gather_rows";
        case BackendOp::ExpertFfnGrouped: return "expert_ffn_grouped";
        case BackendOp::Combine: return "combine";
    }
    return "?";
}

namespace {

// [SECTION] Packed weights
constexpr int kNr = 16;   // output columns per panel: two 8-float vectors
constexpr int kMr = 6;    // rows per register tile: 6 x 2 accumulators + 2 B + 1 A = 15 ymm
constexpr int kKc = 256;  // depth block: a panel block (16 KiB) and an A tile (6 KiB) stay in L1
constexpr int kMc = 96;   // row block: A block (96 x 256 floats, 96 KiB) stays in L2
// Below this much work a parallel region costs more than it saves: waking a thread costs
// microseconds on an idle machine and a scheduler slice (milliseconds) on a busy one. The expert
// GEMMs go parallel from 2 MFLOP. Gathers, scatters and the router are under 1% of the layer's
// work, so they stay on one thread until they are big enough to matter on their own.
constexpr int64_t kParallelMinFlops = int64_t{1} << 21;
constexpr int64_t kParallelMinRouterFlops = int64_t{1} << 25;
constexpr int64_t kParallelMinCopy = int64_t{1} << 21;

using AlignedFloats = std::vector<float, Eigen::aligned_allocator<float>>;

// W (n_out, n_in), row-major (out, in), repacked so that panel p holds, for every input index
// kk, the 16 weights W[p*16 .. p*16+15][kk] contiguously; missing rows are zero.
struct PackedMatrix {
    int n_out = 0;
    int n_in = 0;
    int n_panels = 0;
    AlignedFloats data;  // (n_panels, n_in, 16)

    void pack(const Mat& w) {  // w: (n_out, n_in)
        n_out = static_cast<int>(w.rows());
        n_in = static_cast<int>(w.cols());
        n_panels = (n_out + kNr - 1) / kNr;
        data.assign(static_cast<size_t>(n_panels) * n_in * kNr, 0.0f);
        for (int p = 0; p < n_panels; ++p) {
            float* dst = panel(p);
            const int cols = std::min(kNr, n_out - p * kNr);
            for (int c = 0; c < cols; ++c) {
                const float* src = w.row(p * kNr + c).data();
                for (int kk = 0; kk < n_in; ++kk) dst[static_cast<size_t>(kk) * kNr + c] = src[kk];
            }
        }
    }
    float* panel(int p) { return data.data() + static_cast<size_t>(p) * n_in * kNr; }
    const float* panel(int p) const { return data.data() + static_cast<size_t>(p) * n_in * kNr; }
};

struct CpuExpert {
    PackedMatrix w1;  // from (d_ff, d_model)
    PackedMatrix w3;  // from (d_ff, d_model), SwiGLU only
    PackedMatrix w2;  // from (d_model, d_ff)
    Vec b1;           // (d_ff) or empty
    Vec b2;           // (d_model) or empty
};

struct CpuPackedExperts final : PackedExperts {
    std::vector<CpuExpert> experts;  // (n_experts)
};

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
        const V8 b0 = load8(b + kk * kNr);
        const V8 b1 = load8(b + kk * kNr + 8);
        for (int i = 0; i < MR; ++i) {
            const float ai = a[i * lda + kk];
            acc0[i] += ai * b0;
            acc1[i] += ai * b1;
        }
    }
    if (n_cols == kNr) {
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
        float tile[kNr];
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
                const float* b = w.panel(p) + static_cast<size_t>(k0) * kNr;
                const int col0 = p * kNr;
                const int n_cols = std::min(kNr, w.n_out - col0);
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

// [SECTION] Activations
using ArrayMap = Eigen::Map<Eigen::ArrayXf>;

// Columns [c0, c0 + n) of rows [0, m): h_pre (+ b1) in place, then h_act. Eigen's array tanh
// and exp are vectorised; std::tanh per element would cost as much as the GEMM it follows.
void activation_epilogue(Activation act, const Vec& b1, float* h_pre, const float* h_lin,
                         float* h_act, int ld, int m, int c0, int n) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    for (int i = 0; i < m; ++i) {
        const size_t off = static_cast<size_t>(i) * ld + c0;
        ArrayMap pre(h_pre + off, n);
        if (b1.size() > 0) pre += b1.segment(c0, n).array();
        ArrayMap out(h_act + off, n);
        if (act == Activation::GELU) {
            out = 0.5f * pre * (1.0f + (kSqrt2OverPi * (pre + 0.044715f * pre.cube())).tanh());
        } else {
            const Eigen::Map<const Eigen::ArrayXf> lin(h_lin + off, n);
            out = pre / (1.0f + (-pre).exp()) * lin;
        }
    }
}

// Scratch reused across calls on one thread, so a forward pass does not page-fault fresh
// megabytes every time.
struct Scratch {
    AlignedFloats h_pre, h_lin;
    float* get(AlignedFloats& v, size_t n) {
        if (v.size() < n) v.resize(n);
        return v.data();
    }
};
thread_local Scratch t_scratch;

float* target(Mat* keep, AlignedFloats& scratch, int rows, int cols) {
    if (keep) {
        keep->resize(rows, cols);
        return keep->data();
    }
    if (scratch.size() < static_cast<size_t>(rows) * cols) scratch.resize(static_cast<size_t>(rows) * cols);
    return scratch.data();
}

// A unit of parallel work: one expert's rows times a chunk of output panels.
struct Task {
    int expert;
    int p_begin, p_end;
};

// Chunks of output panels per expert. Enough tasks to balance 2+ threads even when one expert
// has most rows; each chunk's panel block (8 x 16 KiB) stays in L2 across its rows.
std::vector<Task> make_tasks(std::span<const int> expert_begin, int n_panels) {
    constexpr int kPanelsPerTask = 8;
    std::vector<Task> tasks;
    const int n_experts = static_cast<int>(expert_begin.size()) - 1;
    for (int e = 0; e < n_experts; ++e) {
        if (expert_begin[e + 1] == expert_begin[e]) continue;
        for (int p = 0; p < n_panels; p += kPanelsPerTask)
            tasks.push_back({e, p, std::min(n_panels, p + kPanelsPerTask)});
    }
    return tasks;
}

// [SECTION] CpuBackend
class CpuBackend final : public Backend {
public:
    const char* name() const override { return "cpu"; }
    bool supports(BackendOp) const override { return true; }

    void router_logits(ConstMatRef x, ConstMatRef w, const Vec& b, Mat& logits) const override {
        MOE_ASSERT(x.cols() == w.cols(), "router weight width must equal d_model");
        const int n_tokens = static_cast<int>(x.rows());
        logits.resize(n_tokens, w.rows());
        // Fixed 64-row blocks of row-by-row dot products (lazyProduct): the same bits whatever the
        // thread count, and never Eigen's own threaded GEMM, whose threads busy-wait for each
        // other (N is small, so a GEMM kernel buys little here anyway).
        constexpr int kBlock = 64;
        const int n_blocks = (n_tokens + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (2 * int64_t{n_tokens} * w.rows() * w.cols() > kParallelMinRouterFlops)
        for (int blk = 0; blk < n_blocks; ++blk) {
            const int r0 = blk * kBlock;
            const int nr = std::min(kBlock, n_tokens - r0);
            logits.middleRows(r0, nr).noalias() = x.middleRows(r0, nr).lazyProduct(w.transpose());
            if (b.size() > 0) logits.middleRows(r0, nr).rowwise() += b.transpose();
        }
    }

    void gather_rows(ConstMatRef x, std::span<const int> row_token, Mat& xs) const override {
        const int n_rows = static_cast<int>(row_token.size());
        xs.resize(n_rows, x.cols());
#pragma omp parallel for schedule(static) if (int64_t{n_rows} * x.cols() > kParallelMinCopy)
        for (int r = 0; r < n_rows; ++r) xs.row(r) = x.row(row_token[r]);
    }

    std::unique_ptr<PackedExperts> pack_experts(std::span<const ExpertWeights> experts,
                                                Activation act) const override {
        auto packed = std::make_unique<CpuPackedExperts>();
        packed->n_experts = static_cast<int>(experts.size());
        packed->activation = act;
        if (!experts.empty()) {
            packed->d_model = static_cast<int>(experts[0].w1.cols());
            packed->d_ff = static_cast<int>(experts[0].w1.rows());
        }
        packed->experts.resize(experts.size());
        const int n = packed->n_experts;
#pragma omp parallel for schedule(dynamic) if (int64_t{n} * packed->d_model * packed->d_ff > kParallelMinFlops)
        for (int e = 0; e < n; ++e) {
            const ExpertWeights& src = experts[e];
            CpuExpert& dst = packed->experts[e];
            MOE_ASSERT(src.w1.rows() == packed->d_ff && src.w1.cols() == packed->d_model,
                       "all experts of one pack share (d_ff, d_model)");
            dst.w1.pack(src.w1);
            if (act == Activation::SwiGLU) dst.w3.pack(src.w3);
            dst.w2.pack(src.w2);
            dst.b1 = src.b1;
            dst.b2 = src.b2;
        }
        return packed;
    }

    void expert_ffn_grouped(const PackedExperts& packed_base, ConstMatRef xs,
                            std::span<const int> expert_begin, Mat& out,
                            const ExpertIntermediates* keep) const override {
        const auto& packed = static_cast<const CpuPackedExperts&>(packed_base);
        MOE_ASSERT(static_cast<int>(expert_begin.size()) == packed.n_experts + 1,
                   "expert_begin needs n_experts + 1 entries");
        const int n_rows = static_cast<int>(xs.rows());
        MOE_ASSERT(expert_begin.back() == n_rows, "expert_begin must end at the row count");
        MOE_ASSERT(n_rows == 0 || xs.cols() == packed.d_model, "xs width must equal d_model");
        const int d_model = packed.d_model;
        const int d_ff = packed.d_ff;
        const bool swiglu = packed.activation == Activation::SwiGLU;
        out.resize(n_rows, d_model);

        float* h_pre = target(keep ? keep->h_pre : nullptr, t_scratch.h_pre, n_rows, d_ff);
        float* h_lin = swiglu ? target(keep ? keep->h_lin : nullptr, t_scratch.h_lin, n_rows, d_ff)
                              : nullptr;
        if (keep && keep->h_lin && !swiglu) keep->h_lin->resize(0, 0);
        // Without a cache the activation overwrites h_pre (GELU) or h_pre (SwiGLU): one buffer less.
        float* h_act = (keep && keep->h_act) ? (keep->h_act->resize(n_rows, d_ff), keep->h_act->data())
                                             : h_pre;
        if (n_rows == 0) return;
        MOE_ASSERT(h_act != h_pre || !(keep && keep->h_pre), "h_pre kept needs h_act kept too");

        const float* x = xs.data();
        const int n_ff_panels = (d_ff + kNr - 1) / kNr;
        const int n_out_panels = (d_model + kNr - 1) / kNr;
        const std::vector<Task> up_tasks = make_tasks(expert_begin, n_ff_panels);
        const std::vector<Task> down_tasks = make_tasks(expert_begin, n_out_panels);
        const int n_up = static_cast<int>(up_tasks.size());
        const int n_down = static_cast<int>(down_tasks.size());
        float* y = out.data();

        const int64_t flops = 2 * int64_t{n_rows} * d_model * d_ff * (swiglu ? 3 : 2);
#pragma omp parallel if (flops > kParallelMinFlops)
        {
            // Up projection(s) and activation, per (expert, chunk of d_ff).
#pragma omp for schedule(dynamic)
            for (int t = 0; t < n_up; ++t) {
                const Task& task = up_tasks[t];
                const CpuExpert& ex = packed.experts[task.expert];
                const int r0 = expert_begin[task.expert];
                const int m = expert_begin[task.expert + 1] - r0;
                const size_t off = static_cast<size_t>(r0) * d_ff;
                gemm_packed(x + static_cast<size_t>(r0) * d_model, d_model, m, ex.w1, task.p_begin,
                            task.p_end, h_pre + off, d_ff);
                if (swiglu)
                    gemm_packed(x + static_cast<size_t>(r0) * d_model, d_model, m, ex.w3,
                                task.p_begin, task.p_end, h_lin + off, d_ff);
                const int c0 = task.p_begin * kNr;
                const int nc = std::min(d_ff, task.p_end * kNr) - c0;
                activation_epilogue(packed.activation, ex.b1, h_pre + off,
                                    swiglu ? h_lin + off : nullptr, h_act + off, d_ff, m, c0, nc);
            }
            // Down projection, per (expert, chunk of d_model); needs every up task of its expert.
#pragma omp for schedule(dynamic)
            for (int t = 0; t < n_down; ++t) {
                const Task& task = down_tasks[t];
                const CpuExpert& ex = packed.experts[task.expert];
                const int r0 = expert_begin[task.expert];
                const int m = expert_begin[task.expert + 1] - r0;
                gemm_packed(h_act + static_cast<size_t>(r0) * d_ff, d_ff, m, ex.w2, task.p_begin,
                            task.p_end, y + static_cast<size_t>(r0) * d_model, d_model);
                if (ex.b2.size() > 0) {
                    const int c0 = task.p_begin * kNr;
                    const int nc = std::min(d_model, task.p_end * kNr) - c0;
                    out.block(r0, c0, m, nc).rowwise() += ex.b2.segment(c0, nc).transpose();
                }
            }
        }
    }

    void combine(ConstMatRef out, std::span<const int> row_token, std::span<const float> row_gate,
                 MatRef y) const override {
        const int n_rows = static_cast<int>(row_token.size());
        const int n_tokens = static_cast<int>(y.rows());
        MOE_ASSERT(static_cast<int>(row_gate.size()) == n_rows && out.rows() == n_rows,
                   "one gate and one output row per row");
        // Rows of each token (CSR, in row order), so tokens can be summed in parallel without
        // two threads writing one row.
        std::vector<int> begin(n_tokens + 1, 0);
        for (int r = 0; r < n_rows; ++r) ++begin[row_token[r] + 1];
        for (int t = 0; t < n_tokens; ++t) begin[t + 1] += begin[t];
        std::vector<int> fill(begin.begin(), begin.end() - 1);
        std::vector<int> rows(n_rows);
        for (int r = 0; r < n_rows; ++r) rows[fill[row_token[r]]++] = r;
#pragma omp parallel for schedule(static) if (int64_t{n_rows} * y.cols() > kParallelMinCopy)
        for (int t = 0; t < n_tokens; ++t)
            for (int i = begin[t]; i < begin[t + 1]; ++i) y.row(t) += row_gate[rows[i]] * out.row(rows[i]);
    }
};

}  // namespace

const Backend& cpu_backend() {
    static const CpuBackend backend;
    return backend;
}

std::vector<const Backend*> available_backends() {
    std::vector<const Backend*> all{&cpu_backend()};
#ifdef MOE_HAVE_CUDA
    // Built with CUDA is not the same as having a GPU: list it only when a device answers.
    if (cuda_device_usable()) all.push_back(&cuda_backend());
#endif
    return all;
}

}  // namespace moe
