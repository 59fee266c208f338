// Routing engine tests: hand-worked cases per scheme, invariants on random batches, every
// validate() error path, and analytic gradients against central finite differences.
//
// [SECTION] Helpers
// [SECTION] Names
// [SECTION] Hand-computed cases, one per scheme
// [SECTION] Capacity and dropping
// [SECTION] Statistics and bias update
// [SECTION] Invariants on random batches
// [SECTION] BASE against brute force
// [SECTION] Validation errors
// [SECTION] Gradients
// [SECTION] Extreme finite inputs
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/engine/routing.h"
#include "core/io/limits.h"

namespace moe {
namespace {

// [SECTION] Helpers
Mat make_mat(int rows, int cols, std::initializer_list<float> values) {
    Mat m(rows, cols);  // (rows, cols)
    int i = 0;
    for (float v : values) m(i / cols, i % cols) = v, ++i;
    EXPECT_EQ(i, rows * cols);
    return m;
}

Mat random_logits(int n_tokens, int n_experts, uint32_t seed, float scale = 2.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    Mat m(n_tokens, n_experts);  // (n_tokens, n_experts)
    for (int t = 0; t < n_tokens; ++t)
        for (int i = 0; i < n_experts; ++i) m(t, i) = dist(rng);
    return m;
}

std::vector<int32_t> token_ids_for(int n_tokens) {
    std::vector<int32_t> ids(n_tokens);
    for (int t = 0; t < n_tokens; ++t) ids[t] = (t * 37 + 11) % 256;
    return ids;
}

RouterConfig make_cfg(Scheme s, int n_experts, int k) {
    RouterConfig cfg;
    cfg.scheme = s;
    cfg.n_experts = n_experts;
    cfg.k = k;
    return cfg;
}

const RoutedPair& pair_at(const RoutingTrace& tr, int t, int r) { return tr.token_pairs(t)[r]; }

float sigm(float x) { return 1.0f / (1.0f + std::exp(-x)); }

bool same_selection(const RoutingTrace& a, const RoutingTrace& b) {
    if (a.pairs.size() != b.pairs.size()) return false;
    for (size_t i = 0; i < a.pairs.size(); ++i)
        if (a.pairs[i].token != b.pairs[i].token || a.pairs[i].expert != b.pairs[i].expert ||
            a.pairs[i].dropped != b.pairs[i].dropped)
            return false;
    return true;
}

constexpr Scheme kAllSchemes[] = {Scheme::Soft,       Scheme::TopKMixtral,  Scheme::TopKGShard, Scheme::NoisyTopK,
                                  Scheme::Switch,     Scheme::GShardTop2,   Scheme::ExpertChoice, Scheme::Hash,
                                  Scheme::Base,       Scheme::Sinkhorn,     Scheme::SigmoidBias};

// Routes a random batch with whatever extras the scheme needs.
struct Routed {
    Mat logits;                    // (n_tokens, n_experts)
    Mat noise;                     // (n_tokens, n_experts)
    Vec bias;                      // (n_experts)
    std::vector<int32_t> ids;      // (n_tokens)
    RoutingTrace trace;
};

RouteExtras extras_for(Routed& r) {
    RouteExtras ex;
    ex.noise_logits = &r.noise;
    ex.expert_bias = &r.bias;
    ex.token_ids = r.ids;
    return ex;
}

Routed route_random(const RouterConfig& cfg, int n_tokens, uint32_t seed) {
    Routed r;
    r.logits = random_logits(n_tokens, cfg.n_experts, seed);
    r.noise = random_logits(n_tokens, cfg.n_experts, seed + 1000);
    r.bias = random_logits(1, cfg.n_experts, seed + 2000, 0.3f).row(0).transpose();
    r.ids = token_ids_for(n_tokens);
    r.trace = route(cfg, r.logits, extras_for(r));
    return r;
}

// [SECTION] Names
TEST(RoutingNames, SchemeNamesRoundTripAndAreDistinct) {
    std::set<std::string> names, labels;
    for (Scheme s : kAllSchemes) {
        const std::optional<Scheme> back = scheme_from_name(scheme_name(s));
        ASSERT_TRUE(back.has_value()) << scheme_name(s);
        EXPECT_EQ(*back, s);
        names.insert(scheme_name(s));
        labels.insert(scheme_label(s));
        EXPECT_GT(std::string(scheme_tooltip(s)).size(), 20u) << scheme_name(s);
    }
    EXPECT_EQ(names.size(), static_cast<size_t>(kNumSchemes));
    EXPECT_EQ(labels.size(), static_cast<size_t>(kNumSchemes));
    EXPECT_STREQ(scheme_name(Scheme::TopKMixtral), "topk_mixtral");
    EXPECT_FALSE(scheme_from_name("top_k").has_value());
    EXPECT_FALSE(scheme_from_name("").has_value());
}

TEST(RoutingNames, DropPolicyRoundTrip) {
    for (DropPolicy p : {DropPolicy::Dropless, DropPolicy::Position, DropPolicy::Score}) {
        const std::optional<DropPolicy> back = drop_policy_from_name(drop_policy_name(p));
        ASSERT_TRUE(back.has_value());
        EXPECT_EQ(*back, p);
    }
    EXPECT_STREQ(drop_policy_name(DropPolicy::Score), "score");
    EXPECT_FALSE(drop_policy_from_name("fifo").has_value());
}

TEST(RoutingNames, EffectiveK) {
    RouterConfig cfg = make_cfg(Scheme::Switch, 8, 3);
    EXPECT_EQ(effective_k(cfg), 1);
    cfg.scheme = Scheme::Base;
    EXPECT_EQ(effective_k(cfg), 1);
    cfg.scheme = Scheme::GShardTop2;
    EXPECT_EQ(effective_k(cfg), 2);
    cfg.scheme = Scheme::Soft;
    EXPECT_EQ(effective_k(cfg), 8);
    cfg.scheme = Scheme::ExpertChoice;
    EXPECT_EQ(effective_k(cfg), 0);
    cfg.scheme = Scheme::SigmoidBias;
    EXPECT_EQ(effective_k(cfg), 3);
}

// [SECTION] Hand-computed cases, one per scheme
// h = (ln 1, ln 2, ln 5) gives p = softmax(h) = (1/8, 2/8, 5/8) exactly.
Mat eighths() { return make_mat(1, 3, {0.0f, std::log(2.0f), std::log(5.0f)}); }

TEST(RoutingHand, SoftUsesEveryExpertWithSoftmaxGates) {
    const RoutingTrace tr = route(make_cfg(Scheme::Soft, 3, 1), eighths());
    ASSERT_EQ(tr.token_pairs(0).size(), 3u);
    // Ranked by p: expert 2 (5/8), expert 1 (2/8), expert 0 (1/8).
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 2);
    EXPECT_EQ(pair_at(tr, 0, 1).expert, 1);
    EXPECT_EQ(pair_at(tr, 0, 2).expert, 0);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, 0.625f, 1e-6);
    EXPECT_NEAR(pair_at(tr, 0, 1).gate, 0.25f, 1e-6);
    EXPECT_NEAR(pair_at(tr, 0, 2).gate, 0.125f, 1e-6);
    EXPECT_EQ(tr.k, 3);
    EXPECT_EQ(tr.capacity, -1);
}

TEST(RoutingHand, MixtralSoftmaxOverChosenLogitsOnly) {
    // h = (0, ln 3, -1, 0): top-2 = expert 1 (ln 3), then the tie 0/0 goes to the lower index, 0.
    // Gates = softmax(ln 3, 0) = (3/4, 1/4), whatever the unchosen logits are.
    const Mat h = make_mat(1, 4, {0.0f, std::log(3.0f), -1.0f, 0.0f});
    const RoutingTrace tr = route(make_cfg(Scheme::TopKMixtral, 4, 2), h);
    ASSERT_EQ(tr.token_pairs(0).size(), 2u);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 1);
    EXPECT_EQ(pair_at(tr, 0, 1).expert, 0);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, 0.75f, 1e-6);
    EXPECT_NEAR(pair_at(tr, 0, 1).gate, 0.25f, 1e-6);
    EXPECT_EQ(pair_at(tr, 0, 1).rank, 1);
}

TEST(RoutingHand, GShardTopKRawOrRenormalised) {
    RouterConfig cfg = make_cfg(Scheme::TopKGShard, 3, 2);
    RoutingTrace tr = route(cfg, eighths());
    // Chosen: expert 2 (5/8) and 1 (2/8); renormalised: 5/7 and 2/7.
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 2);
    EXPECT_EQ(pair_at(tr, 0, 1).expert, 1);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, 5.0f / 7.0f, 1e-6);
    EXPECT_NEAR(pair_at(tr, 0, 1).gate, 2.0f / 7.0f, 1e-6);
    cfg.renormalize = false;
    tr = route(cfg, eighths());
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, 0.625f, 1e-6);
    EXPECT_NEAR(pair_at(tr, 0, 1).gate, 0.25f, 1e-6);
}

