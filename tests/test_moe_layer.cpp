// The MoE layer's fast path (sort by expert, grouped GEMM over pre-packed weights, scatter-add)
// against a naive per-token reference written here, for every routing scheme, plus the layer's
// contracts: dropped tokens, shared experts, the dense-mixture limit, the backward cache,
// thread-count independence, config validation, and every backend op on the shared case table.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/engine/backend.h"
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

std::vector<int32_t> token_ids_for(int n_tokens) {
    std::vector<int32_t> ids(n_tokens);
    for (int t = 0; t < n_tokens; ++t) ids[t] = (t * 37 + 11) % 256;
    return ids;
}

// The naive reference: token by token, each kept pair through expert_forward_reference on that
// one row, times its gate; then every shared expert with weight 1.
Mat naive_forward(const MoeLayerConfig& cfg, const MoeLayerWeights& w, ConstMatRef x,
                  const RoutingTrace& trace) {
    Mat y = Mat::Zero(x.rows(), x.cols());
    Mat out;
    for (int t = 0; t < static_cast<int>(x.rows()); ++t) {
        for (const RoutedPair& p : trace.token_pairs(t)) {
            if (p.dropped) continue;
            expert_forward_reference(w.experts[p.expert], cfg.activation, x.row(t), out);
            y.row(t) += p.gate * out.row(0);
        }
        for (const ExpertWeights& s : w.shared) {
            expert_forward_reference(s, cfg.activation, x.row(t), out);
            y.row(t) += out.row(0);
        }
    }
    return y;
}

float max_rel_err(const Mat& got, const Mat& want) {
    const float scale = std::max(want.cwiseAbs().maxCoeff(), 1e-30f);
    return (got - want).cwiseAbs().maxCoeff() / scale;
}

MoeLayerWeights randomised_biases(MoeLayerConfig cfg, MoeLayerWeights w, uint64_t seed) {
    // Init zeros the biases; random ones make sure the fast path really adds them.
    for (auto* group : {&w.experts, &w.shared})
        for (ExpertWeights& e : *group) {
            if (!cfg.expert_biases) break;
            e.b1 = random_vec(static_cast<int>(e.w1.rows()), seed++, 0.5f);
            e.b2 = random_vec(cfg.d_model, seed++, 0.5f);
        }
    if (cfg.router_bias) w.b_router = random_vec(cfg.n_experts, seed++);
    w.w_noise = random_mat(cfg.n_experts, cfg.d_model, seed++, 0.3f);
    w.expert_bias = random_vec(cfg.n_experts, seed++, 0.2f);
    return w;
}

// [SECTION] Fast path == naive reference, every scheme
struct SchemeCase {
    Scheme scheme;
    Activation act;
    DropPolicy policy;
    int n_shared;
    float jitter;
    bool grouped;
};

