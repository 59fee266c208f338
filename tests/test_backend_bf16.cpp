// The CPU backend with BF16 expert weights (cpu_backend_bf16(), core/engine/backend.h) on the
// backend tests' case table (core/engine/bench_cases.h), under every kernel variant this CPU can
// run. The reference is the FP32 backend on the same weights rounded to BF16 first: the BF16
// path must compute the products of the BF16 values exactly as FP32 would (the kernels widen
// them exactly and accumulate in FP32), so the tolerance is FP32's (1e-5 of the largest
// entry), not BF16's. A wrong pair order, a missed odd depth or a stale half moves entries by
// O(1e-2) or more. The vdpbf16ps variant (avx512bf16) also rounds the activations to BF16, so
// it gets BF16's tolerance (2 x 2^-8 per product, 1e-2 of the largest entry), and the same
// check at 1e-5 must fail for it: the rounding really happens.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/engine/backend.h"
#include "core/engine/bench_cases.h"
#include "core/engine/cpu_features.h"
#include "core/engine/moe_layer.h"
#include "core/engine/packed_gemm.h"
#include "core/engine/routing.h"
#include "tests/test_util.h"

namespace moe {
namespace {

void round_to_bf16(Mat& w) {
    for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = bf16_to_float(float_to_bf16(w.data()[i]));
}

float max_rel_err(const Mat& got, const Mat& want) {
    if (got.rows() != want.rows() || got.cols() != want.cols()) return 1e30f;
    if (want.size() == 0) return 0.0f;
    return (got - want).cwiseAbs().maxCoeff() / std::max(want.cwiseAbs().maxCoeff(), 1e-30f);
}

TEST(BackendBf16, ExpertFfnIsTheFp32FfnOfTheRoundedWeights) {
    const Isa saved = active_isa();
    EXPECT_STREQ(cpu_backend_bf16().name(), "cpu-bf16");
    for (Isa isa : kAllIsas) {
        if (!isa_supported(isa)) continue;
        set_isa(isa);
        for (const MoeCase& c : moe_test_cases()) {
            if (c.k != 2) continue;  // K only changes the row count; 1 and 4 add time, not cases
            const MoeLayerConfig cfg = c.layer_config();
            MoeLayerWeights w = init_moe_layer(cfg, 41);
            for (ExpertWeights& e : w.experts)
                for (Mat* m : {&e.w1, &e.w3, &e.w2}) round_to_bf16(*m);
            const int n_rows = c.n_tokens * c.k;
            const Mat xs = test::random_mat(n_rows, c.d_model, 42);
            std::vector<int> begin(static_cast<size_t>(c.n_experts) + 1, 0);  // uneven: expert e gets e-ish rows
            for (int e = 0; e < c.n_experts; ++e)
                begin[static_cast<size_t>(e) + 1] = std::min(n_rows, begin[static_cast<size_t>(e)] + (e * n_rows) / 20 + 1);
            begin.back() = n_rows;
            const std::unique_ptr<PackedExperts> p32 = cpu_backend().pack_experts(w.experts, c.activation);
            const std::unique_ptr<PackedExperts> p16 = cpu_backend_bf16().pack_experts(w.experts, c.activation);
            Mat want, got;
            cpu_backend().expert_ffn_grouped(*p32, xs, begin, want);
            cpu_backend_bf16().expert_ffn_grouped(*p16, xs, begin, got);
            if (isa == Isa::Avx512Bf16) {
                EXPECT_LT(max_rel_err(got, want), 1e-2f) << isa_name(isa) << " " << c.name();
                EXPECT_GT(max_rel_err(got, want), 1e-5f) << isa_name(isa) << " " << c.name();
            } else {
                EXPECT_LT(max_rel_err(got, want), 1e-5f) << isa_name(isa) << " " << c.name();
            }
        }
    }
    set_isa(saved);
}

TEST(BackendBf16, WholeLayerRoutesAndMixesTheSame) {
    const Isa saved = active_isa();
    MoeLayerConfig cfg;
    cfg.d_model = 128;
    cfg.d_ff = bench_d_ff(128, Activation::SwiGLU);
    cfg.n_experts = 8;
    cfg.activation = Activation::SwiGLU;
    MoeLayerWeights w = init_moe_layer(cfg, 43);
    for (ExpertWeights& e : w.experts)
        for (Mat* m : {&e.w1, &e.w3, &e.w2}) round_to_bf16(*m);
    RouterConfig rc;
    rc.n_experts = 8;
    rc.k = 2;
    const Mat x = test::random_mat(33, 128, 44);
    for (Isa isa : kAllIsas) {
        if (!isa_supported(isa)) continue;
        set_isa(isa);
        MoeLayer fp32(cfg, w), bf16(cfg, w);
        bf16.set_backend(cpu_backend_bf16());
        Mat y32, y16;
        RoutingTrace t32, t16;
        fp32.forward(x, rc, {}, y32, t32);
        bf16.forward(x, rc, {}, y16, t16);
        ASSERT_EQ(t32.pairs.size(), t16.pairs.size());
        for (size_t i = 0; i < t32.pairs.size(); ++i) EXPECT_EQ(t32.pairs[i].expert, t16.pairs[i].expert) << i;
        EXPECT_LT(max_rel_err(y16, y32), isa == Isa::Avx512Bf16 ? 1e-2f : 1e-5f) << isa_name(isa);
        // And BF16 really is a different matrix from FP32 weights that are not on the BF16 grid.
        MoeLayer raw(cfg, init_moe_layer(cfg, 43)), raw16(cfg, init_moe_layer(cfg, 43));
        raw16.set_backend(cpu_backend_bf16());
        raw.forward(x, rc, {}, y32, t32);
        raw16.forward(x, rc, {}, y16, t16);
        EXPECT_GT(max_rel_err(y16, y32), 1e-4f) << isa_name(isa);
        EXPECT_LT(max_rel_err(y16, y32), 3e-2f) << isa_name(isa);
    }
    set_isa(saved);
}

}  // namespace
}  // namespace moe