TEST(RoutingHand, NoisyTopKCleanAndWithNoise) {
    // Without noise: h = (2, 0, 1), K = 2 -> experts 0, 2 with softmax(2, 1) = (e/(e+1), 1/(e+1)).
    RouterConfig cfg = make_cfg(Scheme::NoisyTopK, 3, 2);
    const Mat h = make_mat(1, 3, {2.0f, 0.0f, 1.0f});
    RoutingTrace tr = route(cfg, h);
    const float e = std::exp(1.0f);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 0);
    EXPECT_EQ(pair_at(tr, 0, 1).expert, 2);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, e / (e + 1.0f), 1e-6);
    EXPECT_NEAR(pair_at(tr, 0, 1).gate, 1.0f / (e + 1.0f), 1e-6);
    // Noise logits of -100 make softplus ~ 0: the noise vanishes even with add_noise.
    cfg.add_noise = true;
    const Mat quiet = make_mat(1, 3, {-100.0f, -100.0f, -100.0f});
    RouteExtras ex;
    ex.noise_logits = &quiet;
    tr = route(cfg, h, ex);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 0);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, e / (e + 1.0f), 1e-5);
    // Loud noise on equal logits: over many tokens every expert gets first place sometimes.
    const Mat flat = Mat::Zero(200, 3);
    const Mat loud = Mat::Constant(200, 3, 3.0f);
    ex.noise_logits = &loud;
    tr = route(cfg, flat, ex);
    std::set<int> firsts;
    for (int t = 0; t < 200; ++t) firsts.insert(pair_at(tr, t, 0).expert);
    EXPECT_EQ(firsts.size(), 3u);
    // noise_scale = 0 turns it off again: the tie goes to expert 0 for every token.
    cfg.noise_scale = 0.0f;
    tr = route(cfg, flat, ex);
    for (int t = 0; t < 200; ++t) EXPECT_EQ(pair_at(tr, t, 0).expert, 0);
}

TEST(RoutingHand, SwitchTop1RawProbabilityAndScaling) {
    RouterConfig cfg = make_cfg(Scheme::Switch, 3, 4);  // k ignored: Switch forces 1
    RoutingTrace tr = route(cfg, eighths());
    ASSERT_EQ(tr.token_pairs(0).size(), 1u);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 2);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, 0.625f, 1e-6);
    cfg.routed_scaling = 2.0f;
    tr = route(cfg, eighths());
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, 1.25f, 1e-6);
}

TEST(RoutingHand, GShardTop2SecondExpertProbability) {
    RouterConfig cfg = make_cfg(Scheme::GShardTop2, 3, 1);
    // p = (1/2, 1/2, ~0): first expert 0 (tie to lower index), second sent with min(1, 2*1/2) = 1.
    RoutingTrace tr = route(cfg, make_mat(1, 3, {0.0f, 0.0f, -40.0f}));
    ASSERT_EQ(tr.token_pairs(0).size(), 2u);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 0);
    EXPECT_EQ(pair_at(tr, 0, 1).expert, 1);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, 0.5f, 1e-6);
    EXPECT_NEAR(pair_at(tr, 0, 1).gate, 0.5f, 1e-6);
    // p = (1/8, 2/8, 5/8) on 4000 tokens: second (expert 1) sent with probability 1/2; the first
    // gate is always renormalised over both, 5/7, sent or not.
    const Mat many = eighths().replicate(4000, 1);
    tr = route(cfg, many);
    int sent = 0;
    for (int t = 0; t < 4000; ++t) {
        EXPECT_EQ(pair_at(tr, t, 0).expert, 2);
        EXPECT_NEAR(pair_at(tr, t, 0).gate, 5.0f / 7.0f, 1e-6);
        if (tr.token_pairs(t).size() == 2) {
            ++sent;
            EXPECT_EQ(pair_at(tr, t, 1).expert, 1);
            EXPECT_NEAR(pair_at(tr, t, 1).gate, 2.0f / 7.0f, 1e-6);
        }
    }
    EXPECT_NEAR(sent / 4000.0, 0.5, 0.04);  // binomial sd ~0.008
    EXPECT_EQ(tr.stats.n_pairs, 4000 + sent);
}

TEST(RoutingHand, ExpertChoiceExpertsPickTokens) {
    // T = 4, N = 2. p(t, 0) = sigmoid(h0 - h1): t0 .881, t1 .119, t2 .731, t3 .5.
    const Mat h = make_mat(4, 2, {2, 0, 0, 2, 1, 0, 0, 0});
    RouterConfig cfg = make_cfg(Scheme::ExpertChoice, 2, 1);
    cfg.capacity_factor = 1.0f;  // c = ceil(4 * 1 / 2) = 2
    RoutingTrace tr = route(cfg, h);
    EXPECT_EQ(tr.capacity, 2);
    EXPECT_EQ(tr.k, 0);
    // Expert 0 takes t0, t2; expert 1 takes t1 (.881) and t3 (.5).
    ASSERT_EQ(tr.token_pairs(0).size(), 1u);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 0);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, sigm(2.0f), 1e-6);
    EXPECT_EQ(pair_at(tr, 1, 0).expert, 1);
    EXPECT_EQ(pair_at(tr, 2, 0).expert, 0);
    EXPECT_EQ(pair_at(tr, 3, 0).expert, 1);
    EXPECT_NEAR(pair_at(tr, 3, 0).gate, 0.5f, 1e-6);
    // c = ceil(4 * 0.5 / 2) = 1: t0 and t1 only; t2 and t3 get no expert at all.
    cfg.capacity_factor = 0.5f;
    tr = route(cfg, h);
    EXPECT_EQ(tr.token_pairs(2).size(), 0u);
    EXPECT_EQ(tr.token_pairs(3).size(), 0u);
    EXPECT_EQ(tr.stats.n_tokens_unrouted, 2);
    // c = ceil(4 * 1.5 / 2) = 3: t3 (.5 / .5) is taken by both experts, two experts for one token.
    cfg.capacity_factor = 1.5f;
    tr = route(cfg, h);
    EXPECT_EQ(tr.token_pairs(3).size(), 2u);
    EXPECT_EQ(tr.expert_load[0], 3);
    EXPECT_EQ(tr.expert_load[1], 3);
}

TEST(RoutingHand, HashIsAFixedFunctionOfTokenId) {
    RouterConfig cfg = make_cfg(Scheme::Hash, 8, 2);
    const std::vector<int32_t> ids = {7, 42, 7, 42, 3};
    const Mat h = random_logits(5, 8, 1);
    RouteExtras ex;
    ex.token_ids = ids;
    const RoutingTrace tr = route(cfg, h, ex);
    for (int t = 0; t < 5; ++t) {
        ASSERT_EQ(tr.token_pairs(t).size(), 2u);
        EXPECT_NE(pair_at(tr, t, 0).expert, pair_at(tr, t, 1).expert);
        EXPECT_FLOAT_EQ(pair_at(tr, t, 0).gate, 0.5f);
        EXPECT_FLOAT_EQ(pair_at(tr, t, 1).gate, 0.5f);
    }
    // Same id, same experts, whatever the logits say.
    EXPECT_EQ(pair_at(tr, 0, 0).expert, pair_at(tr, 2, 0).expert);
    EXPECT_EQ(pair_at(tr, 0, 1).expert, pair_at(tr, 2, 1).expert);
    EXPECT_EQ(pair_at(tr, 1, 0).expert, pair_at(tr, 3, 0).expert);
    const RoutingTrace tr2 = route(cfg, random_logits(5, 8, 99), ex);
    for (size_t i = 0; i < tr.pairs.size(); ++i) EXPECT_EQ(tr.pairs[i].expert, tr2.pairs[i].expert);
    // K = N: every expert exactly once.
    cfg.k = 8;
    const RoutingTrace all = route(cfg, h, ex);
    for (int t = 0; t < 5; ++t) {
        std::set<int> seen;
        for (const RoutedPair& p : all.token_pairs(t)) seen.insert(p.expert);
        EXPECT_EQ(seen.size(), 8u);
    }
}

TEST(RoutingHand, BaseBalancedAssignment) {
    // T = 4, N = 2, each expert takes 2. Gains of expert 0 over 1: t0 1, t1 4, t2 3, t3 0, so the
    // optimum gives expert 0 {t1, t2} (sum 4 + 3) and expert 1 {t0, t3} (4 + 0): total 11.
    // Greedy argmax would put t0, t1, t2 all on expert 0.
    const Mat h = make_mat(4, 2, {5, 4, 4, 0, 3, 0, 0, 0});
    const RoutingTrace tr = route(make_cfg(Scheme::Base, 2, 2), h);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 1);
    EXPECT_EQ(pair_at(tr, 1, 0).expert, 0);
    EXPECT_EQ(pair_at(tr, 2, 0).expert, 0);
    EXPECT_EQ(pair_at(tr, 3, 0).expert, 1);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, sigm(4.0f), 1e-6);
    EXPECT_NEAR(pair_at(tr, 1, 0).gate, sigm(4.0f), 1e-6);
    EXPECT_NEAR(pair_at(tr, 2, 0).gate, sigm(3.0f), 1e-6);
    EXPECT_NEAR(pair_at(tr, 3, 0).gate, 0.5f, 1e-6);
    EXPECT_EQ(tr.expert_load[0], 2);
    EXPECT_EQ(tr.expert_load[1], 2);
}