void check_against_naive(const SchemeCase& sc, int n_tokens, int d_model, int d_ff, int n_experts,
                         int k, uint64_t seed) {
    MoeLayerConfig cfg;
    cfg.d_model = d_model;
    cfg.d_ff = d_ff;
    cfg.n_experts = n_experts;
    cfg.n_shared = sc.n_shared;
    cfg.d_ff_shared = sc.n_shared > 0 ? d_ff + 8 : 0;
    cfg.activation = sc.act;
    cfg.router_bias = true;
    cfg.expert_biases = sc.act == Activation::GELU;
    MoeLayerWeights w = randomised_biases(cfg, init_moe_layer(cfg, seed), seed + 100);
    const MoeLayer layer(cfg, w);

    RouterConfig rc;
    rc.scheme = sc.scheme;
    rc.n_experts = n_experts;
    rc.k = k;
    rc.drop_policy = sc.policy;
    rc.capacity_factor = sc.policy == DropPolicy::Dropless ? 1.25f : 0.5f;
    rc.add_noise = true;
    rc.jitter_eps = sc.jitter;
    rc.seed = seed;
    if (sc.grouped) {
        rc.n_groups = 4;
        rc.topk_groups = 2;
    }
    const Mat x = random_mat(n_tokens, d_model, seed + 7);
    const std::vector<int32_t> ids = token_ids_for(n_tokens);

    Mat y;
    RoutingTrace trace;
    MoeForwardCache cache;
    layer.forward(x, rc, ids, y, trace, &cache);
    ASSERT_EQ(y.rows(), n_tokens);
    ASSERT_EQ(y.cols(), d_model);

    // The trace is exactly route() of the router logits of the (jittered) router input.
    Mat logits, noise;
    layer.router_logits(cache.x_router, logits);
    cpu_backend().router_logits(cache.x_router, w.w_noise, Vec(), noise);
    RouteExtras extras;
    extras.noise_logits = &noise;
    extras.token_ids = ids;
    extras.expert_bias = &w.expert_bias;
    const RoutingTrace again = route(rc, logits, extras);
    ASSERT_EQ(again.pairs.size(), trace.pairs.size());
    for (size_t i = 0; i < trace.pairs.size(); ++i) {
        EXPECT_EQ(again.pairs[i].token, trace.pairs[i].token);
        EXPECT_EQ(again.pairs[i].expert, trace.pairs[i].expert);
        EXPECT_EQ(again.pairs[i].dropped, trace.pairs[i].dropped);
        EXPECT_EQ(again.pairs[i].gate, trace.pairs[i].gate);
    }
    // Jitter scales the router input only, each entry by a factor in [1-eps, 1+eps].
    if (sc.jitter > 0.0f) {
        const Mat ratio = cache.x_router.cwiseQuotient(x);
        EXPECT_GE(ratio.minCoeff(), 1.0f - sc.jitter - 1e-6f);
        EXPECT_LE(ratio.maxCoeff(), 1.0f + sc.jitter + 1e-6f);
        EXPECT_GT(ratio.maxCoeff() - ratio.minCoeff(), sc.jitter);  // it really jitters
    } else {
        EXPECT_EQ(cache.x_router, x);
    }
    if (sc.policy != DropPolicy::Dropless && sc.scheme != Scheme::Soft && sc.scheme != Scheme::Base &&
        sc.scheme != Scheme::ExpertChoice) {
        EXPECT_GT(trace.stats.n_dropped, 0) << "capacity_factor 0.5 must drop pairs";
    }

    const Mat want = naive_forward(cfg, w, x, trace);
    EXPECT_LE(max_rel_err(y, want), 1e-5f);
}

TEST(MoeLayer, FastPathMatchesNaiveReferenceForEveryScheme) {
    int n_checked = 0;
    uint64_t seed = 1;
    for (int s = 0; s < kNumSchemes; ++s)
        for (Activation act : {Activation::GELU, Activation::SwiGLU})
            for (DropPolicy policy : {DropPolicy::Dropless, DropPolicy::Position, DropPolicy::Score}) {
                const Scheme scheme = static_cast<Scheme>(s);
                const bool can_group = scheme == Scheme::TopKMixtral || scheme == Scheme::TopKGShard ||
                                       scheme == Scheme::NoisyTopK || scheme == Scheme::Switch ||
                                       scheme == Scheme::SigmoidBias || scheme == Scheme::Sinkhorn;
                for (int variant = 0; variant < (can_group ? 2 : 1); ++variant) {
                    const SchemeCase sc{scheme, act, policy, /*n_shared=*/(s + variant) % 2 == 0 ? 0 : 2,
                                        /*jitter=*/variant == 0 && s % 3 == 0 ? 0.0f : 0.2f,
                                        /*grouped=*/variant == 1};
                    SCOPED_TRACE(std::string(scheme_name(scheme)) + " " + activation_name(act) + " " +
                                 drop_policy_name(policy) + " shared=" + std::to_string(sc.n_shared) +
                                 " jitter=" + std::to_string(sc.jitter) + " grouped=" + std::to_string(sc.grouped));
                    // d_model and d_ff off the 16-column panel width, to cover the tail paths.
                    check_against_naive(sc, /*n_tokens=*/48, /*d_model=*/36, /*d_ff=*/52, /*n_experts=*/8,
                                        /*k=*/2, seed++);
                    ++n_checked;
                }
            }
    EXPECT_EQ(n_checked, 2 * 3 * (kNumSchemes + 6));
}

TEST(MoeLayer, FastPathMatchesNaiveReferenceOnLargerBlocks) {
    // Enough rows per expert for several row blocks and a depth (d_ff) over one depth block.
    for (Activation act : {Activation::GELU, Activation::SwiGLU}) {
        SCOPED_TRACE(activation_name(act));
        check_against_naive({Scheme::TopKMixtral, act, DropPolicy::Dropless, 1, 0.0f, false},
                            /*n_tokens=*/256, /*d_model=*/72, /*d_ff=*/300, /*n_experts=*/4, /*k=*/2, 99);
    }
}

