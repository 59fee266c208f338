// Every backend op against the reference, case by case, on the table of core/engine/bench_cases.h.
//   - The CPU backend against plain Eigen formulas (always runs: this is what a machine without
//     a GPU checks).
//   - Every other usable backend (CUDA when built with MOE_CUDA=ON and a device is present)
//     against the CPU backend, op by op, plus a whole MoE layer, GPU top-K against route() and
//     the GPU dispatch sort against the layer's own. Without a device those cases GTEST_SKIP
//     with the reason, and a CUDA build checks that every op throws moe::Error instead of
//     crashing.
//
// Tolerances, relative to the largest entry of the reference:
//   1e-4 for FP32 GEMMs: cuBLAS and the CPU kernels sum d_model (up to 1024) products in
//        different orders (tiles, split-K, FMA); the rounding of such sums is ~sqrt(k) * 6e-8
//        typically and k * 6e-8 = 6e-5 in the worst case, so 1e-4 passes honest FP32 and fails
//        any real error (a wrong bias, row or expert moves entries by O(1)).
//   1e-5 for the CPU backend against Eigen (same machine, similar orders).
//   1e-6 for combine: both backends sum each token's rows in row order; only FMA contraction
//        differs.
//   exact for gathers, top-K choices and the dispatch sort (no arithmetic).
//
// [SECTION] Helpers   [SECTION] CPU vs Eigen   [SECTION] Every backend vs CPU
// [SECTION] Whole layer   [SECTION] GPU routing   [SECTION] No device
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/engine/backend.h"
#include "core/cuda/backend_cuda.h"
#include "core/engine/bench_cases.h"
#include "core/error.h"
#include "core/engine/moe_layer.h"
#include "core/engine/routing.h"
#include "test_util.h"