TEST(RoutingHand, SinkhornBalancesWhereTop1DoesNot) {
    // h = ((2, 0), (1, 0)): plain top-1 sends both tokens to expert 0. One Sinkhorn pass:
    // rows -> (a, 1-a), (b, 1-b) with a = sigmoid(2) = .881, b = sigmoid(1) = .731; columns to
    // sum T/N = 1 -> col 0 (.547, .453), col 1 (.307, .693): token 1 now prefers expert 1.
    RouterConfig cfg = make_cfg(Scheme::Sinkhorn, 2, 1);
    cfg.sinkhorn_iters = 1;
    const Mat h = make_mat(2, 2, {2, 0, 1, 0});
    const RoutingTrace tr = route(cfg, h);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 0);
    EXPECT_EQ(pair_at(tr, 1, 0).expert, 1);
    const float a = sigm(2.0f), b = sigm(1.0f);
    EXPECT_NEAR(pair_at(tr, 0, 0).score, a / (a + b), 1e-5);
    EXPECT_NEAR(pair_at(tr, 1, 0).score, (1 - b) / (2 - a - b), 1e-5);
    // Gates are the original softmax probabilities, not the balanced values.
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, a, 1e-6);
    EXPECT_NEAR(pair_at(tr, 1, 0).gate, 1 - b, 1e-6);
}

TEST(RoutingHand, SigmoidBiasSelectsButNeverWeights) {
    // s = sigmoid(0, 1, 2, -1) = (.5, .731, .881, .269); bias (0, 0, -1, 5): s + b = (.5, .731,
    // -.119, 5.269) -> experts 3, 1. Gates s / sum: sigmoid(-1) + sigmoid(1) = 1, so the gates are
    // (.269, .731) times routed_scaling 2.5.
    RouterConfig cfg = make_cfg(Scheme::SigmoidBias, 4, 2);
    cfg.routed_scaling = 2.5f;
    const Mat h = make_mat(1, 4, {0, 1, 2, -1});
    Vec bias(4);
    bias << 0, 0, -1, 5;
    RouteExtras ex;
    ex.expert_bias = &bias;
    const RoutingTrace tr = route(cfg, h, ex);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 3);
    EXPECT_EQ(pair_at(tr, 0, 1).expert, 1);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, 2.5f * sigm(-1.0f), 1e-5);
    EXPECT_NEAR(pair_at(tr, 0, 1).gate, 2.5f * sigm(1.0f), 1e-5);
    EXPECT_NEAR(pair_at(tr, 0, 0).score, sigm(-1.0f) + 5.0f, 1e-5);
    EXPECT_NEAR(tr.probs(0, 2), sigm(2.0f), 1e-6);  // probs are sigmoid for this scheme
    // Without the bias, the top-2 by s alone: experts 2 and 1.
    const RoutingTrace plain = route(cfg, h);
    EXPECT_EQ(pair_at(plain, 0, 0).expert, 2);
    EXPECT_EQ(pair_at(plain, 0, 1).expert, 1);
}

TEST(RoutingHand, GroupLimitedPicksGroupFirst) {
    // N = 4 in 2 groups {0,1} {2,3}; top-2 sums: group 0 = 5 + -10 = -5, group 1 = 4 + 3 = 7.
    // With topk_groups = 1, K = 2 stays inside group 1 though expert 0 has the best logit.
    RouterConfig cfg = make_cfg(Scheme::TopKMixtral, 4, 2);
    cfg.n_groups = 2;
    cfg.topk_groups = 1;
    const Mat h = make_mat(1, 4, {5, -10, 4, 3});
    RoutingTrace tr = route(cfg, h);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 2);
    EXPECT_EQ(pair_at(tr, 0, 1).expert, 3);
    const float e = std::exp(1.0f);
    EXPECT_NEAR(pair_at(tr, 0, 0).gate, e / (e + 1), 1e-6);
    cfg.topk_groups = 2;  // all groups: plain top-2
    tr = route(cfg, h);
    EXPECT_EQ(pair_at(tr, 0, 0).expert, 0);
    EXPECT_EQ(pair_at(tr, 0, 1).expert, 2);
}

// [SECTION] Capacity and dropping
TEST(RoutingCapacity, SwitchPositionVersusScorePriority) {
    // All four tokens prefer expert 0 with p0 = .6, .9, .7, .8; C = ceil(1.0 * 4 * 1 / 2) = 2.
    auto logit = [](float p) { return std::log(p / (1 - p)); };  // h = (logit(p), 0) -> p0 = p
    const Mat h = make_mat(4, 2, {logit(.6f), 0, logit(.9f), 0, logit(.7f), 0, logit(.8f), 0});
    RouterConfig cfg = make_cfg(Scheme::Switch, 2, 1);
    cfg.capacity_factor = 1.0f;
    cfg.drop_policy = DropPolicy::Position;
    RoutingTrace tr = route(cfg, h);
    EXPECT_EQ(tr.capacity, 2);
    EXPECT_FALSE(pair_at(tr, 0, 0).dropped);
    EXPECT_FALSE(pair_at(tr, 1, 0).dropped);
    EXPECT_TRUE(pair_at(tr, 2, 0).dropped);
    EXPECT_TRUE(pair_at(tr, 3, 0).dropped);
    EXPECT_EQ(tr.expert_load[0], 2);
    EXPECT_EQ(tr.expert_wanted[0], 4);
    EXPECT_EQ(tr.expert_dropped[0], 2);
    EXPECT_EQ(tr.stats.n_dropped, 2);
    EXPECT_FLOAT_EQ(tr.stats.frac_dropped, 0.5f);
    EXPECT_EQ(tr.stats.n_tokens_unrouted, 2);
    // Batch priority: the two most confident tokens (t1 .9, t3 .8) win.
    cfg.drop_policy = DropPolicy::Score;
    tr = route(cfg, h);
    EXPECT_TRUE(pair_at(tr, 0, 0).dropped);
    EXPECT_FALSE(pair_at(tr, 1, 0).dropped);
    EXPECT_TRUE(pair_at(tr, 2, 0).dropped);
    EXPECT_FALSE(pair_at(tr, 3, 0).dropped);
    // Dropless: nothing dropped, capacity -1.
    cfg.drop_policy = DropPolicy::Dropless;
    tr = route(cfg, h);
    EXPECT_EQ(tr.capacity, -1);
    EXPECT_EQ(tr.stats.n_dropped, 0);
    EXPECT_EQ(tr.expert_load[0], 4);
}

TEST(RoutingCapacity, PositionTakesAllFirstChoicesBeforeSecond) {
    // T = 2, N = 3, K = 2, cf = 0.75: C = ceil(0.75 * 2 * 2 / 3) = 1. t0 wants (0, 1), t1 (1, 0).
    // Rank 0 first: t0->0 and t1->1 fit; then t0->1 and t1->0 are refused. Token order alone
    // (t0's both choices first) would have kept t0->1 and refused t1->1.
    const Mat h = make_mat(2, 3, {3, 2, 0, 2, 3, 0});
    RouterConfig cfg = make_cfg(Scheme::TopKMixtral, 3, 2);
    cfg.capacity_factor = 0.75f;
    cfg.drop_policy = DropPolicy::Position;
    const RoutingTrace tr = route(cfg, h);
    EXPECT_EQ(tr.capacity, 1);
    EXPECT_FALSE(pair_at(tr, 0, 0).dropped);
    EXPECT_TRUE(pair_at(tr, 0, 1).dropped);
    EXPECT_FALSE(pair_at(tr, 1, 0).dropped);
    EXPECT_TRUE(pair_at(tr, 1, 1).dropped);
    EXPECT_EQ(tr.stats.n_tokens_unrouted, 0);
    // A dropped pair keeps its gate for display.
    EXPECT_GT(pair_at(tr, 0, 1).gate, 0.0f);
}

TEST(RoutingCapacity, CapacityRoundingIsNotFooledByFloat) {
    // 1.1f is slightly above 1.1: cf * T * K / N = 1.1 * 10 / 11 must give C = 1, not 2.
    RouterConfig cfg = make_cfg(Scheme::Switch, 11, 1);
    cfg.capacity_factor = 1.1f;
    cfg.drop_policy = DropPolicy::Position;
    const RoutingTrace tr = route(cfg, random_logits(10, 11, 3));
    EXPECT_EQ(tr.capacity, 1);
}