// [SECTION] Layer contracts
MoeLayer small_layer(Activation act, int n_shared, uint64_t seed, MoeLayerWeights* weights_out = nullptr) {
    MoeLayerConfig cfg;
    cfg.d_model = 32;
    cfg.d_ff = 48;
    cfg.n_experts = 4;
    cfg.n_shared = n_shared;
    cfg.activation = act;
    MoeLayerWeights w = init_moe_layer(cfg, seed);
    if (weights_out) *weights_out = w;
    return MoeLayer(cfg, std::move(w));
}

TEST(MoeLayer, TokensWithEveryPairDroppedGetZero) {
    const MoeLayer layer = small_layer(Activation::SwiGLU, 0, 3);
    RouterConfig rc;
    rc.scheme = Scheme::Switch;
    rc.n_experts = 4;
    rc.drop_policy = DropPolicy::Position;
    rc.capacity_factor = 0.25f;  // C = ceil(0.25 * 40 / 4) = 3 tokens per expert: most drop
    const Mat x = random_mat(40, 32, 5);
    Mat y;
    RoutingTrace trace;
    layer.forward(x, rc, {}, y, trace);
    int n_unrouted = 0;
    for (int t = 0; t < 40; ++t) {
        bool any_kept = false;
        for (const RoutedPair& p : trace.token_pairs(t)) any_kept |= !p.dropped;
        if (!any_kept) {
            ++n_unrouted;
            EXPECT_EQ(y.row(t).cwiseAbs().maxCoeff(), 0.0f) << "token " << t;
        } else {
            EXPECT_GT(y.row(t).cwiseAbs().maxCoeff(), 0.0f) << "token " << t;
        }
    }
    EXPECT_GE(n_unrouted, 40 - 4 * 3);
    EXPECT_EQ(n_unrouted, trace.stats.n_tokens_unrouted);
}

TEST(MoeLayer, SharedExpertsRunOnEveryTokenWithWeightOne) {
    MoeLayerWeights w;
    const MoeLayer layer = small_layer(Activation::GELU, 2, 4, &w);
    RouterConfig rc;
    rc.scheme = Scheme::ExpertChoice;  // some tokens get no routed expert at all
    rc.n_experts = 4;
    rc.capacity_factor = 0.5f;
    const Mat x = random_mat(24, 32, 6);
    Mat y;
    RoutingTrace trace;
    layer.forward(x, rc, {}, y, trace);
    Mat shared_sum = Mat::Zero(24, 32), out;
    for (const ExpertWeights& s : w.shared) {
        expert_forward_reference(s, Activation::GELU, x, out);
        shared_sum += out;
    }
    int n_unrouted = 0;
    for (int t = 0; t < 24; ++t) {
        if (trace.token_pairs(t).empty()) {
            ++n_unrouted;
            EXPECT_LE((y.row(t) - shared_sum.row(t)).cwiseAbs().maxCoeff(),
                      1e-5f * shared_sum.row(t).cwiseAbs().maxCoeff());
        }
    }
    EXPECT_GT(n_unrouted, 0) << "expert choice at capacity 0.5 leaves tokens unpicked";
    EXPECT_LE(max_rel_err(y, naive_forward(layer.config(), w, x, trace)), 1e-5f);
}