namespace moe {
namespace {

// [SECTION] Helpers
using test::random_mat;
using test::random_vec;

float max_rel_err(const Mat& got, const Mat& want) {
    if (got.rows() != want.rows() || got.cols() != want.cols()) return 1e30f;
    if (want.size() == 0) return 0.0f;
    const float scale = std::max(want.cwiseAbs().maxCoeff(), 1e-30f);
    return (got - want).cwiseAbs().maxCoeff() / scale;
}

// The unit-test table: moe_test_cases() (d_model 128, T <= 64, N = 8) plus the N = 32 column of
// the benchmark grid at T = 64, so many-expert dispatch (experts with 0 rows) is covered too.
std::vector<MoeCase> backend_cases() {
    std::vector<MoeCase> cases = moe_test_cases();
    for (const MoeCase& c : moe_bench_cases())
        if (c.d_model == 128 && c.n_tokens == 64 && c.n_experts == 32) cases.push_back(c);
    return cases;
}

// Inputs for one case: weights with every bias set, a batch, and a fixed uneven assignment of
// K rows per token (token t -> experts (t + 3 j) % N), sorted by expert.
struct CaseData {
    MoeLayerConfig cfg;
    MoeLayerWeights w;
    Mat x;                          // (n_tokens, d_model)
    std::vector<int> row_token;     // (n_rows)
    std::vector<float> row_gate;    // (n_rows)
    std::vector<int> expert_begin;  // (n_experts + 1)
};

CaseData make_case(const MoeCase& c, uint64_t seed) {
    CaseData d;
    d.cfg = c.layer_config();
    d.cfg.router_bias = true;
    d.w = init_moe_layer(d.cfg, seed);
    uint64_t s = seed + 1;
    if (d.cfg.expert_biases)
        for (ExpertWeights& e : d.w.experts) {
            e.b1 = random_vec(static_cast<int>(e.w1.rows()), s++, 0.5f);
            e.b2 = random_vec(c.d_model, s++, 0.5f);
        }
    d.w.b_router = random_vec(c.n_experts, s++);
    d.x = random_mat(c.n_tokens, c.d_model, s++);
    d.expert_begin.assign(c.n_experts + 1, 0);
    for (int e = 0; e < c.n_experts; ++e) {
        for (int t = 0; t < c.n_tokens; ++t)
            for (int j = 0; j < c.k; ++j)
                if ((t + j * 3) % c.n_experts == e) {
                    d.row_token.push_back(t);
                    d.row_gate.push_back(0.25f + 0.5f * static_cast<float>(j) / static_cast<float>(c.k));
                }
        d.expert_begin[e + 1] = static_cast<int>(d.row_token.size());
    }
    return d;
}

// The backends that can run here: CPU always; CUDA only with a device.
std::vector<const Backend*> usable_backends() {
    std::vector<const Backend*> out;
    for (const Backend* be : available_backends()) {
#ifdef MOE_HAVE_CUDA
        if (be == &cuda_backend() && !cuda_device_usable()) continue;
#endif
        out.push_back(be);
    }
    return out;
}

// Why the GPU cases cannot run here, or "" when they can.
std::string gpu_skip_reason() {
#ifdef MOE_HAVE_CUDA
    if (!cuda_device_usable()) return "CUDA backend built, but no CUDA device or driver on this machine";
    return "";
#else
    return "built without the CUDA backend (configure with -DMOE_CUDA=ON)";
#endif
}

#ifdef MOE_HAVE_CUDA
#define MOE_SKIP_WITHOUT_GPU()                                   \
    do {                                                         \
        const std::string why = gpu_skip_reason();               \
        if (!why.empty()) GTEST_SKIP() << why;                   \
    } while (0)
#else
#define MOE_SKIP_WITHOUT_GPU() GTEST_SKIP() << gpu_skip_reason()
#endif

// [SECTION] CPU vs Eigen
TEST(BackendCpu, EveryOpMatchesEigenFormulasOnTheCaseTable) {
    const Backend& be = cpu_backend();
    uint64_t seed = 900;
    for (const MoeCase& c : backend_cases()) {
        SCOPED_TRACE(c.name());
        const CaseData d = make_case(c, seed);
        seed += 50;

        // Router on a strided block (a view into a wider matrix), as callers may pass.
        Mat wide = random_mat(c.n_tokens, c.d_model + 5, seed);
        wide.leftCols(c.d_model) = d.x;
        Mat logits;  // (n_tokens, n_experts)
        be.router_logits(wide.leftCols(c.d_model), d.w.w_router, d.w.b_router, logits);
        Mat want = d.x * d.w.w_router.transpose();
        want.rowwise() += d.w.b_router.transpose();
        EXPECT_LE(max_rel_err(logits, want), 1e-5f);

        Mat xs;  // (n_rows, d_model)
        be.gather_rows(d.x, d.row_token, xs);
        ASSERT_EQ(xs.rows(), static_cast<int>(d.row_token.size()));
        for (int r = 0; r < xs.rows(); ++r) ASSERT_TRUE(xs.row(r) == d.x.row(d.row_token[r])) << "row " << r;

        const std::unique_ptr<PackedExperts> packed = be.pack_experts(d.w.experts, c.activation);
        Mat out, h_pre, h_lin, h_act;
        const ExpertIntermediates keep{&h_pre, &h_lin, &h_act};
        be.expert_ffn_grouped(*packed, xs, d.expert_begin, out, &keep);
        ASSERT_EQ(out.rows(), xs.rows());
        for (int e = 0; e < c.n_experts; ++e) {
            const int r0 = d.expert_begin[e], m = d.expert_begin[e + 1] - r0;
            if (m == 0) continue;
            const ExpertWeights& ew = d.w.experts[e];
            const Mat xe = xs.middleRows(r0, m);  // (m, d_model)
            Mat pre = xe * ew.w1.transpose();     // (m, d_ff)
            if (ew.b1.size() > 0) pre.rowwise() += ew.b1.transpose();
            Mat act(m, c.d_ff);
            if (c.activation == Activation::GELU) {
                act = pre.unaryExpr([](float v) { return gelu(v); });
            } else {
                const Mat lin = xe * ew.w3.transpose();
                act = pre.unaryExpr([](float v) { return silu(v); }).cwiseProduct(lin);
                EXPECT_LE(max_rel_err(h_lin.middleRows(r0, m), lin), 1e-5f) << "h_lin, expert " << e;
            }
            Mat y = act * ew.w2.transpose();  // (m, d_model)
            if (ew.b2.size() > 0) y.rowwise() += ew.b2.transpose();
            EXPECT_LE(max_rel_err(h_pre.middleRows(r0, m), pre), 1e-5f) << "h_pre, expert " << e;
            EXPECT_LE(max_rel_err(h_act.middleRows(r0, m), act), 1e-5f) << "h_act, expert " << e;
            EXPECT_LE(max_rel_err(out.middleRows(r0, m), y), 1e-5f) << "out, expert " << e;
        }

        Mat y = Mat::Ones(c.n_tokens, c.d_model), want_y = y;
        be.combine(out, d.row_token, d.row_gate, y);
        for (int r = 0; r < out.rows(); ++r) want_y.row(d.row_token[r]) += d.row_gate[r] * out.row(r);
        EXPECT_LE(max_rel_err(y, want_y), 1e-6f);
    }
}

// [SECTION] Every backend vs CPU
TEST(BackendVsCpu, EveryOpOfEveryBackendMatchesTheCpuOnTheCaseTable) {
    const std::vector<const Backend*> backends = usable_backends();
    ASSERT_FALSE(backends.empty());
    EXPECT_EQ(backends[0], &cpu_backend()) << "CPU comes first";
    if (backends.size() == 1) MOE_SKIP_WITHOUT_GPU();
    const Backend& cpu = cpu_backend();
    for (size_t b = 1; b < backends.size(); ++b) {
        const Backend& be = *backends[b];
        for (int op = 0; op < kNumBackendOps; ++op)
            EXPECT_TRUE(be.supports(static_cast<BackendOp>(op))) << be.name();
        uint64_t seed = 1900;
        for (const MoeCase& c : backend_cases()) {
            SCOPED_TRACE(std::string(be.name()) + " " + c.name());
            const CaseData d = make_case(c, seed);
            seed += 50;

            Mat wide = random_mat(c.n_tokens, c.d_model + 5, seed);
            wide.leftCols(c.d_model) = d.x;
            Mat logits, want_logits;
            be.router_logits(wide.leftCols(c.d_model), d.w.w_router, d.w.b_router, logits);
            cpu.router_logits(d.x, d.w.w_router, d.w.b_router, want_logits);
            EXPECT_LE(max_rel_err(logits, want_logits), 1e-4f) << "router_logits";
            Mat no_bias, want_no_bias;
            be.router_logits(d.x, d.w.w_router, Vec(), no_bias);
            cpu.router_logits(d.x, d.w.w_router, Vec(), want_no_bias);
            EXPECT_LE(max_rel_err(no_bias, want_no_bias), 1e-4f) << "router_logits without bias";

            Mat xs, want_xs;
            be.gather_rows(d.x, d.row_token, xs);
            cpu.gather_rows(d.x, d.row_token, want_xs);
            EXPECT_TRUE(xs == want_xs) << "gather_rows";

            const std::unique_ptr<PackedExperts> packed = be.pack_experts(d.w.experts, c.activation);
            const std::unique_ptr<PackedExperts> cpu_packed = cpu.pack_experts(d.w.experts, c.activation);
            Mat out, h_pre, h_lin, h_act, want_out, w_pre, w_lin, w_act;
            const ExpertIntermediates keep{&h_pre, &h_lin, &h_act}, want_keep{&w_pre, &w_lin, &w_act};
            be.expert_ffn_grouped(*packed, want_xs, d.expert_begin, out, &keep);
            cpu.expert_ffn_grouped(*cpu_packed, want_xs, d.expert_begin, want_out, &want_keep);
            EXPECT_LE(max_rel_err(out, want_out), 1e-4f) << "expert_ffn_grouped";
            EXPECT_LE(max_rel_err(h_pre, w_pre), 1e-4f) << "h_pre";
            EXPECT_LE(max_rel_err(h_act, w_act), 1e-4f) << "h_act";
            if (c.activation == Activation::SwiGLU) {
                EXPECT_LE(max_rel_err(h_lin, w_lin), 1e-4f) << "h_lin";
            }
            Mat plain;  // without intermediates: the same output
            be.expert_ffn_grouped(*packed, want_xs, d.expert_begin, plain);
            EXPECT_TRUE(plain == out) << "keeping intermediates must not change the output";

            // Combine into a strided block of a wider matrix; the extra column must stay put.
            Mat y = Mat::Constant(c.n_tokens, c.d_model + 1, 0.5f), want_y = Mat::Constant(c.n_tokens, c.d_model, 0.5f);
            be.combine(want_out, d.row_token, d.row_gate, y.leftCols(c.d_model));
            cpu.combine(want_out, d.row_token, d.row_gate, want_y);
            EXPECT_LE(max_rel_err(y.leftCols(c.d_model), want_y), 1e-6f) << "combine";
            EXPECT_TRUE((y.col(c.d_model).array() == 0.5f).all()) << "combine wrote outside its block";
        }
    }
}

// [SECTION] Whole layer
TEST(BackendVsCpu, MoeLayerForwardOnTheGpuMatchesTheCpu) {
    MOE_SKIP_WITHOUT_GPU();
#ifdef MOE_HAVE_CUDA
    for (Activation act : {Activation::GELU, Activation::SwiGLU})
        for (Scheme scheme : {Scheme::TopKMixtral, Scheme::ExpertChoice, Scheme::SigmoidBias}) {
            SCOPED_TRACE(std::string(activation_name(act)) + " " + scheme_name(scheme));
            MoeLayerConfig cfg;
            cfg.d_model = 64;
            cfg.d_ff = 96;
            cfg.n_experts = 8;
            cfg.n_shared = 1;
            cfg.activation = act;
            cfg.expert_biases = act == Activation::GELU;
            cfg.router_bias = true;
            MoeLayer cpu_layer(cfg, init_moe_layer(cfg, 77));
            MoeLayer gpu_layer(cfg, init_moe_layer(cfg, 77));
            gpu_layer.set_backend(cuda_backend());
            RouterConfig rc;
            rc.scheme = scheme;
            rc.n_experts = cfg.n_experts;
            rc.k = 2;
            const Mat x = random_mat(40, cfg.d_model, 78);
            Mat y_cpu, y_gpu;
            RoutingTrace t_cpu, t_gpu;
            cpu_layer.forward(x, rc, {}, y_cpu, t_cpu);
            gpu_layer.forward(x, rc, {}, y_gpu, t_gpu);
            EXPECT_LE(max_rel_err(y_gpu, y_cpu), 1e-4f);
            ASSERT_EQ(t_gpu.pairs.size(), t_cpu.pairs.size());
            for (size_t i = 0; i < t_cpu.pairs.size(); ++i) EXPECT_EQ(t_gpu.pairs[i].expert, t_cpu.pairs[i].expert);
        }
#endif
}

// [SECTION] GPU routing
TEST(CudaRouting, TopKMatchesRouteForTheTokenChoiceSchemes) {
    MOE_SKIP_WITHOUT_GPU();
#ifdef MOE_HAVE_CUDA
    const Mat logits = random_mat(200, 32, 4242, 3.0f);  // (n_tokens, n_experts)
    const Vec bias = random_vec(32, 4243, 0.2f);
    for (Scheme scheme : {Scheme::TopKMixtral, Scheme::TopKGShard, Scheme::Switch, Scheme::SigmoidBias})
        for (int k : {1, 2, 4, 8}) {
            for (bool renorm : {true, false}) {
                SCOPED_TRACE(std::string(scheme_name(scheme)) + " k=" + std::to_string(k) + " renorm=" +
                             std::to_string(renorm));
                RouterConfig rc;
                rc.scheme = scheme;
                rc.n_experts = 32;
                rc.k = k;
                rc.renormalize = renorm;
                rc.routed_scaling = scheme == Scheme::SigmoidBias ? 2.5f : 1.0f;
                RouteExtras ex;
                ex.expert_bias = &bias;
                const RoutingTrace tr = route(rc, logits, ex);
                const GpuTopK g = cuda_topk(rc, logits, scheme == Scheme::SigmoidBias ? &bias : nullptr);
                ASSERT_EQ(g.k, tr.k);
                ASSERT_EQ(g.expert.size(), tr.pairs.size());
                for (size_t i = 0; i < tr.pairs.size(); ++i) {
                    ASSERT_EQ(g.expert[i], tr.pairs[i].expert) << "pair " << i;
                    EXPECT_NEAR(g.gate[i], tr.pairs[i].gate, 1e-5f * std::max(1.0f, std::abs(tr.pairs[i].gate)));
                    EXPECT_NEAR(g.score[i], tr.pairs[i].score, 1e-5f * std::max(1.0f, std::abs(tr.pairs[i].score)));
                }
            }
        }
#endif
}

TEST(CudaRouting, SortByExpertMatchesTheLayersDispatch) {
    MOE_SKIP_WITHOUT_GPU();
#ifdef MOE_HAVE_CUDA
    // A capacity-limited route, so dropped pairs (-1) are in the mix; the layer's cache holds the
    // CPU's stable counting sort of the same trace.
    MoeLayerConfig cfg;
    cfg.d_model = 32;
    cfg.d_ff = 48;
    cfg.n_experts = 16;
    const MoeLayer layer(cfg, init_moe_layer(cfg, 5));
    RouterConfig rc;
    rc.n_experts = 16;
    rc.k = 4;
    rc.drop_policy = DropPolicy::Position;
    rc.capacity_factor = 0.6f;
    const Mat x = random_mat(700, cfg.d_model, 6);
    Mat y;
    RoutingTrace tr;
    MoeForwardCache cache;
    layer.forward(x, rc, {}, y, tr, &cache);
    ASSERT_GT(tr.stats.n_dropped, 0);
    std::vector<int> pair_expert;
    for (const RoutedPair& p : tr.pairs) pair_expert.push_back(p.dropped ? -1 : p.expert);
    const GpuDispatch g = cuda_sort_by_expert(pair_expert, cfg.n_experts);
    EXPECT_EQ(g.expert_begin, cache.expert_begin);
    EXPECT_EQ(g.order, cache.order);
    const GpuDispatch empty = cuda_sort_by_expert({}, 4);
    EXPECT_EQ(empty.expert_begin, std::vector<int>(5, 0));
    EXPECT_TRUE(empty.order.empty());
#endif
}

// [SECTION] No device
TEST(CudaRouting, BadRequestsThrowNamingTheField) {
#ifdef MOE_HAVE_CUDA
    // These are refused before any device is touched, so they hold with or without a GPU.
    const Mat logits = random_mat(4, 8, 1);
    RouterConfig rc;
    rc.n_experts = 8;
    rc.scheme = Scheme::Hash;
    try {
        cuda_topk(rc, logits);
        ADD_FAILURE() << "Hash has no GPU top-K";
    } catch (const Error& e) {
        EXPECT_EQ(e.field(), "scheme");
    }
    rc.scheme = Scheme::TopKMixtral;
    rc.k = 9;
    EXPECT_THROW(cuda_topk(rc, logits), Error);
    rc.k = 2;
    rc.n_experts = 7;
    EXPECT_THROW(cuda_topk(rc, logits), Error);
    try {
        const std::vector<int> bad{0, 3, 8};
        cuda_sort_by_expert(bad, 8);
        ADD_FAILURE() << "expert 8 of 8 accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.field(), "pair_expert");
        EXPECT_NE(std::string(e.what()).find("8"), std::string::npos);
    }
#else
    GTEST_SKIP() << gpu_skip_reason();
#endif
}

TEST(CudaBackend, WithoutADeviceEveryOpThrowsMoeErrorNotACrash) {
#ifdef MOE_HAVE_CUDA
    if (cuda_device_usable()) GTEST_SKIP() << "a CUDA device is present: " << cuda_device_description();
    const Backend& be = cuda_backend();
    EXPECT_STREQ(be.name(), "cuda");
    const Mat x = random_mat(3, 8, 1), w = random_mat(4, 8, 2);
    Mat out;
    try {
        be.router_logits(x, w, Vec(), out);
        ADD_FAILURE() << "router_logits ran without a device";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
        EXPECT_FALSE(e.problem().empty());
    }
    const std::vector<int> rows{0, 2};
    EXPECT_THROW(be.gather_rows(x, rows, out), Error);
    MoeLayerConfig cfg;
    cfg.d_model = 8;
    cfg.d_ff = 16;
    cfg.n_experts = 4;
    const MoeLayerWeights lw = init_moe_layer(cfg, 3);
    EXPECT_THROW(be.pack_experts(lw.experts, cfg.activation), Error);
    Mat y = Mat::Zero(3, 8);
    const std::vector<float> gates{1.0f, 0.5f};
    EXPECT_THROW(be.combine(x.topRows(2), rows, gates, y), Error);
    EXPECT_THROW(cuda_device_description(), Error);
    RouterConfig rc;
    rc.n_experts = 4;
    EXPECT_THROW(cuda_topk(rc, Mat(x * w.transpose())), Error);
    // Still failing cleanly the second time (no half-made context left behind).
    EXPECT_THROW(be.router_logits(x, w, Vec(), out), Error);
#else
    GTEST_SKIP() << gpu_skip_reason();
#endif
}

}  // namespace
}  // namespace moe