// [SECTION] Statistics and bias update
TEST(RoutingStats, HandWorkedBatch) {
    // Switch, N = 2: t0, t1 have p = (.8, .2); t2, t3 have p = (.2, .8).
    const float l = std::log(4.0f);
    const Mat h = make_mat(4, 2, {l, 0, l, 0, 0, l, 0, l});
    RouteExtras ex;
    ex.seq_len = 2;
    const RoutingTrace tr = route(make_cfg(Scheme::Switch, 2, 1), h, ex);
    // Whole batch: f = (.5, .5), P = (.5, .5): aux = 2 * (.25 + .25) = 1 (balanced overall).
    EXPECT_NEAR(tr.stats.aux_loss, 1.0f, 1e-6);
    // Each sequence sends both tokens to one expert: f = (1, 0), P = (.8, .2) -> 2 * .8 = 1.6.
    EXPECT_NEAR(tr.stats.seq_aux_loss, 1.6f, 1e-5);
    EXPECT_FLOAT_EQ(tr.stats.load_cv, 0.0f);
    EXPECT_FLOAT_EQ(tr.stats.max_over_mean, 1.0f);
    // Entropy of (.8, .2); z-loss: lse = ln(4 + 1) for every token.
    EXPECT_NEAR(tr.stats.router_entropy, -(0.8 * std::log(0.8) + 0.2 * std::log(0.2)), 1e-5);
    EXPECT_NEAR(tr.stats.z_loss, std::pow(std::log(5.0), 2), 1e-5);
    EXPECT_EQ(tr.stats.n_pairs, 4);

    // All to expert 0: loads (4, 0), mean 2, std 2 -> CV 1, max/mean 2; aux = 2 * 1 * .5 = 1.
    const Mat skew = make_mat(4, 2, {l, 0, l, 0, 0, 0, 0, 0});
    const RoutingTrace s = route(make_cfg(Scheme::Switch, 2, 1), skew);
    EXPECT_FLOAT_EQ(s.stats.load_cv, 1.0f);
    EXPECT_FLOAT_EQ(s.stats.max_over_mean, 2.0f);
    EXPECT_NEAR(s.stats.aux_loss, 2.0f * (0.8f + 0.8f + 0.5f + 0.5f) / 4.0f, 1e-6);
    EXPECT_NEAR(s.stats.seq_aux_loss, s.stats.aux_loss, 1e-6);  // seq_len 0 = one sequence
}

TEST(RoutingStats, UniformRoutingHasAuxLossOne) {
    const Mat zeros = Mat::Zero(16, 8);
    const RoutingTrace soft = route(make_cfg(Scheme::Soft, 8, 1), zeros);
    EXPECT_NEAR(soft.stats.aux_loss, 1.0f, 1e-6);
    EXPECT_NEAR(soft.stats.router_entropy, std::log(8.0f), 1e-5);
    RouterConfig ec = make_cfg(Scheme::ExpertChoice, 8, 1);
    ec.capacity_factor = 2.0f;
    EXPECT_NEAR(route(ec, random_logits(16, 8, 5)).stats.aux_loss, 1.0f, 1e-5);  // f = 1/N always
}

// Issue 15, hole 3: Sinkhorn at T = 0 did pointer arithmetic on the null 0 x N matrix (UBSan).
TEST(RoutingStats, EmptyBatchGivesEmptyValidTrace) {
    for (Scheme s : kAllSchemes)
    for (DropPolicy pol : {DropPolicy::Dropless, DropPolicy::Position, DropPolicy::Score}) {
        RouterConfig cfg = make_cfg(s, 4, 2);
        cfg.drop_policy = pol;
        const RoutingTrace tr = route(cfg, Mat(0, 4));
        EXPECT_EQ(tr.n_tokens, 0) << scheme_name(s);
        EXPECT_TRUE(tr.pairs.empty());
        ASSERT_EQ(tr.token_begin.size(), 1u);
        EXPECT_EQ(tr.expert_load.size(), 4u);
        EXPECT_EQ(tr.stats.n_pairs, 0);
        EXPECT_FLOAT_EQ(tr.stats.aux_loss, 0.0f);
    }
}

TEST(RoutingBias, UpdateFollowsSignOfLoadGap) {
    RoutingTrace tr;
    tr.n_experts = 3;
    tr.expert_load = {5, 1, 3};  // mean 3
    Vec bias = Vec::Zero(3);
    update_expert_bias(bias, tr, 0.1f);
    EXPECT_FLOAT_EQ(bias[0], -0.1f);
    EXPECT_FLOAT_EQ(bias[1], 0.1f);
    EXPECT_FLOAT_EQ(bias[2], 0.0f);
    Vec wrong = Vec::Zero(2);
    EXPECT_THROW(update_expert_bias(wrong, tr, 0.1f), Error);
    try {
        update_expert_bias(bias, tr, -1.0f);
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.field(), "bias_update_rate");
    }
}

TEST(RoutingBias, BiasUpdatesUndoCollapse) {
    // Expert 0 is favoured by every token; repeated aux-loss-free updates spread the load.
    RouterConfig cfg = make_cfg(Scheme::SigmoidBias, 4, 1);
    Mat h = random_logits(64, 4, 11, 0.5f);
    h.col(0).array() += 2.0f;
    Vec bias = Vec::Zero(4);
    RouteExtras ex;
    ex.expert_bias = &bias;
    const float cv_before = route(cfg, h, ex).stats.load_cv;
    for (int step = 0; step < 300; ++step) update_expert_bias(bias, route(cfg, h, ex), 0.01f);
    const RoutingTrace after = route(cfg, h, ex);
    EXPECT_GT(cv_before, 1.0f);
    EXPECT_LT(after.stats.load_cv, 0.35f);
    // Gates stay s / sum s of the chosen, untouched by the bias (K = 1: exactly 1).
    for (const RoutedPair& p : after.pairs) EXPECT_NEAR(p.gate, 1.0f, 1e-6);
}

// [SECTION] Invariants on random batches
struct InvariantCase {
    Scheme scheme;
    int n_experts, k, n_tokens;
    DropPolicy policy;
    float capacity_factor;
    int n_groups, topk_groups;
};