// The teaching toggle: with rc.shared_experts off the layer gives exactly the routed part, i.e.
// the output with shared experts minus their contribution, the same routing, and no shared cache.
TEST(MoeLayer, SharedExpertsOffRemovesExactlyTheirContribution) {
    for (Activation act : {Activation::GELU, Activation::SwiGLU}) {
        SCOPED_TRACE(activation_name(act));
        MoeLayerWeights w;
        const MoeLayer layer = small_layer(act, 2, 12, &w);
        RouterConfig rc;
        rc.n_experts = 4;
        rc.k = 2;
        const Mat x = random_mat(20, 32, 13);
        Mat y_on, y_off;
        RoutingTrace tr_on, tr_off;
        MoeForwardCache cache_on, cache_off;
        layer.forward(x, rc, {}, y_on, tr_on, &cache_on);
        rc.shared_experts = false;
        layer.forward(x, rc, {}, y_off, tr_off, &cache_off);

        Mat shared_sum = Mat::Zero(20, 32), out;  // (n_tokens, d_model)
        for (const ExpertWeights& s : w.shared) {
            expert_forward_reference(s, act, x, out);
            shared_sum += out;
        }
        ASSERT_GT(shared_sum.cwiseAbs().maxCoeff(), 1e-3f);
        const Mat routed_only = y_on - shared_sum;  // (n_tokens, d_model)
        EXPECT_LE((y_off - routed_only).cwiseAbs().maxCoeff(), 1e-5f * (1.0f + y_on.cwiseAbs().maxCoeff()));
        EXPECT_GT((y_off - y_on).cwiseAbs().maxCoeff(), 1e-3f);

        // Routing does not depend on the shared experts.
        ASSERT_EQ(tr_off.pairs.size(), tr_on.pairs.size());
        for (size_t i = 0; i < tr_on.pairs.size(); ++i) {
            EXPECT_EQ(tr_off.pairs[i].expert, tr_on.pairs[i].expert);
            EXPECT_EQ(tr_off.pairs[i].gate, tr_on.pairs[i].gate);
        }
        // The routed cache is the same; the shared one is empty, as the header promises.
        EXPECT_EQ(cache_off.order, cache_on.order);
        EXPECT_EQ((cache_off.expert_out - cache_on.expert_out).cwiseAbs().maxCoeff(), 0.0f);
        EXPECT_EQ(cache_on.shared_h_act.size(), 2u);
        EXPECT_TRUE(cache_off.shared_h_pre.empty());
        EXPECT_TRUE(cache_off.shared_h_lin.empty());
        EXPECT_TRUE(cache_off.shared_h_act.empty());

        // A layer without shared experts ignores the knob.
        const MoeLayer plain = small_layer(act, 0, 12);
        Mat p_on, p_off;
        RoutingTrace t_on, t_off;
        plain.forward(x, rc, {}, p_off, t_off);
        rc.shared_experts = true;
        plain.forward(x, rc, {}, p_on, t_on);
        EXPECT_EQ((p_on - p_off).cwiseAbs().maxCoeff(), 0.0f);
    }
}

TEST(MoeLayer, SoftRoutingWithAllExpertsIsTheDenseMixture) {
    MoeLayerWeights w;
    const MoeLayer layer = small_layer(Activation::SwiGLU, 0, 8, &w);
    RouterConfig rc;
    rc.scheme = Scheme::Soft;
    rc.n_experts = 4;
    rc.k = 4;
    const Mat x = random_mat(10, 32, 9);
    Mat y;
    RoutingTrace trace;
    layer.forward(x, rc, {}, y, trace);
    // By hand: p = softmax(x W_r^T) per token, y = sum_i p_i E_i(x).
    const Mat h = x * w.w_router.transpose();
    Mat want = Mat::Zero(10, 32), out;
    for (int i = 0; i < 4; ++i) {
        expert_forward_reference(w.experts[i], Activation::SwiGLU, x, out);
        for (int t = 0; t < 10; ++t) {
            const float p = std::exp(h(t, i) - h.row(t).maxCoeff()) /
                            (h.row(t).array() - h.row(t).maxCoeff()).exp().sum();
            want.row(t) += p * out.row(t);
        }
    }
    EXPECT_LE(max_rel_err(y, want), 1e-5f);
}

