// CudaBackend: every op of core/engine/backend.h on the GPU (cuBLAS SGEMM for the router and the
// experts, kernels for gather, activations and a deterministic combine), plus the GPU routing
// helpers of core/cuda/backend_cuda.h. Expert weights stay resident on the device in
// CudaPackedExperts; activations are copied in and out per call (fine at the app's sizes).
//
// [SECTION] Helpers   [SECTION] Packed experts   [SECTION] Backend   [SECTION] Routing helpers
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "core/engine/backend.h"
#include "core/cuda/backend_cuda.h"
#include "core/cuda/cuda_ops.h"
#include "core/error.h"

namespace moe {

namespace {

// [SECTION] Helpers
// Uploads a possibly strided row-major block as a dense (rows, cols) device array.
void upload_mat(cuda::DeviceBuffer& buf, ConstMatRef m) {
    const size_t bytes = sizeof(float) * static_cast<size_t>(m.rows()) * static_cast<size_t>(m.cols());
    if (m.outerStride() == m.cols() || m.rows() <= 1) {
        buf.upload(m.data(), bytes);
    } else {
        const Mat dense = m;  // (rows, cols)
        buf.upload(dense.data(), bytes);
    }
}

template <typename T>
void upload_vec(cuda::DeviceBuffer& buf, std::span<const T> v) {
    buf.upload(v.data(), sizeof(T) * v.size());
}

size_t floats(int64_t a, int64_t b) { return sizeof(float) * static_cast<size_t>(a) * static_cast<size_t>(b); }

// [SECTION] Packed experts
// All experts' matrices back to back on the device: expert e's w1 starts at e * d_ff * d_model.
struct CudaPackedExperts final : PackedExperts {
    cuda::DeviceBuffer w1;  // (n_experts, d_ff, d_model)
    cuda::DeviceBuffer w3;  // (n_experts, d_ff, d_model) SwiGLU only
    cuda::DeviceBuffer w2;  // (n_experts, d_model, d_ff)
    cuda::DeviceBuffer b1;  // (n_experts, d_ff) when any expert has b1 (zeros for the others)
    cuda::DeviceBuffer b2;  // (n_experts, d_model) likewise
    bool has_b1 = false;
    bool has_b2 = false;
};

// The device scratch of one backend: grown on demand, reused across calls.
struct Workspace {
    cuda::DeviceBuffer a, b, c, d, e, f;
    cuda::DeviceBuffer i0, i1;
};

// [SECTION] Backend
class CudaBackend final : public Backend {
public:
    const char* name() const override { return "cuda"; }
    bool supports(BackendOp) const override { return true; }