void check_invariants(const InvariantCase& c, uint32_t seed) {
    RouterConfig cfg = make_cfg(c.scheme, c.n_experts, c.k);
    cfg.drop_policy = c.policy;
    cfg.capacity_factor = c.capacity_factor;
    cfg.n_groups = c.n_groups;
    cfg.topk_groups = c.topk_groups;
    cfg.routed_scaling = (seed % 2) ? 1.0f : 2.5f;
    cfg.add_noise = true;
    cfg.seed = seed;
    const Routed r = route_random(cfg, c.n_tokens, seed);
    const RoutingTrace& tr = r.trace;
    const int n = c.n_experts;
    const int k = effective_k(cfg);
    const float rs = cfg.routed_scaling;
    SCOPED_TRACE(std::string(scheme_name(c.scheme)) + " seed " + std::to_string(seed));

    ASSERT_EQ(tr.token_begin.size(), static_cast<size_t>(c.n_tokens + 1));
    ASSERT_EQ(tr.token_begin.back(), static_cast<int>(tr.pairs.size()));
    int kept = 0;
    for (int t = 0; t < c.n_tokens; ++t) {
        const std::span<const RoutedPair> ps = tr.token_pairs(t);
        std::set<int> experts;
        float gate_sum = 0.0f;
        for (int r2 = 0; r2 < static_cast<int>(ps.size()); ++r2) {
            EXPECT_EQ(ps[r2].token, t);
            EXPECT_EQ(ps[r2].rank, r2);
            EXPECT_GE(ps[r2].expert, 0);
            EXPECT_LT(ps[r2].expert, n);
            EXPECT_GT(ps[r2].gate, 0.0f);
            experts.insert(ps[r2].expert);
            gate_sum += ps[r2].gate;
            if (!ps[r2].dropped) ++kept;
        }
        EXPECT_EQ(experts.size(), ps.size()) << "an expert chosen twice by one token";
        switch (c.scheme) {
            case Scheme::Soft:
                EXPECT_EQ(ps.size(), static_cast<size_t>(n));
                EXPECT_NEAR(gate_sum, rs, 1e-5 * rs);
                break;
            case Scheme::TopKMixtral:
            case Scheme::NoisyTopK:
            case Scheme::TopKGShard:
            case Scheme::SigmoidBias:
            case Scheme::Hash:
                EXPECT_EQ(ps.size(), static_cast<size_t>(k));
                EXPECT_NEAR(gate_sum, rs, 1e-5 * rs);
                break;
            case Scheme::GShardTop2:
                EXPECT_GE(ps.size(), 1u);
                EXPECT_LE(ps.size(), 2u);
                if (ps.size() == 2) {
                    EXPECT_NEAR(gate_sum, rs, 1e-5 * rs);
                    const float p0 = tr.probs(t, ps[0].expert), p1 = tr.probs(t, ps[1].expert);
                    EXPECT_NEAR(ps[0].gate, rs * p0 / (p0 + p1), 1e-5 * rs);
                } else {
                    EXPECT_LT(ps[0].gate, rs);  // renormalised over both, even when the second stays home
                }
                break;
            case Scheme::Switch:
            case Scheme::Sinkhorn:
                EXPECT_EQ(ps.size(), static_cast<size_t>(k));
                for (const RoutedPair& p : ps) EXPECT_NEAR(p.gate, rs * tr.probs(t, p.expert), 1e-6 * rs);
                break;
            case Scheme::Base:
                ASSERT_EQ(ps.size(), 1u);
                EXPECT_NEAR(ps[0].gate, rs * sigm(r.logits(t, ps[0].expert)), 1e-6 * rs);
                break;
            case Scheme::ExpertChoice:
                for (const RoutedPair& p : ps) EXPECT_NEAR(p.gate, rs * tr.probs(t, p.expert), 1e-6 * rs);
                break;
        }
        // Group-limited: every chosen expert lies in one of the topk_groups best groups.
        if (c.n_groups > 1) {
            const int gs = n / c.n_groups;
            std::vector<std::pair<float, int>> gscore;
            for (int g = 0; g < c.n_groups; ++g) {
                std::vector<float> v;
                for (int j = g * gs; j < (g + 1) * gs; ++j)
                    v.push_back(c.scheme == Scheme::SigmoidBias ? sigm(r.logits(t, j)) + r.bias[j]
                                : c.scheme == Scheme::TopKMixtral   ? r.logits(t, j)
                                                                    : tr.probs(t, j));
                std::sort(v.rbegin(), v.rend());
                gscore.push_back({v[0] + (gs > 1 ? v[1] : 0.0f), g});
            }
            std::sort(gscore.begin(), gscore.end(), [](auto a, auto b) { return a.first > b.first; });
            std::set<int> allowed;
            for (int g = 0; g < c.topk_groups; ++g) allowed.insert(gscore[g].second);
            // Noisy and Sinkhorn rank by values the test cannot see; for them check only that
            // the chosen experts span at most topk_groups groups.
            const bool exact = c.scheme == Scheme::SigmoidBias || c.scheme == Scheme::TopKMixtral ||
                               c.scheme == Scheme::TopKGShard || c.scheme == Scheme::Switch;
            std::set<int> used;
            for (const RoutedPair& p : ps) {
                used.insert(p.expert / gs);
                if (exact) {
                    EXPECT_TRUE(allowed.count(p.expert / gs)) << "expert " << p.expert;
                }
            }
            EXPECT_LE(static_cast<int>(used.size()), c.topk_groups);
        }
    }
    // Loads: kept pairs = sum of loads = pairs - drops; capacity never exceeded.
    int load_sum = 0;
    for (int e = 0; e < n; ++e) {
        load_sum += tr.expert_load[e];
        EXPECT_EQ(tr.expert_wanted[e] - tr.expert_dropped[e], tr.expert_load[e]);
        if (tr.capacity >= 0) {
            EXPECT_LE(tr.expert_load[e], tr.capacity);
        }
    }
    EXPECT_EQ(load_sum, kept);
    EXPECT_EQ(load_sum, tr.stats.n_pairs - tr.stats.n_dropped);
    if (k > 0 && c.scheme != Scheme::GShardTop2) {
        EXPECT_EQ(tr.stats.n_pairs, c.n_tokens * k);
    }
    if (c.policy == DropPolicy::Dropless || c.scheme == Scheme::Soft) {
        EXPECT_EQ(tr.stats.n_dropped, 0);
    }
    if (c.scheme == Scheme::ExpertChoice) {
        const int cap = std::min(c.n_tokens, static_cast<int>(std::ceil(c.n_tokens * c.capacity_factor / n - 1e-6)));
        for (int e = 0; e < n; ++e) EXPECT_EQ(tr.expert_load[e], cap);
    }
    if (c.scheme == Scheme::Base) {
        for (int e = 0; e < n; ++e) {
            EXPECT_LE(tr.expert_load[e], (c.n_tokens + n - 1) / n);
            if (c.n_tokens % n == 0) EXPECT_EQ(tr.expert_load[e], c.n_tokens / n);
        }
    }
    // Same seed, same trace.
    const Routed again = route_random(cfg, c.n_tokens, seed);
    EXPECT_TRUE(same_selection(tr, again.trace));
    for (size_t i = 0; i < tr.pairs.size(); ++i) EXPECT_EQ(tr.pairs[i].gate, again.trace.pairs[i].gate);
}

TEST(RoutingInvariants, EverySchemeOnRandomBatches) {
    const InvariantCase cases[] = {
        {Scheme::Soft, 6, 1, 20, DropPolicy::Position, 1.0f, 1, 1},
        {Scheme::TopKMixtral, 8, 2, 37, DropPolicy::Dropless, 1.0f, 1, 1},
        {Scheme::TopKMixtral, 8, 3, 37, DropPolicy::Position, 1.0f, 4, 2},
        {Scheme::TopKGShard, 8, 2, 40, DropPolicy::Score, 1.25f, 2, 1},
        {Scheme::NoisyTopK, 8, 2, 40, DropPolicy::Position, 1.0f, 1, 1},
        {Scheme::NoisyTopK, 8, 2, 40, DropPolicy::Dropless, 1.0f, 4, 2},
        {Scheme::Switch, 6, 1, 33, DropPolicy::Position, 1.0f, 3, 1},
        {Scheme::Switch, 6, 1, 33, DropPolicy::Score, 0.5f, 1, 1},
        {Scheme::GShardTop2, 5, 2, 50, DropPolicy::Position, 1.0f, 1, 1},
        {Scheme::ExpertChoice, 8, 2, 30, DropPolicy::Dropless, 2.0f, 1, 1},
        {Scheme::ExpertChoice, 4, 2, 7, DropPolicy::Dropless, 9.0f, 1, 1},  // c clamps to T
        {Scheme::Hash, 8, 3, 30, DropPolicy::Position, 1.0f, 1, 1},
        {Scheme::Base, 4, 1, 24, DropPolicy::Dropless, 1.0f, 1, 1},
        {Scheme::Base, 8, 1, 64, DropPolicy::Dropless, 1.0f, 1, 1},
        {Scheme::Sinkhorn, 8, 2, 32, DropPolicy::Score, 1.0f, 2, 2},
        {Scheme::SigmoidBias, 16, 4, 40, DropPolicy::Dropless, 1.0f, 8, 4},
        {Scheme::SigmoidBias, 8, 2, 40, DropPolicy::Position, 1.0f, 1, 1},
    };
    for (const InvariantCase& c : cases)
        for (uint32_t seed : {1u, 2u, 3u}) check_invariants(c, seed);
}

TEST(RoutingInvariants, KEqualsNMatchesDenseMixture) {
    const Mat h = random_logits(10, 6, 21);
    const RoutingTrace soft = route(make_cfg(Scheme::Soft, 6, 1), h);
    for (Scheme s : {Scheme::TopKMixtral, Scheme::TopKGShard}) {
        const RoutingTrace all = route(make_cfg(s, 6, 6), h);
        for (int t = 0; t < 10; ++t)
            for (const RoutedPair& p : all.token_pairs(t))
                EXPECT_NEAR(p.gate, soft.probs(t, p.expert), 1e-6) << scheme_name(s);
    }
}

TEST(RoutingInvariants, SeedChangesRandomSchemesOnly) {
    for (Scheme s : {Scheme::NoisyTopK, Scheme::GShardTop2, Scheme::Hash}) {
        RouterConfig cfg = make_cfg(s, 8, 2);
        cfg.add_noise = true;
        cfg.seed = 1;
        const Routed a = route_random(cfg, 64, 5);
        cfg.seed = 2;
        const Routed b = route_random(cfg, 64, 5);
        EXPECT_FALSE(same_selection(a.trace, b.trace)) << scheme_name(s);
    }
    RouterConfig cfg = make_cfg(Scheme::TopKMixtral, 8, 2);
    cfg.seed = 1;
    const Routed a = route_random(cfg, 64, 5);
    cfg.seed = 2;
    EXPECT_TRUE(same_selection(a.trace, route_random(cfg, 64, 5).trace));
}

TEST(RoutingInvariants, SinkhornIterationsBalanceTheLoad) {
    // Logits skewed towards expert 0: more Sinkhorn passes, flatter load.
    Mat h = random_logits(256, 8, 31, 1.0f);
    h.col(0).array() += 3.0f;
    RouterConfig cfg = make_cfg(Scheme::Sinkhorn, 8, 1);
    cfg.sinkhorn_iters = 1;
    const float cv1 = route(cfg, h).stats.load_cv;
    cfg.sinkhorn_iters = 50;
    const float cv50 = route(cfg, h).stats.load_cv;
    const float cv_plain = route(make_cfg(Scheme::Switch, 8, 1), h).stats.load_cv;
    EXPECT_LT(cv1, cv_plain);
    EXPECT_LE(cv50, cv1 + 1e-6f);
    EXPECT_LT(cv50, 0.35f);
}