TEST(MoeLayer, CacheFieldsAreConsistentWithTheOutput) {
    for (Activation act : {Activation::GELU, Activation::SwiGLU}) {
        SCOPED_TRACE(activation_name(act));
        MoeLayerWeights w;
        const MoeLayer layer = small_layer(act, 1, 10, &w);
        RouterConfig rc;
        rc.n_experts = 4;
        rc.k = 2;
        rc.drop_policy = DropPolicy::Score;
        rc.capacity_factor = 0.8f;
        const Mat x = random_mat(30, 32, 11);
        Mat y;
        RoutingTrace trace;
        MoeForwardCache cache;
        layer.forward(x, rc, {}, y, trace, &cache);

        int n_kept = 0;
        for (const RoutedPair& p : trace.pairs) n_kept += p.dropped ? 0 : 1;
        ASSERT_EQ(static_cast<int>(cache.order.size()), n_kept);
        ASSERT_EQ(cache.expert_begin.size(), 5u);
        EXPECT_EQ(cache.expert_begin.front(), 0);
        EXPECT_EQ(cache.expert_begin.back(), n_kept);
        ASSERT_EQ(cache.h_pre.rows(), n_kept);
        ASSERT_EQ(cache.h_act.rows(), n_kept);
        ASSERT_EQ(cache.expert_out.rows(), n_kept);
        EXPECT_EQ(cache.h_lin.rows(), act == Activation::SwiGLU ? n_kept : 0);
        Mat recombined = Mat::Zero(30, 32), ref;
        for (int e = 0; e < 4; ++e) {
            EXPECT_EQ(cache.expert_begin[e + 1] - cache.expert_begin[e], trace.expert_load[e]);
            for (int r = cache.expert_begin[e]; r < cache.expert_begin[e + 1]; ++r) {
                const RoutedPair& p = trace.pairs[cache.order[r]];
                EXPECT_EQ(p.expert, e);
                EXPECT_FALSE(p.dropped);
                if (r > cache.expert_begin[e]) {
                    EXPECT_LT(cache.order[r - 1], cache.order[r]);
                }
                const Mat xt = x.row(p.token);
                const Mat pre = xt * w.experts[e].w1.transpose();
                EXPECT_LE(max_rel_err(cache.h_pre.row(r), pre), 1e-5f);
                for (int j = 0; j < 48; ++j) {
                    const float want = act == Activation::GELU ? gelu(cache.h_pre(r, j))
                                                               : silu(cache.h_pre(r, j)) * cache.h_lin(r, j);
                    EXPECT_NEAR(cache.h_act(r, j), want, 1e-5f * (1.0f + std::fabs(want)));
                }
                expert_forward_reference(w.experts[e], act, xt, ref);
                EXPECT_LE(max_rel_err(cache.expert_out.row(r), ref), 1e-5f);
                recombined.row(p.token) += p.gate * cache.expert_out.row(r);
            }
        }
        ASSERT_EQ(cache.shared_h_act.size(), 1u);
        EXPECT_EQ(cache.shared_h_act[0].rows(), 30);
        const Mat shared_out = cache.shared_h_act[0] * w.shared[0].w2.transpose();
        recombined += shared_out;
        EXPECT_LE(max_rel_err(y, recombined), 1e-5f);
    }
}

TEST(MoeLayer, OneAndTwoThreadsGiveIdenticalBits) {
    MoeLayerConfig cfg;
    cfg.d_model = 64;
    cfg.d_ff = 96;
    cfg.n_experts = 8;
    cfg.n_shared = 1;
    const MoeLayer layer(cfg, init_moe_layer(cfg, 12));
    RouterConfig rc;
    rc.n_experts = 8;
    rc.k = 2;
    rc.jitter_eps = 0.1f;
    const Mat x = random_mat(200, 64, 13);
    const int saved = omp_get_max_threads();
    Mat y1, y2;
    RoutingTrace t1, t2;
    omp_set_num_threads(1);
    layer.forward(x, rc, {}, y1, t1);
    omp_set_num_threads(2);
    layer.forward(x, rc, {}, y2, t2);
    omp_set_num_threads(saved);
    EXPECT_TRUE(y1 == y2) << "max diff " << (y1 - y2).cwiseAbs().maxCoeff();
}

TEST(MoeLayer, MutableWeightsRepacks) {
    MoeLayerWeights w;
    MoeLayer layer = small_layer(Activation::SwiGLU, 0, 14, &w);
    RouterConfig rc;
    rc.n_experts = 4;
    const Mat x = random_mat(16, 32, 15);
    Mat y_before, y_after;
    RoutingTrace trace;
    layer.forward(x, rc, {}, y_before, trace);
    layer.mutable_weights().experts[0].w2 *= 2.0f;
    layer.mutable_weights().experts[1].w2 *= 2.0f;
    layer.mutable_weights().experts[2].w2 *= 2.0f;
    layer.mutable_weights().experts[3].w2 *= 2.0f;
    layer.forward(x, rc, {}, y_after, trace);
    EXPECT_LE(max_rel_err(y_after, 2.0f * y_before), 1e-5f);
    EXPECT_LE(max_rel_err(y_after, naive_forward(layer.config(), layer.weights(), x, trace)), 1e-5f);
}

