// The 2D mixture of local experts: the task, knob validation, the hand-written backward
// (finite differences), determinism, the region map, and the lesson itself: without balancing
// the router collapses; the Switch loss or the aux-loss-free bias spread the load and fit better.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "core/error.h"
#include "core/models/mix2d.h"

namespace moe {

// Reaches the trainer's private batch loss and gradients for the finite-difference check.
struct Mix2dTestPeer {
    Mix2dTrainer& t;

    struct Batch {
        Mat points;  // (n, 2)
        Vec target;  // (n)
    };

    static Batch batch(int n, uint64_t seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        Batch b{Mat(n, 2), Vec(n)};
        for (int i = 0; i < n; ++i) {
            b.points(i, 0) = u(rng);
            b.points(i, 1) = u(rng);
            b.target[i] = mix2d_target(b.points(i, 0), b.points(i, 1));
        }
        return b;
    }

    float loss(const Batch& b, RoutingTrace& trace) {
        float mse = 0.0f;
        return t.loss_and_grad(b.points, b.points, b.target, t.router_config(7), trace, mse);
    }

    // Every weight with its analytic gradient, as (pointer to weight, gradient value) pairs.
    std::vector<std::pair<float*, float>> params() {
        std::vector<std::pair<float*, float>> out;
        auto add = [&](float* w, const float* g, Eigen::Index n) {
            for (Eigen::Index i = 0; i < n; ++i) out.emplace_back(w + i, g[i]);
        };
        add(t.w_router_.data(), t.g_w_router_.data(), t.w_router_.size());
        add(t.b_router_.data(), t.g_b_router_.data(), t.b_router_.size());
        for (size_t e = 0; e < t.w1_.size(); ++e) {
            add(t.w1_[e].data(), t.g_w1_[e].data(), t.w1_[e].size());
            add(t.b1_[e].data(), t.g_b1_[e].data(), t.b1_[e].size());
        }
        add(t.w2_.data(), t.g_w2_.data(), t.w2_.size());
        add(t.b2_.data(), t.g_b2_.data(), t.b2_.size());
        return out;
    }
};

namespace {

// [SECTION] Task
TEST(Mix2dTask, RegionsCoverTheSquareFairly) {
    std::vector<int> count(kMix2dRegions, 0);
    const int side = 100;
    for (int r = 0; r < side; ++r)
        for (int c = 0; c < side; ++c) {
            const int region = mix2d_region(-1.0f + (c + 0.5f) * 0.02f, -1.0f + (r + 0.5f) * 0.02f);
            ASSERT_GE(region, 0);
            ASSERT_LT(region, kMix2dRegions);
            ++count[region];
        }
    for (int i = 0; i < kMix2dRegions; ++i) {
        EXPECT_GT(count[i], side * side / 12) << "region " << i << " " << mix2d_region_label(i) << " is tiny";
        EXPECT_LT(count[i], side * side / 3) << "region " << i << " dominates";
    }
    EXPECT_STREQ(mix2d_region_label(2), "constant");
    EXPECT_FLOAT_EQ(mix2d_target(0.9f, 0.0f), -0.9f);  // deep in the constant cell
}

// [SECTION] Validation
TEST(Mix2dConfig, EveryBadKnobThrowsNamingIt) {
    struct Case {
        const char* field;
        std::function<void(Mix2dConfig&)> spoil;
    };
    const std::vector<Case> cases = {
        {"n_experts", [](Mix2dConfig& c) { c.n_experts = 0; }},
        {"hidden", [](Mix2dConfig& c) { c.hidden = 0; }},
        {"batch", [](Mix2dConfig& c) { c.batch = 0; }},
        {"n_eval", [](Mix2dConfig& c) { c.n_eval = 0; }},
        {"lr", [](Mix2dConfig& c) { c.lr = 0.0f; }},
        {"lr", [](Mix2dConfig& c) { c.lr = -0.1f; }},
        {"lr", [](Mix2dConfig& c) { c.lr = NAN; }},
        {"router_init_std", [](Mix2dConfig& c) { c.router_init_std = -1.0f; }},
        {"k", [](Mix2dConfig& c) { c.k = 0; }},
        {"k", [](Mix2dConfig& c) { c.k = 9; }},
        {"scheme", [](Mix2dConfig& c) { c.scheme = Scheme::Hash; }},
        {"scheme", [](Mix2dConfig& c) { c.scheme = Scheme::ExpertChoice; }},
        {"scheme", [](Mix2dConfig& c) { c.scheme = static_cast<Scheme>(99); }},
        {"alpha", [](Mix2dConfig& c) { c.alpha = -0.01f; }},
        {"beta", [](Mix2dConfig& c) { c.beta = INFINITY; }},
        {"bias_rate", [](Mix2dConfig& c) { c.bias_rate = -1.0f; }},
        {"jitter_eps", [](Mix2dConfig& c) { c.jitter_eps = 1.5f; }},
        {"expert_bias", [](Mix2dConfig& c) { c.expert_bias = true; }},  // with the default Switch scheme
    };
    for (const Case& cs : cases) {
        Mix2dConfig cfg;
        cs.spoil(cfg);
        try {
            validate(cfg);
            ADD_FAILURE() << "no error for " << cs.field;
        } catch (const Error& e) {
            EXPECT_EQ(e.field(), cs.field) << e.what();
            EXPECT_EQ(e.where(), "Mix2dConfig");
            EXPECT_FALSE(e.hint().empty()) << e.what();
        }
        EXPECT_THROW(Mix2dTrainer{cfg}, Error) << cs.field;
    }
    EXPECT_NO_THROW(validate(Mix2dConfig{}));
    for (Mix2dBalance b : {Mix2dBalance::None, Mix2dBalance::Switch, Mix2dBalance::Bias})
        EXPECT_NO_THROW(validate(apply_balance(Mix2dConfig{}, b))) << mix2d_balance_name(b);
    EXPECT_EQ(mix2d_balance_from_name("switch"), Mix2dBalance::Switch);
    EXPECT_FALSE(mix2d_balance_from_name("Switch").has_value());
}

TEST(Mix2dTrainer, BadLiveToggleThrowsAndChangesNothing) {
    Mix2dTrainer t;
    const Mix2dConfig before = t.config();
    EXPECT_THROW(t.set_k(0), Error);
    EXPECT_THROW(t.set_k(before.n_experts + 1), Error);
    EXPECT_THROW(t.set_switch_loss(true, -1.0f), Error);
    EXPECT_THROW(t.set_jitter(-0.1f), Error);
    EXPECT_THROW(t.set_lr(0.0f), Error);
    EXPECT_THROW(t.set_scheme(Scheme::Base), Error);
    EXPECT_THROW(t.set_expert_bias(true, 0.01f), Error);  // Switch scheme: the bias would do nothing
    EXPECT_EQ(t.config().k, before.k);
    EXPECT_EQ(t.config().scheme, before.scheme);
    EXPECT_EQ(t.config().switch_loss, before.switch_loss);
    EXPECT_EQ(t.config().lr, before.lr);
    EXPECT_THROW(t.sample_regions(0, 4), Error);
    EXPECT_THROW(t.sample_regions(4, 100000), Error);
    t.set_balance(Mix2dBalance::Bias);
    EXPECT_EQ(t.config().scheme, Scheme::SigmoidBias);
    EXPECT_TRUE(t.config().expert_bias);
    t.set_scheme(Scheme::TopKMixtral);  // leaving SigmoidBias turns the bias off
    EXPECT_FALSE(t.config().expert_bias);
}

// [SECTION] Gradients
// Central differences of the batch loss against the hand-written backward, for every weight.
// Selection is held fixed by the router code (straight-through), so a perturbation that flips
// a point's top-K choice is skipped rather than compared.
void check_gradients(Mix2dConfig cfg) {
    cfg.n_experts = 4;
    cfg.hidden = 3;
    cfg.router_init_std = 1.0f;  // distinct logits: few selections sit on a tie
    Mix2dTrainer trainer(cfg);
    for (int i = 0; i < 5; ++i) trainer.step();  // away from the initial point
    Mix2dTestPeer peer{trainer};
    const Mix2dTestPeer::Batch b = Mix2dTestPeer::batch(16, 11);
    RoutingTrace base_trace;
    peer.loss(b, base_trace);
    const std::vector<std::pair<float*, float>> params = peer.params();
    int n_checked = 0;
    for (const auto& [w, g] : params) {
        const float keep = *w;
        const float h = 1e-3f;
        RoutingTrace tp, tm;
        *w = keep + h;
        const double lp = peer.loss(b, tp);
        *w = keep - h;
        const double lm = peer.loss(b, tm);
        *w = keep;
        bool same_selection = tp.pairs.size() == base_trace.pairs.size() && tm.pairs.size() == base_trace.pairs.size();
        for (size_t p = 0; same_selection && p < base_trace.pairs.size(); ++p)
            same_selection = tp.pairs[p].expert == base_trace.pairs[p].expert &&
                             tm.pairs[p].expert == base_trace.pairs[p].expert;
        if (!same_selection) continue;
        const double fd = (lp - lm) / (2.0 * h);
        EXPECT_NEAR(g, fd, 3e-4 + 0.02 * std::abs(fd)) << scheme_name(cfg.scheme) << " weight #" << n_checked;
        ++n_checked;
    }
    EXPECT_GT(n_checked, static_cast<int>(params.size()) * 3 / 4) << "too many selection flips to check";
}

TEST(Mix2dTrainer, GradientsMatchFiniteDifferencesSoft) {
    Mix2dConfig cfg;
    cfg.scheme = Scheme::Soft;
    cfg.z_loss = true;
    cfg.beta = 0.01f;
    check_gradients(cfg);
}

TEST(Mix2dTrainer, GradientsMatchFiniteDifferencesSwitchWithBalancingLosses) {
    Mix2dConfig cfg = apply_balance(Mix2dConfig{}, Mix2dBalance::Switch);
    cfg.z_loss = true;
    cfg.beta = 0.01f;
    check_gradients(cfg);
}

TEST(Mix2dTrainer, GradientsMatchFiniteDifferencesTop2Mixtral) {
    Mix2dConfig cfg;
    cfg.scheme = Scheme::TopKMixtral;
    cfg.k = 2;
    check_gradients(cfg);
}

TEST(Mix2dTrainer, GradientsMatchFiniteDifferencesSigmoidBias) {
    Mix2dConfig cfg = apply_balance(Mix2dConfig{}, Mix2dBalance::Bias);
    check_gradients(cfg);
}

// [SECTION] Determinism and training
TEST(Mix2dTrainer, SameSeedSameRunAndResetReplays) {
    Mix2dConfig cfg = apply_balance(Mix2dConfig{}, Mix2dBalance::Bias);
    cfg.jitter_eps = 0.1f;
    Mix2dTrainer a(cfg), b(cfg);
    std::vector<float> losses;
    for (int i = 0; i < 20; ++i) {
        const Mix2dMetrics ma = a.step(), mb = b.step();
        ASSERT_EQ(ma.loss, mb.loss) << "step " << i;
        ASSERT_EQ(ma.load, mb.load) << "step " << i;
        losses.push_back(ma.loss);
    }
    EXPECT_EQ(a.steps_done(), 20);
    EXPECT_NE(a.bias().norm(), 0.0f);  // the aux-loss-free bias moved
    a.reset();
    EXPECT_EQ(a.steps_done(), 0);
    EXPECT_EQ(a.bias().norm(), 0.0f);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(a.step().loss, losses[i]) << "replay step " << i;

    cfg.seed += 1;
    Mix2dTrainer c(cfg);
    EXPECT_NE(c.step().loss, losses[0]);
}

TEST(Mix2dTrainer, EverySupportedSchemeTrains) {
    for (int s = 0; s < kNumSchemes; ++s) {
        const Scheme scheme = static_cast<Scheme>(s);
        if (!mix2d_supports(scheme)) continue;
        Mix2dConfig cfg;
        cfg.scheme = scheme;
        cfg.k = 2;
        cfg.n_eval = 256;
        cfg.switch_loss = true;
        cfg.z_loss = true;
        cfg.jitter_eps = 0.05f;
        Mix2dTrainer t(cfg);
        const float before = t.evaluate().loss;
        Mix2dMetrics m;
        for (int i = 0; i < 150; ++i) m = t.step();
        const float after = t.evaluate().loss;
        EXPECT_TRUE(std::isfinite(m.total_loss)) << scheme_name(scheme);
        EXPECT_GE(m.total_loss, m.loss) << scheme_name(scheme);
        EXPECT_LT(after, 0.6f * before) << scheme_name(scheme) << ": " << before << " -> " << after;
        int kept = 0;
        for (int l : m.load) kept += l;
        if (scheme == Scheme::GShardTop2) {
            // The second expert is sent with probability min(1, 2 p_2) only.
            EXPECT_GT(kept, cfg.batch);
            EXPECT_LE(kept, 2 * cfg.batch);
        } else {
            const int k = scheme == Scheme::Soft ? cfg.n_experts : (scheme == Scheme::Switch ? 1 : 2);
            EXPECT_EQ(kept, cfg.batch * k) << scheme_name(scheme);
        }
    }
}

// [SECTION] Region map
TEST(Mix2dTrainer, RegionMapShowsTheRoutersChoiceAndTheModelsOutput) {
    Mix2dTrainer t;
    for (int i = 0; i < 50; ++i) t.step();
    const int w = 13, h = 7;
    const Mix2dRegions map = t.sample_regions(w, h);
    ASSERT_EQ(map.width, w);
    ASSERT_EQ(map.height, h);
    ASSERT_EQ(map.expert.size(), static_cast<size_t>(w * h));
    ASSERT_EQ(map.prediction.size(), static_cast<size_t>(w * h));
    const Mat& wr = t.router_weight();
    const Vec& br = t.router_bias();
    for (int r = 0; r < h; ++r) {
        for (int c = 0; c < w; ++c) {
            const int i = r * w + c;
            const float x = -1.0f + (c + 0.5f) * 2.0f / w, y = 1.0f - (r + 0.5f) * 2.0f / h;
            // Switch top-1: the cell's expert is the argmax of the router's logits there.
            int best = 0;
            for (int e = 1; e < wr.rows(); ++e)
                if (wr(e, 0) * x + wr(e, 1) * y + br[e] > wr(best, 0) * x + wr(best, 1) * y + br[best]) best = e;
            EXPECT_EQ(map.expert[i], best) << "cell " << r << "," << c;
            EXPECT_GT(map.gate[i], 0.0f);
            EXPECT_LE(map.gate[i], 1.0f);
            EXPECT_FLOAT_EQ(map.target[i], mix2d_target(x, y));
            EXPECT_TRUE(std::isfinite(map.prediction[i]));
        }
    }
    // Row 0 is the top of the picture (y near +1): the top-left cell lies in the "plane" cell.
    EXPECT_FLOAT_EQ(map.target[0], mix2d_target(-1.0f + 1.0f / w, 1.0f - 1.0f / h));
}

// [SECTION] The lesson: collapse and its cures
struct Outcome {
    Mix2dEval eval;
};

Outcome train(Mix2dBalance balance, int steps) {
    Mix2dTrainer t(apply_balance(Mix2dConfig{}, balance));
    for (int i = 0; i < steps; ++i) t.step();
    return {t.evaluate()};
}

TEST(Mix2dLesson, WithoutBalancingTheRouterCollapsesAndBalancingFitsBetter) {
    // The default seed; across seeds 1..8 the same holds in 7 of 8 runs for the Switch loss and
    // 8 of 8 for the bias (see the D2 report), so this is not a lucky seed's story.
    const int steps = 1000;
    const Outcome none = train(Mix2dBalance::None, steps);
    const Outcome sw = train(Mix2dBalance::Switch, steps);
    const Outcome bias = train(Mix2dBalance::Bias, steps);

    EXPECT_GT(none.eval.load_cv, 1.0f);
    EXPECT_GE(none.eval.n_idle, 4) << "most of the 8 experts should be idle without balancing";

    EXPECT_LT(sw.eval.load_cv, 0.5f);
    EXPECT_EQ(sw.eval.n_idle, 0);
    EXPECT_LT(sw.eval.loss, 0.85f * none.eval.loss) << "switch " << sw.eval.loss << " vs none " << none.eval.loss;

    EXPECT_LT(bias.eval.load_cv, 0.5f);
    EXPECT_EQ(bias.eval.n_idle, 0);
    EXPECT_LT(bias.eval.loss, 0.85f * none.eval.loss) << "bias " << bias.eval.loss << " vs none " << none.eval.loss;
}

TEST(Mix2dLesson, TurningTheSwitchLossOnUndoesACollapse) {
    Mix2dTrainer t(apply_balance(Mix2dConfig{}, Mix2dBalance::None));
    for (int i = 0; i < 400; ++i) t.step();
    const Mix2dEval collapsed = t.evaluate();
    t.set_balance(Mix2dBalance::Switch);  // live, without a reset
    for (int i = 0; i < 600; ++i) t.step();
    const Mix2dEval cured = t.evaluate();
    EXPECT_GT(collapsed.load_cv, 1.0f);
    EXPECT_LT(cured.load_cv, 0.6f * collapsed.load_cv);
    EXPECT_LT(cured.n_idle, collapsed.n_idle);
}

}  // namespace
}  // namespace moe