// [SECTION] BASE against brute force
// Every assignment with at most ceil(T/N) tokens per expert (T/N when N divides T).
double brute_force_best(const Mat& h, int n_experts) {
    const int n_tokens = static_cast<int>(h.rows());
    const int cap = (n_tokens + n_experts - 1) / n_experts;
    std::vector<int> assign(n_tokens, 0), load(n_experts, 0);
    double best = -1e30;
    std::function<void(int, double)> rec = [&](int t, double sum) {
        if (t == n_tokens) {
            best = std::max(best, sum);
            return;
        }
        for (int e = 0; e < n_experts; ++e) {
            if (load[e] == cap) continue;
            ++load[e];
            rec(t + 1, sum + h(t, e));
            --load[e];
        }
    };
    rec(0, 0.0);
    return best;
}

TEST(RoutingBase, OptimumEqualsBruteForce) {
    // The last four have T % N != 0 (issue 13 item 2): BASE routes every token at any T.
    for (auto [n_tokens, n_experts] : {std::pair{4, 2}, std::pair{6, 3}, std::pair{8, 4}, std::pair{6, 2},
                                       std::pair{5, 2}, std::pair{7, 3}, std::pair{4, 3}, std::pair{1, 4}}) {
        for (uint32_t seed = 0; seed < 25; ++seed) {
            // Coarse integer-ish logits create many ties, where a wrong augmenting path shows.
            Mat h = random_logits(n_tokens, n_experts, seed * 7 + n_tokens, 2.0f);
            if (seed % 2) h = h.array().round().matrix();
            const RoutingTrace tr = route(make_cfg(Scheme::Base, n_experts, 1), h);
            double sum = 0.0;
            for (const RoutedPair& p : tr.pairs) sum += h(p.token, p.expert);
            EXPECT_NEAR(sum, brute_force_best(h, n_experts), 1e-4)
                << "T=" << n_tokens << " N=" << n_experts << " seed " << seed;
            ASSERT_EQ(tr.pairs.size(), static_cast<size_t>(n_tokens));
            EXPECT_EQ(tr.capacity, (n_tokens + n_experts - 1) / n_experts);
            for (int e = 0; e < n_experts; ++e) {
                EXPECT_LE(tr.expert_load[e], tr.capacity);
                if (n_tokens % n_experts == 0) EXPECT_EQ(tr.expert_load[e], n_tokens / n_experts);
            }
        }
    }
}

// [SECTION] Validation errors
void expect_field(const RouterConfig& cfg, int n_tokens, const std::string& field) {
    try {
        validate(cfg, n_tokens);
        ADD_FAILURE() << "validate accepted a bad " << field;
    } catch (const Error& e) {
        EXPECT_EQ(e.field(), field) << e.what();
        EXPECT_EQ(e.where(), "RouterConfig");
        EXPECT_FALSE(e.problem().empty());
        EXPECT_FALSE(e.hint().empty());
    }
}

TEST(RoutingValidate, EveryKnobAtItsExtremes) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const RouterConfig ok = make_cfg(Scheme::TopKMixtral, 8, 2);
    EXPECT_NO_THROW(validate(ok, 16));
    RouterConfig c = ok;
    c.k = 0;
    expect_field(c, 16, "k");
    c.k = 9;
    expect_field(c, 16, "k");
    c.k = -3;
    c.scheme = Scheme::Hash;
    expect_field(c, 16, "k");
    c = ok;
    c.n_experts = 0;
    expect_field(c, 16, "n_experts");
    c.n_experts = -1;
    expect_field(c, 16, "n_experts");
    c = make_cfg(Scheme::GShardTop2, 1, 2);
    expect_field(c, 16, "n_experts");
    c = ok;
    c.scheme = static_cast<Scheme>(42);
    expect_field(c, 16, "scheme");
    c = ok;
    c.drop_policy = static_cast<DropPolicy>(-1);
    expect_field(c, 16, "drop_policy");
    for (float bad : {0.0f, -1.0f, nan, inf}) {
        c = ok;
        c.drop_policy = DropPolicy::Position;
        c.capacity_factor = bad;
        expect_field(c, 16, "capacity_factor");
        c = make_cfg(Scheme::ExpertChoice, 8, 2);
        c.capacity_factor = bad;
        expect_field(c, 16, "capacity_factor");
    }
    c = ok;
    c.capacity_factor = 0.0f;  // dropless top-K: capacity_factor does not matter
    EXPECT_NO_THROW(validate(c, 16));
    c = ok;
    c.n_groups = 0;
    expect_field(c, 16, "n_groups");
    c.n_groups = 3;
    expect_field(c, 16, "n_groups");
    c = ok;
    c.n_groups = 4;
    c.topk_groups = 0;
    expect_field(c, 16, "topk_groups");
    c.topk_groups = 5;
    expect_field(c, 16, "topk_groups");
    c.topk_groups = 1;
    c.k = 3;  // one group of 2 experts cannot hold 3
    expect_field(c, 16, "topk_groups");
    c.topk_groups = 2;
    EXPECT_NO_THROW(validate(c, 16));
    c = ok;
    c.sinkhorn_iters = 0;
    expect_field(c, 16, "sinkhorn_iters");
    c.sinkhorn_iters = 1000000;
    expect_field(c, 16, "sinkhorn_iters");
    for (float bad : {-0.5f, nan, inf}) {
        c = ok;
        c.noise_scale = bad;
        expect_field(c, 16, "noise_scale");
        c = ok;
        c.jitter_eps = bad;
        expect_field(c, 16, "jitter_eps");
        c = ok;
        c.routed_scaling = bad;
        expect_field(c, 16, "routed_scaling");
        c = ok;
        c.bias_update_rate = bad;
        expect_field(c, 16, "bias_update_rate");
    }
    c = ok;
    c.jitter_eps = 1.5f;
    expect_field(c, 16, "jitter_eps");
    c = ok;
    c.routed_scaling = 0.0f;
    expect_field(c, 16, "routed_scaling");
    c = make_cfg(Scheme::Base, 8, 1);
    EXPECT_NO_THROW(validate(c, 12));  // any T since issue 13: capacity ceil(T/N)
    EXPECT_NO_THROW(validate(c, 16));
    c = ok;
    expect_field(c, -1, "n_tokens");
}

void expect_route_field(const RouterConfig& cfg, const Mat& h, const RouteExtras& ex, const std::string& field) {
    try {
        route(cfg, h, ex);
        ADD_FAILURE() << "route accepted a bad " << field;
    } catch (const Error& e) {
        EXPECT_EQ(e.field(), field) << e.what();
    }
}

TEST(RoutingValidate, RouteChecksItsInputs) {
    const RouterConfig ok = make_cfg(Scheme::TopKMixtral, 4, 2);
    Mat h = random_logits(3, 4, 1);
    expect_route_field(ok, random_logits(3, 5, 1), {}, "logits");
    h(1, 2) = std::numeric_limits<float>::quiet_NaN();
    expect_route_field(ok, h, {}, "logits");
    h(1, 2) = std::numeric_limits<float>::infinity();
    expect_route_field(ok, h, {}, "logits");
    h = random_logits(3, 4, 1);
    RouteExtras ex;
    ex.seq_len = -2;
    expect_route_field(ok, h, ex, "seq_len");

    const RouterConfig hash = make_cfg(Scheme::Hash, 4, 2);
    expect_route_field(hash, h, {}, "token_ids");
    const std::vector<int32_t> two_ids = {1, 2};
    ex = {};
    ex.token_ids = two_ids;
    expect_route_field(hash, h, ex, "token_ids");

    RouterConfig noisy = make_cfg(Scheme::NoisyTopK, 4, 2);
    noisy.add_noise = true;
    expect_route_field(noisy, h, {}, "noise_logits");
    const Mat wrong_shape = Mat::Zero(2, 4);
    ex = {};
    ex.noise_logits = &wrong_shape;
    expect_route_field(noisy, h, ex, "noise_logits");
    Mat bad_noise = Mat::Zero(3, 4);
    bad_noise(0, 0) = std::numeric_limits<float>::quiet_NaN();
    ex.noise_logits = &bad_noise;
    expect_route_field(noisy, h, ex, "noise_logits");
    noisy.add_noise = false;  // without noise the noise logits are not needed
    EXPECT_NO_THROW(route(noisy, h));

    const RouterConfig sb = make_cfg(Scheme::SigmoidBias, 4, 2);
    const Vec short_bias = Vec::Zero(3);
    ex = {};
    ex.expert_bias = &short_bias;
    expect_route_field(sb, h, ex, "expert_bias");
    Vec nan_bias = Vec::Zero(4);
    nan_bias[1] = std::numeric_limits<float>::quiet_NaN();
    ex.expert_bias = &nan_bias;
    expect_route_field(sb, h, ex, "expert_bias");

    const RoutingTrace base = route(make_cfg(Scheme::Base, 4, 1), h);  // T = 3, N = 4: every token, one per expert
    EXPECT_EQ(base.capacity, 1);
    EXPECT_EQ(base.stats.n_pairs, 3);
    EXPECT_EQ(base.stats.n_dropped, 0);
}

