// The CPU backend: the reference every other backend is tested against, and fast enough that
// the MoE layer keeps up with a dense Eigen FFN of the same active FLOPs.
//
// [SECTION] Packed weights   the experts' matrices in core/engine/packed_gemm.h's panel layout
// [SECTION] Activations      vectorised epilogues
// [SECTION] CpuBackend       the four operations, OpenMP over (expert, column chunk) tasks
// [SECTION] Devices          CPU / CUDA choice and the fallback to the CPU
//
// Why not Eigen for the experts: see core/engine/packed_gemm.h.
#include <algorithm>
#include <cctype>
#include <string>
#include <omp.h>

#include "core/engine/backend.h"
#include "core/engine/cpu_features.h"
#include "core/engine/packed_gemm.h"
#ifdef MOE_HAVE_CUDA
#include "core/cuda/backend_cuda.h"
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
constexpr int kNr = kPanelWidth;
// Below this much work a parallel region costs more than it saves (see core/engine/packed_gemm.h).
// Gathers, scatters and the router are under 1% of the layer's work, so they stay on one
// thread until they are big enough to matter on their own.
constexpr int64_t kParallelMinFlops = kPackedParallelMinFlops;
constexpr int64_t kParallelMinRouterFlops = int64_t{1} << 25;
constexpr int64_t kParallelMinCopy = int64_t{1} << 21;

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
// has most rows; each chunk's panel block (4 x 32 KiB) stays in L2 across its rows.
std::vector<Task> make_tasks(std::span<const int> expert_begin, int n_panels) {
    constexpr int kPanelsPerTask = 4;
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
    explicit CpuBackend(WeightType expert_type) : expert_type_(expert_type) {}
    const char* name() const override { return expert_type_ == WeightType::BF16 ? "cpu-bf16" : "cpu"; }
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
            pack_weights(dst.w1, src.w1);
            if (act == Activation::SwiGLU) pack_weights(dst.w3, src.w3);
            pack_weights(dst.w2, src.w2);
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
        active_isa();  // the kernel variant is decided before the parallel region, never inside it
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

private:
    void pack_weights(PackedMatrix& dst, const Mat& w) const {
        if (expert_type_ == WeightType::BF16)
            dst.pack_bf16(w);
        else
            dst.pack(w);
    }
    WeightType expert_type_;
};

}  // namespace

const Backend& cpu_backend() {
    static const CpuBackend backend(WeightType::F32);
    return backend;
}

const Backend& cpu_backend_bf16() {
    static const CpuBackend backend(WeightType::BF16);
    return backend;
}

std::vector<const Backend*> available_backends() {
    std::vector<const Backend*> all{&cpu_backend()};
#ifdef MOE_HAVE_CUDA
    // Built with CUDA is not the same as having a GPU: list it only when a device answered.
    if (device_available(Device::Cuda)) all.push_back(&cuda_backend());
#endif
    return all;
}

// [SECTION] Devices
const char* device_name(Device d) {
    switch (d) {
        case Device::Cpu: return "CPU";
        case Device::Cuda: return "CUDA";
    }
    return "?";
}

std::string device_unavailable_reason(Device d) {
    if (d == Device::Cpu) return "";
#ifdef MOE_HAVE_CUDA
    // Asked once per process: the app asks every frame and the session every run, and a GPU
    // does not come and go while moelab runs (the first driver query also costs the most).
    static const bool usable = cuda_device_usable();
    if (usable) return "";
    return "no CUDA device or driver was found";
#else
    return "this build has no CUDA backend (configure with -DMOE_CUDA=ON where nvcc is installed)";
#endif
}

bool device_available(Device d) { return device_unavailable_reason(d).empty(); }

Device parse_device(const std::string& text, const std::string& where, const std::string& field) {
    std::string t = text;
    for (char& ch : t) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (t == "cpu") return Device::Cpu;
    if (t == "cuda" || t == "gpu") return Device::Cuda;
    throw Error(where, field, "'" + text + "' is not a device", "cpu or cuda");
}

const Backend& backend_for(Device d) {
    const std::string why = device_unavailable_reason(d);
    if (!why.empty()) throw Error("device", device_name(d), "is not available: " + why, "use the CPU");
#ifdef MOE_HAVE_CUDA
    if (d == Device::Cuda) return cuda_backend();
#endif
    return cpu_backend();
}

Device usable_device(Device wanted, std::string* why) {
    const std::string reason = device_unavailable_reason(wanted);
    if (why) why->clear();
    if (reason.empty()) return wanted;
    if (why) *why = std::string(device_name(wanted)) + " asked for, but " + reason + "; running on the CPU";
    return Device::Cpu;
}

}  // namespace moe
