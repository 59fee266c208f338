// core/systems: expert placement, all-to-all traffic on hand-made traces against hand counts and
// the MOE_REFERENCE §6 formula, and the memory-vs-compute sweep's shape (no speed ratios).
#include "core/teach/systems.h"

#include <gtest/gtest.h>

#include <cmath>

#include <random>

#include "core/error.h"

namespace moe {
namespace {

// A K=1 dropless trace where token t goes to expert choice[t] (one-hot logits).
RoutingTrace trace_to(const std::vector<int>& choice, int n_experts) {
    Mat logits = Mat::Zero(static_cast<Eigen::Index>(choice.size()), n_experts);  // (T, N)
    for (size_t t = 0; t < choice.size(); ++t) logits(static_cast<Eigen::Index>(t), choice[t]) = 10.0f;
    RouterConfig rc;
    rc.scheme = Scheme::TopKMixtral;
    rc.n_experts = n_experts;
    rc.k = 1;
    return route(rc, logits);
}

TEST(Placement, ContiguousAndRoundRobin) {
    const ExpertPlacement c = place_experts(8, 4, Placement::Contiguous);
    EXPECT_EQ(c.device_of_expert, (std::vector<int>{0, 0, 1, 1, 2, 2, 3, 3}));
    const ExpertPlacement r = place_experts(8, 4, Placement::RoundRobin);
    EXPECT_EQ(r.device_of_expert, (std::vector<int>{0, 1, 2, 3, 0, 1, 2, 3}));
    // Uneven: 5 experts on 2 devices, blocks of 3 and 2.
    EXPECT_EQ(place_experts(5, 2, Placement::Contiguous).device_of_expert, (std::vector<int>{0, 0, 0, 1, 1}));
    EXPECT_THROW(place_experts(4, 5, Placement::Contiguous), Error);
    EXPECT_THROW(place_experts(4, 0, Placement::RoundRobin), Error);
}

TEST(Placement, TokensInEqualSlices) {
    EXPECT_EQ(device_of_token(0, 8, 4), 0);
    EXPECT_EQ(device_of_token(1, 8, 4), 0);
    EXPECT_EQ(device_of_token(2, 8, 4), 1);
    EXPECT_EQ(device_of_token(7, 8, 4), 3);
    EXPECT_EQ(device_of_token(0, 1, 4), 0);
}

TEST(Traffic, AllLocalIsZeroBytes) {
    // T=4 on G=2: tokens 0,1 on device 0, tokens 2,3 on device 1; experts 0,1 | 2,3.
    const RoutingTrace tr = trace_to({0, 1, 2, 3}, 4);
    const AllToAllTraffic a = all_to_all_traffic(tr, place_experts(4, 2, Placement::Contiguous), 16, 2);
    EXPECT_EQ(a.n_pairs, 4);
    EXPECT_EQ(a.n_pairs_crossing, 0);
    EXPECT_EQ(a.n_tokens_crossing, 0);
    EXPECT_EQ(a.total_bytes, 0.0);
    EXPECT_EQ(a.pairs[0][0], 2);
    EXPECT_EQ(a.pairs[1][1], 2);
    EXPECT_EQ(a.pairs[0][1], 0);
    // The formula does not know the routing: it assumes uniform experts.
    EXPECT_DOUBLE_EQ(a.formula_bytes, 2.0 * 4 * 1 * 16 * 2 * 1 / 2);
}

TEST(Traffic, AllCrossingKnownCase) {
    const RoutingTrace tr = trace_to({2, 3, 0, 1}, 4);
    const AllToAllTraffic a = all_to_all_traffic(tr, place_experts(4, 2, Placement::Contiguous), 16, 2);
    EXPECT_EQ(a.n_pairs_crossing, 4);
    EXPECT_EQ(a.n_tokens_crossing, 4);
    EXPECT_DOUBLE_EQ(a.dispatch_bytes, 4.0 * 16 * 2);
    EXPECT_DOUBLE_EQ(a.combine_bytes, a.dispatch_bytes);
    EXPECT_DOUBLE_EQ(a.total_bytes, 2 * 4.0 * 16 * 2);
    EXPECT_EQ(a.pairs[0][1], 2);
    EXPECT_EQ(a.pairs[1][0], 2);
    // Round-robin puts experts 0,2 on device 0 and 1,3 on device 1, by hand:
    // t0 dev0 -> e2 dev0 local; t1 dev0 -> e3 dev1 cross; t2 dev1 -> e0 dev0 cross; t3 dev1 -> e1 dev1 local.
    const AllToAllTraffic r = all_to_all_traffic(tr, place_experts(4, 2, Placement::RoundRobin), 16, 2);
    EXPECT_EQ(r.n_pairs_crossing, 2);
    EXPECT_EQ(r.n_tokens_crossing, 2);
}

TEST(Traffic, DroppedPairsMoveNothingAndTopTwoCountsPairs) {
    RoutingTrace tr = trace_to({2, 3, 0, 1}, 4);
    tr.pairs[0].dropped = true;  // token 0's only pair refused for capacity
    const AllToAllTraffic a = all_to_all_traffic(tr, place_experts(4, 2, Placement::Contiguous), 8, 4);
    EXPECT_EQ(a.n_pairs, 3);
    EXPECT_EQ(a.n_pairs_crossing, 3);
    EXPECT_EQ(a.n_tokens_crossing, 3);
    EXPECT_DOUBLE_EQ(a.total_bytes, 2 * 3.0 * 8 * 4);

    // Top-2: token 0 (device 0) to experts 0 (local) and 3 (remote): one crossing pair, one token.
    Mat logits(2, 4);  // (T, N)
    logits << 5, 0, 0, 4, 5, 4, 0, 0;
    RouterConfig rc;
    rc.n_experts = 4;
    rc.k = 2;
    const RoutingTrace t2 = route(rc, logits);
    const AllToAllTraffic b = all_to_all_traffic(t2, place_experts(4, 2, Placement::Contiguous), 8, 4);
    // Token 1 is on device 1 (experts 2,3) and goes to experts 0 and 1: two crossing pairs.
    EXPECT_EQ(b.n_pairs, 4);
    EXPECT_EQ(b.n_pairs_crossing, 3);
    EXPECT_EQ(b.n_tokens_crossing, 2);
    EXPECT_DOUBLE_EQ(b.formula_bytes, 2.0 * 2 * 2 * 8 * 4 * 1 / 2);
}

TEST(Traffic, UniformRoutingMatchesFormula) {
    // Random logits, top-2 of 8 on 4 devices: each pair crosses with probability 3/4, so the
    // count approaches the formula; 4096 tokens make a 5% band very safe.
    const int n_tokens = 4096, n_experts = 8;
    std::mt19937_64 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    Mat logits(n_tokens, n_experts);  // (T, N)
    for (Eigen::Index i = 0; i < logits.size(); ++i) logits.data()[i] = nd(rng);
    RouterConfig rc;
    rc.n_experts = n_experts;
    rc.k = 2;
    const RoutingTrace tr = route(rc, logits);
    for (Placement pl : {Placement::Contiguous, Placement::RoundRobin}) {
        const AllToAllTraffic a = all_to_all_traffic(tr, place_experts(n_experts, 4, pl), 64, 2);
        EXPECT_DOUBLE_EQ(a.formula_bytes, 2.0 * n_tokens * 2 * 64 * 2 * 3 / 4);
        EXPECT_NEAR(a.total_bytes / a.formula_bytes, 1.0, 0.05) << placement_name(pl);
    }
    // One device: nothing ever crosses, and the formula agrees.
    const AllToAllTraffic one = all_to_all_traffic(tr, place_experts(n_experts, 1, Placement::Contiguous), 64, 2);
    EXPECT_EQ(one.total_bytes, 0.0);
    EXPECT_EQ(one.formula_bytes, 0.0);
}

TEST(Traffic, BadInputsThrow) {
    const RoutingTrace tr = trace_to({0, 1}, 4);
    EXPECT_THROW(all_to_all_traffic(tr, place_experts(8, 2, Placement::Contiguous), 16, 2), Error);
    EXPECT_THROW(all_to_all_traffic(tr, place_experts(4, 2, Placement::Contiguous), 0, 2), Error);
    EXPECT_THROW(all_to_all_traffic(tr, place_experts(4, 2, Placement::Contiguous), 16, 0), Error);
}

TEST(ComputeSweep, MeasuresEveryPointAndChartsIt) {
    ComputeSweepConfig cfg;
    cfg.layer.d_model = 32;
    cfg.layer.d_ff = 32;
    cfg.layer.n_experts = 4;
    cfg.k = 2;
    cfg.batch_sizes = {1, 16, 256};
    cfg.reps = 3;
    const ComputeSweep s = measure_compute_sweep(cfg);
    ASSERT_EQ(s.points.size(), 3u);
    EXPECT_EQ(s.dense_total_d_ff, 4 * 32);
    EXPECT_EQ(s.dense_active_d_ff, 2 * 32);
    EXPECT_GT(s.moe_total_params, s.moe_active_params);
    // Only that every time was measured: whether they grow with T is a speed question, which
    // belongs to the benchmarks (a loaded CI machine made T=16 look slower than T=256 once).
    for (size_t i = 0; i < s.points.size(); ++i) {
        const ComputeSweepPoint& p = s.points[i];
        EXPECT_EQ(p.n_tokens, cfg.batch_sizes[i]);
        for (double ms : {p.moe_ms, p.dense_total_ms, p.dense_active_ms}) {
            EXPECT_GT(ms, 0.0);
            EXPECT_TRUE(std::isfinite(ms));
        }
    }
    const LineChart c = compute_sweep_chart(s);
    ASSERT_EQ(c.ys.size(), 3u);
    EXPECT_EQ(c.xs.size(), 3u);
    EXPECT_FLOAT_EQ(c.xs[2], 8.0f);
    EXPECT_NEAR(c.ys[0][1], s.points[1].moe_ms * 1000.0 / 16, 1e-3 * c.ys[0][1]);
}

TEST(ComputeSweep, BadConfigThrows) {
    ComputeSweepConfig cfg;
    cfg.batch_sizes = {0};
    EXPECT_THROW(measure_compute_sweep(cfg), Error);
    cfg.batch_sizes = {4};
    cfg.k = 9;
    EXPECT_THROW(measure_compute_sweep(cfg), Error);
    cfg.k = 2;
    cfg.reps = 0;
    EXPECT_THROW(measure_compute_sweep(cfg), Error);
}

}  // namespace
}  // namespace moe