// Issue 15, hole 4: capacity factors of 3e9 (switch, score priority) and 1e30 overflowed the
// float-to-int cast of the capacity. Now validate() caps the factor, and the capacity is
// clamped in double before the cast, so the largest accepted factor routes like dropless.
TEST(RoutingValidate, HugeCapacityFactorIsAnErrorOrDropless) {
    const Mat h = random_logits(64, 8, 3);
    for (float cf : {3e9f, 1e30f, std::numeric_limits<float>::infinity()}) {
        for (DropPolicy pol : {DropPolicy::Score, DropPolicy::Position, DropPolicy::Dropless}) {
            RouterConfig c = make_cfg(Scheme::Switch, 8, 1);
            c.drop_policy = pol;
            c.capacity_factor = cf;
            expect_route_field(c, h, {}, "capacity_factor");
        }
        RouterConfig ec = make_cfg(Scheme::ExpertChoice, 8, 1);
        ec.capacity_factor = cf;
        expect_route_field(ec, h, {}, "capacity_factor");
    }
    RouterConfig c = make_cfg(Scheme::Switch, 8, 1);
    c.drop_policy = DropPolicy::Score;
    c.capacity_factor = kMaxCapacityFactor;
    const RoutingTrace tr = route(c, h);
    EXPECT_EQ(tr.capacity, 64);  // T * K: no more can be asked of any expert
    EXPECT_EQ(tr.stats.n_dropped, 0);
    RouterConfig ec = make_cfg(Scheme::ExpertChoice, 8, 1);
    ec.capacity_factor = kMaxCapacityFactor;
    EXPECT_EQ(route(ec, h).capacity, 64);  // every expert takes every token
}

// [SECTION] Gradients
// Objective: sum over kept pairs of w(t, e) * gate. d_gate[p] = w(token, expert).
double gate_objective(const RouterConfig& cfg, const Mat& h, const RouteExtras& ex, const Mat& w,
                      const RoutingTrace& reference, bool& same) {
    const RoutingTrace tr = route(cfg, h, ex);
    same = same_selection(tr, reference);
    double sum = 0.0;
    for (const RoutedPair& p : tr.pairs)
        if (!p.dropped) sum += static_cast<double>(w(p.token, p.expert)) * p.gate;
    return sum;
}

// Central differences on every logit whose +-eps perturbation keeps the selection; returns how
// many entries were compared so a test cannot pass by skipping everything.
template <typename Analytic, typename Objective>
int check_gradient(const Mat& h, Analytic analytic, Objective objective, const char* what) {
    Mat grad = Mat::Zero(h.rows(), h.cols());  // (n_tokens, n_experts)
    analytic(grad);
    const float eps = 1e-2f;
    int compared = 0;
    for (int t = 0; t < h.rows(); ++t)
        for (int i = 0; i < h.cols(); ++i) {
            Mat hp = h, hm = h;
            hp(t, i) += eps;
            hm(t, i) -= eps;
            bool same_p = true, same_m = true;
            const double fp = objective(hp, same_p);
            const double fm = objective(hm, same_m);
            if (!same_p || !same_m) continue;
            const double fd = (fp - fm) / (2.0 * eps);
            EXPECT_NEAR(grad(t, i), fd, 2e-3 + 1e-2 * std::fabs(fd)) << what << " at (" << t << ", " << i << ")";
            ++compared;
        }
    return compared;
}

TEST(RoutingGradients, GateBackwardMatchesFiniteDifferences) {
    struct Case {
        Scheme scheme;
        int k;
        bool renormalize;
        DropPolicy policy;
    };
    const Case cases[] = {
        {Scheme::Soft, 1, true, DropPolicy::Dropless},
        {Scheme::TopKMixtral, 2, true, DropPolicy::Position},
        {Scheme::TopKGShard, 2, true, DropPolicy::Dropless},
        {Scheme::TopKGShard, 3, false, DropPolicy::Score},
        {Scheme::NoisyTopK, 2, true, DropPolicy::Dropless},
        {Scheme::Switch, 1, true, DropPolicy::Position},
        {Scheme::GShardTop2, 2, true, DropPolicy::Dropless},
        {Scheme::ExpertChoice, 2, true, DropPolicy::Dropless},
        {Scheme::Sinkhorn, 2, true, DropPolicy::Dropless},
        {Scheme::SigmoidBias, 3, true, DropPolicy::Position},
        {Scheme::Base, 1, true, DropPolicy::Dropless},
    };
    for (const Case& c : cases) {
        RouterConfig cfg = make_cfg(c.scheme, 5, c.k);
        cfg.renormalize = c.renormalize;
        cfg.drop_policy = c.policy;
        cfg.capacity_factor = 1.0f;
        cfg.add_noise = true;
        cfg.routed_scaling = 1.5f;
        cfg.seed = 9;
        Routed r;
        r.logits = random_logits(10, 5, 77, 1.5f);
        r.noise = random_logits(10, 5, 78);
        r.bias = random_logits(1, 5, 79, 0.2f).row(0).transpose();
        r.ids = token_ids_for(10);
        const RouteExtras ex = extras_for(r);
        const RoutingTrace ref = route(cfg, r.logits, ex);
        const Mat w = random_logits(10, 5, 80, 1.0f);
        std::vector<float> d_gate(ref.pairs.size());
        for (size_t p = 0; p < ref.pairs.size(); ++p) d_gate[p] = w(ref.pairs[p].token, ref.pairs[p].expert);
        const int compared = check_gradient(
            r.logits, [&](Mat& g) { gate_backward(cfg, ref, d_gate, g); },
            [&](const Mat& h, bool& same) { return gate_objective(cfg, h, ex, w, ref, same); },
            scheme_name(c.scheme));
        EXPECT_GT(compared, 25) << scheme_name(c.scheme);
    }
}

TEST(RoutingGradients, HashHasNoRouterGradient) {
    RouterConfig cfg = make_cfg(Scheme::Hash, 4, 2);
    const std::vector<int32_t> ids = token_ids_for(3);
    RouteExtras ex;
    ex.token_ids = ids;
    const RoutingTrace tr = route(cfg, random_logits(3, 4, 1), ex);
    Mat g = Mat::Zero(3, 4);
    const std::vector<float> d_gate(tr.pairs.size(), 1.0f);
    gate_backward(cfg, tr, d_gate, g);
    EXPECT_EQ(g.cwiseAbs().maxCoeff(), 0.0f);
}

TEST(RoutingGradients, AuxAndZLossBackward) {
    for (Scheme s : {Scheme::TopKMixtral, Scheme::Switch, Scheme::SigmoidBias, Scheme::ExpertChoice}) {
        RouterConfig cfg = make_cfg(s, 6, 2);
        cfg.capacity_factor = 1.5f;
        const Mat h = random_logits(12, 6, 123, 1.5f);
        const RoutingTrace ref = route(cfg, h);
        const float scale = 0.7f;
        int compared = check_gradient(
            h, [&](Mat& g) { aux_loss_backward(ref, scale, g); },
            [&](const Mat& hp, bool& same) {
                const RoutingTrace tr = route(cfg, hp);
                same = same_selection(tr, ref);
                return scale * static_cast<double>(tr.stats.aux_loss);
            },
            "aux_loss");
        EXPECT_GT(compared, 30) << scheme_name(s);
        compared = check_gradient(
            h, [&](Mat& g) { z_loss_backward(ref, scale, g); },
            [&](const Mat& hp, bool& same) {
                same = true;
                return scale * static_cast<double>(route(cfg, hp).stats.z_loss);
            },
            "z_loss");
        EXPECT_EQ(compared, 72);
    }
}

TEST(RoutingGradients, BackwardAccumulates) {
    // d_logits is added to, never overwritten: two calls give twice one call.
    const RouterConfig cfg = make_cfg(Scheme::TopKMixtral, 4, 2);
    const RoutingTrace tr = route(cfg, random_logits(5, 4, 3));
    const std::vector<float> d_gate(tr.pairs.size(), 0.5f);
    Mat once = Mat::Zero(5, 4), twice = Mat::Zero(5, 4);
    z_loss_backward(tr, 1.0f, once);
    aux_loss_backward(tr, 1.0f, once);
    gate_backward(cfg, tr, d_gate, once);
    for (int i = 0; i < 2; ++i) {
        z_loss_backward(tr, 1.0f, twice);
        aux_loss_backward(tr, 1.0f, twice);
        gate_backward(cfg, tr, d_gate, twice);
    }
    EXPECT_LT((twice - 2 * once).cwiseAbs().maxCoeff(), 1e-6f);
    EXPECT_GT(once.cwiseAbs().maxCoeff(), 0.0f);
}