    void router_logits(ConstMatRef x, ConstMatRef w, const Vec& b, Mat& logits) const override {
        MOE_ASSERT(x.rows() == 0 || x.cols() == w.cols(), "router: x width must equal d_model");
        MOE_ASSERT(b.size() == 0 || b.size() == w.rows(), "router: bias needs n_experts entries");
        const int n_tokens = static_cast<int>(x.rows());
        const int n_experts = static_cast<int>(w.rows());
        const int d_model = static_cast<int>(w.cols());
        logits.resize(n_tokens, n_experts);
        if (n_tokens == 0 || n_experts == 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        upload_mat(ws_.a, x);
        upload_mat(ws_.b, w);
        ws_.c.reserve(floats(n_tokens, n_experts));
        cuda::gemm_xwT(ws_.a.f(), ws_.b.f(), ws_.c.f(), n_tokens, n_experts, d_model);
        if (b.size() > 0) {
            ws_.d.upload(b.data(), floats(1, n_experts));
            cuda::add_row_bias(ws_.c.f(), ws_.d.f(), n_tokens, n_experts);
        }
        ws_.c.download(logits.data(), floats(n_tokens, n_experts));
    }

    void gather_rows(ConstMatRef x, std::span<const int> row_token, Mat& xs) const override {
        const int n_rows = static_cast<int>(row_token.size());
        const int d = static_cast<int>(x.cols());
        for (int t : row_token) MOE_ASSERT(t >= 0 && t < x.rows(), "gather_rows: row_token out of range");
        xs.resize(n_rows, d);
        if (n_rows == 0 || d == 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        upload_mat(ws_.a, x);
        upload_vec(ws_.i0, row_token);
        ws_.b.reserve(floats(n_rows, d));
        cuda::gather_rows(ws_.a.f(), ws_.i0.i(), ws_.b.f(), n_rows, d);
        ws_.b.download(xs.data(), floats(n_rows, d));
    }

    std::unique_ptr<PackedExperts> pack_experts(std::span<const ExpertWeights> experts,
                                                Activation act) const override {
        auto p = std::make_unique<CudaPackedExperts>();
        p->n_experts = static_cast<int>(experts.size());
        p->activation = act;
        if (experts.empty()) return p;
        const int d_ff = static_cast<int>(experts[0].w1.rows());
        const int d_model = static_cast<int>(experts[0].w1.cols());
        p->d_ff = d_ff;
        p->d_model = d_model;
        const bool swiglu = act == Activation::SwiGLU;
        const size_t mat = static_cast<size_t>(d_ff) * d_model;
        std::vector<float> w1(mat * experts.size()), w3(swiglu ? mat * experts.size() : 0), w2(mat * experts.size());
        std::vector<float> b1(static_cast<size_t>(d_ff) * experts.size(), 0.0f);
        std::vector<float> b2(static_cast<size_t>(d_model) * experts.size(), 0.0f);
        for (size_t e = 0; e < experts.size(); ++e) {
            const ExpertWeights& ex = experts[e];
            MOE_ASSERT(ex.w1.rows() == d_ff && ex.w1.cols() == d_model, "pack: w1 must be (d_ff, d_model)");
            MOE_ASSERT(ex.w2.rows() == d_model && ex.w2.cols() == d_ff, "pack: w2 must be (d_model, d_ff)");
            std::memcpy(w1.data() + e * mat, ex.w1.data(), sizeof(float) * mat);
            std::memcpy(w2.data() + e * mat, ex.w2.data(), sizeof(float) * mat);
            if (swiglu) {
                MOE_ASSERT(ex.w3.rows() == d_ff && ex.w3.cols() == d_model, "pack: w3 must be (d_ff, d_model)");
                std::memcpy(w3.data() + e * mat, ex.w3.data(), sizeof(float) * mat);
            }
            if (ex.b1.size() > 0) {
                MOE_ASSERT(ex.b1.size() == d_ff, "pack: b1 must have d_ff entries");
                std::memcpy(b1.data() + e * d_ff, ex.b1.data(), sizeof(float) * d_ff);
                p->has_b1 = true;
            }
            if (ex.b2.size() > 0) {
                MOE_ASSERT(ex.b2.size() == d_model, "pack: b2 must have d_model entries");
                std::memcpy(b2.data() + e * d_model, ex.b2.data(), sizeof(float) * d_model);
                p->has_b2 = true;
            }
        }
        p->w1.upload(w1.data(), sizeof(float) * w1.size());
        p->w2.upload(w2.data(), sizeof(float) * w2.size());
        if (swiglu) p->w3.upload(w3.data(), sizeof(float) * w3.size());
        if (p->has_b1) p->b1.upload(b1.data(), sizeof(float) * b1.size());
        if (p->has_b2) p->b2.upload(b2.data(), sizeof(float) * b2.size());
        return p;
    }

    void expert_ffn_grouped(const PackedExperts& packed_base, ConstMatRef xs, std::span<const int> expert_begin,
                            Mat& out, const ExpertIntermediates* keep) const override {
        const auto* packed = dynamic_cast<const CudaPackedExperts*>(&packed_base);
        MOE_ASSERT(packed != nullptr, "expert_ffn_grouped: experts were packed by another backend");
        MOE_ASSERT(static_cast<int>(expert_begin.size()) == packed->n_experts + 1,
                   "expert_begin needs n_experts + 1 entries");
        const int n_rows = static_cast<int>(xs.rows());
        MOE_ASSERT(expert_begin.back() == n_rows, "expert_begin must end at the row count");
        MOE_ASSERT(n_rows == 0 || xs.cols() == packed->d_model, "xs width must equal d_model");
        const int d_model = packed->d_model;
        const int d_ff = packed->d_ff;
        const bool swiglu = packed->activation == Activation::SwiGLU;
        out.resize(n_rows, d_model);
        if (keep && keep->h_pre) keep->h_pre->resize(n_rows, d_ff);
        if (keep && keep->h_lin) keep->h_lin->resize(swiglu ? n_rows : 0, swiglu ? d_ff : 0);
        if (keep && keep->h_act) keep->h_act->resize(n_rows, d_ff);
        if (n_rows == 0) return;

        std::lock_guard<std::mutex> lock(mu_);
        upload_mat(ws_.a, xs);
        ws_.b.reserve(floats(n_rows, d_ff));  // h_pre
        if (swiglu) ws_.c.reserve(floats(n_rows, d_ff));  // h_lin
        ws_.d.reserve(floats(n_rows, d_ff));  // h_act
        ws_.e.reserve(floats(n_rows, d_model));  // out
        const size_t mat = static_cast<size_t>(d_ff) * d_model;
        for (int e = 0; e < packed->n_experts; ++e) {
            const int r0 = expert_begin[e];
            const int m = expert_begin[e + 1] - r0;
            if (m == 0) continue;
            MOE_ASSERT(m > 0, "expert_begin must not decrease");
            const float* x = ws_.a.f() + static_cast<size_t>(r0) * d_model;
            float* h_pre = ws_.b.f() + static_cast<size_t>(r0) * d_ff;
            cuda::gemm_xwT(x, packed->w1.f() + e * mat, h_pre, m, d_ff, d_model);
            if (packed->has_b1) cuda::add_row_bias(h_pre, packed->b1.f() + static_cast<size_t>(e) * d_ff, m, d_ff);
            if (swiglu)
                cuda::gemm_xwT(x, packed->w3.f() + e * mat, ws_.c.f() + static_cast<size_t>(r0) * d_ff, m, d_ff,
                               d_model);
        }
        const size_t count = static_cast<size_t>(n_rows) * d_ff;
        if (swiglu) cuda::swiglu(ws_.b.f(), ws_.c.f(), ws_.d.f(), count);
        else cuda::gelu(ws_.b.f(), ws_.d.f(), count);
        for (int e = 0; e < packed->n_experts; ++e) {
            const int r0 = expert_begin[e];
            const int m = expert_begin[e + 1] - r0;
            if (m == 0) continue;
            float* y = ws_.e.f() + static_cast<size_t>(r0) * d_model;
            cuda::gemm_xwT(ws_.d.f() + static_cast<size_t>(r0) * d_ff, packed->w2.f() + e * mat, y, m, d_model, d_ff);
            if (packed->has_b2) cuda::add_row_bias(y, packed->b2.f() + static_cast<size_t>(e) * d_model, m, d_model);
        }
        ws_.e.download(out.data(), floats(n_rows, d_model));
        if (keep && keep->h_pre) ws_.b.download(keep->h_pre->data(), floats(n_rows, d_ff));
        if (keep && keep->h_lin && swiglu) ws_.c.download(keep->h_lin->data(), floats(n_rows, d_ff));
        if (keep && keep->h_act) ws_.d.download(keep->h_act->data(), floats(n_rows, d_ff));
    }

    void combine(ConstMatRef out, std::span<const int> row_token, std::span<const float> row_gate,
                 MatRef y) const override {
        const int n_rows = static_cast<int>(row_token.size());
        const int n_tokens = static_cast<int>(y.rows());
        const int d = static_cast<int>(y.cols());
        MOE_ASSERT(static_cast<int>(row_gate.size()) == n_rows && out.rows() == n_rows,
                   "one gate and one output row per row");
        MOE_ASSERT(n_rows == 0 || out.cols() == d, "out and y must have the same width");
        if (n_rows == 0 || n_tokens == 0 || d == 0) return;
        // Rows of each token in row order (CSR), so the kernel sums each token deterministically.
        std::vector<int> begin(n_tokens + 1, 0);
        for (int t : row_token) {
            MOE_ASSERT(t >= 0 && t < n_tokens, "combine: row_token out of range");
            ++begin[t + 1];
        }
        for (int t = 0; t < n_tokens; ++t) begin[t + 1] += begin[t];
        std::vector<int> fill(begin.begin(), begin.end() - 1);
        std::vector<int> rows(n_rows);
        for (int r = 0; r < n_rows; ++r) rows[fill[row_token[r]]++] = r;

        std::lock_guard<std::mutex> lock(mu_);
        upload_mat(ws_.a, out);
        upload_mat(ws_.b, y);
        upload_vec(ws_.i0, std::span<const int>(rows));
        upload_vec(ws_.i1, std::span<const int>(begin));
        upload_vec(ws_.c, row_gate);
        cuda::combine(ws_.a.f(), ws_.i0.i(), ws_.i1.i(), ws_.c.f(), ws_.b.f(), n_tokens, d);
        if (y.outerStride() == d) {
            ws_.b.download(y.data(), floats(n_tokens, d));
        } else {
            Mat dense(n_tokens, d);  // (n_tokens, d_model)
            ws_.b.download(dense.data(), floats(n_tokens, d));
            y = dense;
        }
    }

private:
    mutable std::mutex mu_;  // one call at a time owns the scratch
    mutable Workspace ws_;
};

}  // namespace

const Backend& cuda_backend() {
    static const CudaBackend backend;  // touches no CUDA API until the first op
    return backend;
}

bool cuda_device_usable() { return cuda::device_count() > 0; }

std::string cuda_device_description() { return cuda::device_description(); }

// [SECTION] Routing helpers
GpuTopK cuda_topk(const RouterConfig& cfg, ConstMatRef logits, const Vec* expert_bias) {
    constexpr const char* kWhere = "CUDA top-K";
    int kind = -1;
    switch (cfg.scheme) {
        case Scheme::TopKMixtral: kind = 0; break;
        case Scheme::TopKGShard: kind = 1; break;
        case Scheme::Switch: kind = 2; break;
        case Scheme::SigmoidBias: kind = 3; break;
        default:
            throw Error(kWhere, "scheme", "scheme " + std::to_string(static_cast<int>(cfg.scheme)),
                        "the GPU top-K does TopKMixtral, TopKGShard, Switch and SigmoidBias");
    }
    if (cfg.n_groups != 1)
        throw Error(kWhere, "n_groups", std::to_string(cfg.n_groups), "group-limited routing runs on the CPU");
    const int n_tokens = static_cast<int>(logits.rows());
    const int n_experts = static_cast<int>(logits.cols());
    if (n_experts != cfg.n_experts)
        throw Error(kWhere, "n_experts", "logits have " + std::to_string(n_experts) + " columns",
                    "n_experts = " + std::to_string(cfg.n_experts));
    if (expert_bias && expert_bias->size() != n_experts)
        throw Error(kWhere, "expert_bias", std::to_string(expert_bias->size()) + " entries", "n_experts entries");
    GpuTopK r;
    r.k = cfg.scheme == Scheme::Switch ? 1 : cfg.k;
    if (r.k < 1 || r.k > n_experts)
        throw Error(kWhere, "k", std::to_string(r.k), "1 <= k <= n_experts");
    const size_t n = static_cast<size_t>(n_tokens) * r.k;
    r.expert.resize(n);
    r.gate.resize(n);
    r.score.resize(n);
    if (n_tokens == 0) return r;
    cuda::DeviceBuffer d_logits, d_bias, d_expert(sizeof(int) * n), d_gate(sizeof(float) * n), d_score(sizeof(float) * n);
    upload_mat(d_logits, logits);
    const bool use_bias = kind == 3 && expert_bias != nullptr;
    if (use_bias) d_bias.upload(expert_bias->data(), floats(1, n_experts));
    cuda::topk_select(d_logits.f(), use_bias ? d_bias.f() : nullptr, n_tokens, n_experts, r.k, kind,
                      cfg.renormalize, cfg.routed_scaling, d_expert.i(), d_gate.f(), d_score.f());
    d_expert.download(r.expert.data(), sizeof(int) * n);
    d_gate.download(r.gate.data(), sizeof(float) * n);
    d_score.download(r.score.data(), sizeof(float) * n);
    return r;
}

GpuDispatch cuda_sort_by_expert(std::span<const int> pair_expert, int n_experts) {
    if (n_experts < 1) throw Error("CUDA sort", "n_experts", std::to_string(n_experts), "at least 1");
    int n_kept = 0;
    for (int e : pair_expert) {
        if (e >= n_experts || e < -1)
            throw Error("CUDA sort", "pair_expert", "expert " + std::to_string(e),
                        "-1 (dropped) or 0 .. " + std::to_string(n_experts - 1));
        n_kept += e >= 0;
    }
    GpuDispatch r;
    r.expert_begin.resize(n_experts + 1);
    r.order.resize(n_kept);
    const int n_pairs = static_cast<int>(pair_expert.size());
    cuda::DeviceBuffer d_expert, d_begin(sizeof(int) * (n_experts + 1)), d_order(sizeof(int) * (n_kept + 1));
    upload_vec(d_expert, pair_expert);
    cuda::sort_by_expert(d_expert.i(), n_pairs, n_experts, d_begin.i(), d_order.i());
    d_begin.download(r.expert_begin.data(), sizeof(int) * (n_experts + 1));
    d_order.download(r.order.data(), sizeof(int) * n_kept);
    return r;
}

}  // namespace moe