// [SECTION] Config validation, params, init
TEST(MoeLayer, InvalidConfigsThrowNamingTheField) {
    struct Bad {
        const char* field;
        void (*breaks)(MoeLayerConfig&);
    };
    const Bad bads[] = {
        {"d_model", [](MoeLayerConfig& c) { c.d_model = 0; }},
        {"d_ff", [](MoeLayerConfig& c) { c.d_ff = -3; }},
        {"n_experts", [](MoeLayerConfig& c) { c.n_experts = 0; }},
        {"n_shared", [](MoeLayerConfig& c) { c.n_shared = -1; }},
        {"d_ff_shared", [](MoeLayerConfig& c) { c.d_ff_shared = -1; }},
        {"activation", [](MoeLayerConfig& c) { c.activation = static_cast<Activation>(7); }},
        {"expert_biases", [](MoeLayerConfig& c) { c.expert_biases = true; }},  // with SwiGLU
        {"n_experts * d_model * d_ff", [](MoeLayerConfig& c) {
             c.d_model = 8192;
             c.d_ff = 16384;
             c.n_experts = 4096;
         }},
    };
    for (const Bad& bad : bads) {
        MoeLayerConfig cfg;
        bad.breaks(cfg);
        try {
            validate(cfg);
            ADD_FAILURE() << "no error for " << bad.field;
        } catch (const Error& e) {
            EXPECT_EQ(e.field(), bad.field) << e.what();
            EXPECT_EQ(e.where(), "MoeLayerConfig");
        }
    }
    MoeLayerConfig ok;
    EXPECT_NO_THROW(validate(ok));
    EXPECT_THROW(init_moe_layer(MoeLayerConfig{.d_model = 0}, 1), Error);
}

TEST(MoeLayer, BadWeightsAndInputsThrow) {
    MoeLayerConfig cfg;
    cfg.d_model = 16;
    cfg.d_ff = 24;
    cfg.n_experts = 4;
    MoeLayerWeights w = init_moe_layer(cfg, 1);
    w.experts[2].w3.resize(24, 15);
    try {
        MoeLayer layer(cfg, w);
        ADD_FAILURE() << "wrong w3 shape accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.field(), "experts[2].w3");
    }
    const MoeLayer layer(cfg, init_moe_layer(cfg, 1));
    RouterConfig rc;
    rc.n_experts = 4;
    Mat y;
    RoutingTrace trace;
    EXPECT_THROW(layer.forward(Mat::Zero(3, 15), rc, {}, y, trace), Error);  // wrong width
    rc.n_experts = 5;
    EXPECT_THROW(layer.forward(Mat::Zero(3, 16), rc, {}, y, trace), Error);
    rc.n_experts = 4;
    rc.jitter_eps = -0.5f;
    EXPECT_THROW(layer.forward(Mat::Zero(3, 16), rc, {}, y, trace), Error);
    rc.jitter_eps = 0.0f;
    rc.k = 9;
    EXPECT_THROW(layer.forward(Mat::Zero(3, 16), rc, {}, y, trace), Error);
    rc.k = 2;
    layer.forward(Mat::Zero(0, 16), rc, {}, y, trace);  // an empty batch is fine
    EXPECT_EQ(y.rows(), 0);
}

TEST(MoeLayer, CountParamsMatchesMixtral) {
    // Mixtral 8x7B MoE layer: d 4096, 8 SwiGLU experts of d_ff 14336, top-2.
    MoeLayerConfig cfg;
    cfg.d_model = 4096;
    cfg.d_ff = 14336;
    cfg.n_experts = 8;
    const int64_t expert = int64_t{3} * 4096 * 14336;
    EXPECT_EQ(count_params(cfg, false, 2), 8 * expert + 8 * 4096);
    EXPECT_EQ(count_params(cfg, true, 2), 2 * expert + 8 * 4096);
    cfg.n_shared = 1;
    cfg.d_ff_shared = 1024;
    EXPECT_EQ(count_params(cfg, true, 2), 2 * expert + 8 * 4096 + int64_t{3} * 4096 * 1024);
    cfg.activation = Activation::GELU;
    cfg.expert_biases = true;
    cfg.n_shared = 0;
    EXPECT_EQ(count_params(cfg, true, 1), (int64_t{2} * 4096 * 14336 + 14336 + 4096) + 8 * 4096);
    EXPECT_THROW(count_params(cfg, true, 9), Error);
}