// [SECTION] Extreme finite inputs
// Issue 15's open finding (fuzz_router, 592,333 execs): noisy top-K with noise_scale 9.6e37
// (finite, accepted) made h + eps * softplus(W_noise x) * noise_scale overflow to +-inf, and the
// softmax over the kept values exp(inf - inf) gave NaN gates. The input is
// fuzz/regressions/router/noisy-topk-noise-scale-9.6e37; this holds its config.
TEST(RoutingExtreme, NoisyTopKHugeNoiseScaleIsAnError) {
    RouterConfig c = make_cfg(Scheme::NoisyTopK, 43, 7);
    c.add_noise = true;
    c.noise_scale = 9.58869e37f;
    c.capacity_factor = 0.596071f;
    c.drop_policy = DropPolicy::Position;
    c.routed_scaling = 0.596078f;
    c.seed = 72340172838076673ull;
    const Mat h = random_logits(1, 43, 5, 20.0f);
    const Mat noise = random_logits(1, 43, 6, 3.0f);
    RouteExtras ex;
    ex.noise_logits = &noise;
    expect_route_field(c, h, ex, "noise_scale");
    c.noise_scale = kMaxNoiseScale;  // the largest accepted scale still routes with finite gates
    const RoutingTrace tr = route(c, h, ex);
    ASSERT_EQ(tr.pairs.size(), 7u);
    float sum = 0.0f;
    for (const RoutedPair& p : tr.pairs) {
        EXPECT_TRUE(std::isfinite(p.gate));
        sum += p.gate;
    }
    EXPECT_NEAR(sum, c.routed_scaling, 1e-5f);
}

// Every scheme on finite logits at the ends of float's range (what a diverged router or a
// hostile file gives): gates finite and summing as the scheme says, gradients finite.
TEST(RoutingExtreme, EverySchemeOnLogitsNearFloatMax) {
    const float big = std::numeric_limits<float>::max();
    // Token 0: all very negative (sigmoid underflows to 0 for every expert); token 1: +-max
    // mixed; token 2: one huge and the rest ordinary; token 3: ordinary.
    const Mat h = make_mat(4, 4, {-big, -1e30f, -3e38f, -2e38f,  //
                                  big, -big, 1e38f, -1e38f,      //
                                  3e38f, 1.0f, -2.0f, 0.5f,      //
                                  0.3f, -0.7f, 1.1f, 0.0f});
    const Mat noise = make_mat(4, 4, {big, -big, 0, 1, 1e30f, 2, 3, 4, 0, 0, 0, 0, 1, 2, 3, 4});
    const std::vector<int32_t> ids = token_ids_for(4);
    for (int s = 0; s < kNumSchemes; ++s) {
        RouterConfig c = make_cfg(static_cast<Scheme>(s), 4, 2);
        c.add_noise = true;
        c.noise_scale = 1.0f;
        c.sinkhorn_iters = 20;
        c.drop_policy = DropPolicy::Dropless;
        if (c.scheme == Scheme::ExpertChoice) c.capacity_factor = 2.0f;
        RouteExtras ex;
        ex.noise_logits = &noise;
        ex.token_ids = ids;
        SCOPED_TRACE(scheme_name(c.scheme));
        RoutingTrace tr;
        try {
            tr = route(c, h, ex);
        } catch (const Error& e) {
            // Only a noisy value past float's range may be refused, and it must say so.
            EXPECT_EQ(c.scheme, Scheme::NoisyTopK) << e.what();
            EXPECT_EQ(e.field(), "noise_logits") << e.what();
            continue;
        }
        for (int t = 0; t < 4; ++t) {
            float sum = 0.0f;
            std::set<int> experts;
            for (const RoutedPair& p : tr.token_pairs(t)) {
                EXPECT_TRUE(std::isfinite(p.gate)) << "token " << t << " expert " << p.expert;
                sum += p.gate;
                experts.insert(p.expert);
            }
            EXPECT_EQ(experts.size(), tr.token_pairs(t).size()) << "an expert chosen twice by token " << t;
            if (c.scheme == Scheme::TopKMixtral || c.scheme == Scheme::TopKGShard || c.scheme == Scheme::SigmoidBias ||
                c.scheme == Scheme::Soft || c.scheme == Scheme::Hash) {
                EXPECT_NEAR(sum, 1.0f, 1e-5f) << "token " << t;
            }
        }
        Mat d = Mat::Zero(4, 4);  // (n_tokens, n_experts)
        if (c.scheme != Scheme::Hash) gate_backward(c, tr, std::vector<float>(tr.pairs.size(), 1.0f), d);
        aux_loss_backward(tr, 0.01f, d);
        EXPECT_TRUE(d.allFinite()) << d;
    }
}


// Sinkhorn scales every column to T/N, so a constant added to one expert's logits changes
// nothing it picks: a column 1000 below the rest (every exp(h) underflows, once 0 / 0 = NaN
// scores and NaN-ranked choices) must route exactly as the same column shifted back.
TEST(RoutingExtreme, SinkhornIgnoresAColumnShiftEvenPastUnderflow) {
    const Mat near = make_mat(3, 4, {0.0f, 0.4f, 0.5f, 0.2f,  //
                                     0.1f, 0.9f, 0.3f, 0.9f,  //
                                     0.7f, 0.2f, 0.6f, 0.1f});
    Mat far = near;
    far.col(1).array() -= 1000.0f;
    RouterConfig c = make_cfg(Scheme::Sinkhorn, 4, 1);
    c.sinkhorn_iters = 50;
    const RoutingTrace a = route(c, near, {});
    const RoutingTrace b = route(c, far, {});
    ASSERT_EQ(a.pairs.size(), b.pairs.size());
    for (size_t i = 0; i < a.pairs.size(); ++i) {
        EXPECT_EQ(a.pairs[i].expert, b.pairs[i].expert) << "pair " << i;
        EXPECT_TRUE(std::isfinite(b.pairs[i].score) && std::isfinite(b.pairs[i].gate)) << "pair " << i;
        EXPECT_NEAR(a.pairs[i].score, b.pairs[i].score, 1e-4f) << "pair " << i;
    }
}

// Where every sigmoid underflows to 0 (h < -88) the shares s_i / sum s_j are still defined:
// sigmoid(h) ~ exp(h) there, so they are softmax(h) over the chosen experts, not 0/0.
TEST(RoutingExtreme, SigmoidSharesWhereEverySigmoidUnderflows) {
    RouterConfig c = make_cfg(Scheme::SigmoidBias, 4, 2);
    const Mat h = make_mat(1, 4, {-1000.0f, -1001.0f, -5000.0f, -1002.0f});
    const Vec bias = (Vec(4) << 0.0f, 0.5f, 1.0f, -1.0f).finished();  // s = 0 everywhere: bias alone ranks
    RouteExtras ex;
    ex.expert_bias = &bias;
    const RoutingTrace tr = route(c, h, ex);
    ASSERT_EQ(tr.pairs.size(), 2u);
    EXPECT_EQ(tr.pairs[0].expert, 2);
    EXPECT_EQ(tr.pairs[1].expert, 1);
    const double e2 = std::exp(-5000.0 + 1001.0);  // softmax of {-5000, -1001}
    EXPECT_NEAR(tr.pairs[0].gate, e2 / (1.0 + e2), 1e-6);
    EXPECT_NEAR(tr.pairs[1].gate, 1.0 / (1.0 + e2), 1e-6);
    const Mat h2 = make_mat(1, 4, {-1000.0f, -1001.0f, -999.0f, -1002.0f});
    const RoutingTrace tr2 = route(c, h2, ex);
    const double a = 1.0 / (1.0 + std::exp(-2.0));  // experts 2 and 1: softmax of {-999, -1001}
    EXPECT_NEAR(tr2.pairs[0].gate, a, 1e-6);
    EXPECT_NEAR(tr2.pairs[1].gate, 1.0 - a, 1e-6);
    EXPECT_TRUE(std::isfinite(tr2.stats.router_entropy));
    Mat d = Mat::Zero(1, 4);  // (n_tokens, n_experts)
    const std::vector<float> d_gate = {1.0f, 0.0f};
    gate_backward(c, tr2, d_gate, d);
    // d g_0 / d h_2 = q_0 (1 - q_0), d g_0 / d h_1 = -q_0 q_1 (s ~ 0, so 1 - s = 1)
    EXPECT_NEAR(d(0, 2), a * (1.0 - a), 1e-6);
    EXPECT_NEAR(d(0, 1), -a * (1.0 - a), 1e-6);
}

}  // namespace
}  // namespace moe