TEST(MoeLayer, InitIsSeededAndScaled) {
    MoeLayerConfig cfg;
    cfg.d_model = 256;
    cfg.d_ff = 512;
    cfg.n_experts = 2;
    const MoeLayerWeights a = init_moe_layer(cfg, 42), b = init_moe_layer(cfg, 42), c = init_moe_layer(cfg, 43);
    EXPECT_TRUE(a.experts[1].w1 == b.experts[1].w1);
    EXPECT_FALSE(a.experts[1].w1 == c.experts[1].w1);
    EXPECT_FALSE(a.experts[0].w1 == a.experts[1].w1);
    const Mat& w1 = a.experts[0].w1;
    const float mean = w1.mean();
    const float std = std::sqrt((w1.array() - mean).square().mean());
    EXPECT_NEAR(mean, 0.0f, 0.01f / 16.0f * 5);
    EXPECT_NEAR(std, 1.0f / 16.0f, 0.02f / 16.0f);  // 1/sqrt(d_model)
    const float std2 = std::sqrt(a.experts[0].w2.array().square().mean());
    EXPECT_NEAR(std2, 1.0f / std::sqrt(512.0f), 0.03f / std::sqrt(512.0f));
}

// [SECTION] Every backend op against the plain-Eigen reference, on the benchmark's table
TEST(Backend, EveryOpMatchesTheReferenceOnTheBenchCases) {
    const std::vector<MoeCase> cases = moe_test_cases();
    ASSERT_FALSE(cases.empty());
    for (const Backend* be : available_backends()) {
        for (int op = 0; op < kNumBackendOps; ++op)
            EXPECT_TRUE(be->supports(static_cast<BackendOp>(op))) << be->name() << " "
                                                                  << backend_op_name(static_cast<BackendOp>(op));
        uint64_t seed = 500;
        for (const MoeCase& c : cases) {
            SCOPED_TRACE(std::string(be->name()) + " " + c.name());
            MoeLayerConfig cfg = c.layer_config();
            cfg.router_bias = true;
            const MoeLayerWeights w = randomised_biases(cfg, init_moe_layer(cfg, seed), seed + 1);
            const Mat x = random_mat(c.n_tokens, c.d_model, seed + 2);
            seed += 3;

            Mat logits;
            be->router_logits(x, w.w_router, w.b_router, logits);
            Mat want_logits = x * w.w_router.transpose();
            want_logits.rowwise() += w.b_router.transpose();
            EXPECT_LE(max_rel_err(logits, want_logits), 1e-5f);

            // Token t goes to experts (t + j * 3) % N, j < K: a fixed, uneven spread.
            std::vector<int> row_token, expert_begin(c.n_experts + 1, 0);
            std::vector<float> row_gate;
            for (int e = 0; e < c.n_experts; ++e) {
                for (int t = 0; t < c.n_tokens; ++t)
                    for (int j = 0; j < c.k; ++j)
                        if ((t + j * 3) % c.n_experts == e) {
                            row_token.push_back(t);
                            row_gate.push_back(0.25f + 0.5f * static_cast<float>(j) / c.k);
                        }
                expert_begin[e + 1] = static_cast<int>(row_token.size());
            }
            Mat xs;
            be->gather_rows(x, row_token, xs);
            ASSERT_EQ(xs.rows(), static_cast<int>(row_token.size()));
            for (int r = 0; r < xs.rows(); ++r) EXPECT_TRUE(xs.row(r) == x.row(row_token[r]));

            const std::unique_ptr<PackedExperts> packed = be->pack_experts(w.experts, c.activation);
            Mat out, ref;
            be->expert_ffn_grouped(*packed, xs, expert_begin, out);
            ASSERT_EQ(out.rows(), xs.rows());
            for (int e = 0; e < c.n_experts; ++e) {
                const int r0 = expert_begin[e], m = expert_begin[e + 1] - r0;
                if (m == 0) continue;
                expert_forward_reference(w.experts[e], c.activation, xs.middleRows(r0, m), ref);
                EXPECT_LE(max_rel_err(out.middleRows(r0, m), ref), 1e-5f) << "expert " << e;
            }

            Mat y = Mat::Ones(c.n_tokens, c.d_model), want_y = y;
            be->combine(out, row_token, row_gate, y);
            for (int r = 0; r < out.rows(); ++r) want_y.row(row_token[r]) += row_gate[r] * out.row(r);
            EXPECT_LE(max_rel_err(y, want_y), 1e-6f);
        }
    }
}

}  // namespace
}  // namespace moe
