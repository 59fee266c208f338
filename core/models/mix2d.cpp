// The 2D mixture of local experts: task, validation, trainer (forward, hand backprop, Adam).
//
// [SECTION] Task
// [SECTION] Configuration
// [SECTION] Helpers
// [SECTION] Trainer: init and toggles
// [SECTION] Trainer: forward
// [SECTION] Trainer: step (backward + Adam)
// [SECTION] Trainer: evaluation and region maps
#include "core/models/mix2d.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/engine/rng.h"

namespace moe {

// [SECTION] Task
namespace {

struct Region {
    float cx, cy;       // Voronoi centre
    const char* label;
};

// Six centres chosen so every cell covers a fair share of the square (12-19% each).
constexpr Region kRegions[kMix2dRegions] = {
    {-0.60f, 0.55f, "plane"},
    {0.15f, 0.65f, "sine"},
    {0.70f, 0.00f, "constant"},
    {0.25f, -0.60f, "saddle"},
    {-0.55f, -0.50f, "ripple"},
    {-0.05f, 0.00f, "slope"},
};

}  // namespace

int mix2d_region(float x, float y) {
    int best = 0;
    float best_d = INFINITY;
    for (int r = 0; r < kMix2dRegions; ++r) {
        const float dx = x - kRegions[r].cx, dy = y - kRegions[r].cy;
        const float d = dx * dx + dy * dy;
        if (d < best_d) { best_d = d; best = r; }
    }
    return best;
}

float mix2d_target(float x, float y) {
    // Different shapes with jumps at the borders: one small expert cannot fit them all,
    // one expert per cell can.
    switch (mix2d_region(x, y)) {
        case 0: return 0.6f * x + 0.4f * y + 0.9f;
        case 1: return 0.6f * std::sin(6.0f * x) - 0.4f;
        case 2: return -0.9f;
        case 3: return 2.0f * x * y + 0.6f;
        case 4: return 0.5f * std::cos(6.0f * y) - 0.3f;
        default: return -1.2f * x + 0.2f;
    }
}

const char* mix2d_region_label(int region) {
    if (region < 0 || region >= kMix2dRegions) return "?";
    return kRegions[region].label;
}

// [SECTION] Configuration
const char* mix2d_balance_name(Mix2dBalance b) {
    switch (b) {
        case Mix2dBalance::None: return "none";
        case Mix2dBalance::Switch: return "switch";
        case Mix2dBalance::Bias: return "bias";
    }
    return "?";
}

std::optional<Mix2dBalance> mix2d_balance_from_name(std::string_view name) {
    for (Mix2dBalance b : {Mix2dBalance::None, Mix2dBalance::Switch, Mix2dBalance::Bias})
        if (name == mix2d_balance_name(b)) return b;
    return std::nullopt;
}

bool mix2d_supports(Scheme s) {
    switch (s) {
        case Scheme::Soft:
        case Scheme::TopKMixtral:
        case Scheme::TopKGShard:
        case Scheme::Switch:
        case Scheme::GShardTop2:
        case Scheme::Sinkhorn:
        case Scheme::SigmoidBias:
            return true;
        default:
            return false;
    }
}

namespace {

std::string fmt(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
    return buf;
}

[[noreturn]] void bad(const std::string& knob, const std::string& value, const std::string& expected) {
    throw Error("Mix2dConfig", knob, knob + " = " + value, expected);
}

void check_range(const std::string& knob, int v, int lo, int hi) {
    if (v < lo || v > hi)
        bad(knob, std::to_string(v), "an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
}

void check_rate(const std::string& knob, float v, float lo, float hi, bool lo_open) {
    const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
    if (!ok) bad(knob, fmt(v), std::string("a number in ") + (lo_open ? "(" : "[") + fmt(lo) + ", " + fmt(hi) + "]");
}

std::string supported_schemes() {
    std::string s;
    for (int i = 0; i < kNumSchemes; ++i) {
        const Scheme sc = static_cast<Scheme>(i);
        if (!mix2d_supports(sc)) continue;
        if (!s.empty()) s += ", ";
        s += scheme_name(sc);
    }
    return s;
}

}  // namespace

void validate(const Mix2dConfig& cfg) {
    check_range("n_experts", cfg.n_experts, 1, 64);
    check_range("hidden", cfg.hidden, 1, 256);
    check_range("batch", cfg.batch, 1, 65536);
    check_range("n_eval", cfg.n_eval, 1, 1 << 20);
    check_rate("lr", cfg.lr, 0.0f, 1.0f, true);
    check_rate("router_init_std", cfg.router_init_std, 0.0f, 10.0f, false);
    const int s = static_cast<int>(cfg.scheme);
    if (s < 0 || s >= kNumSchemes) bad("scheme", std::to_string(s), "one of " + supported_schemes());
    if (!mix2d_supports(cfg.scheme))
        bad("scheme", scheme_name(cfg.scheme),
            "one of " + supported_schemes() + " (the others need token ids, noise weights or a fixed batch shape)");
    check_range("k", cfg.k, 1, cfg.n_experts);
    if (cfg.scheme == Scheme::GShardTop2 && cfg.n_experts < 2)
        bad("scheme", "gshard_top2 with n_experts = 1", "at least 2 experts for top-2 routing");
    check_rate("alpha", cfg.alpha, 0.0f, 100.0f, false);
    check_rate("beta", cfg.beta, 0.0f, 100.0f, false);
    check_rate("bias_rate", cfg.bias_rate, 0.0f, 10.0f, false);
    check_rate("jitter_eps", cfg.jitter_eps, 0.0f, 1.0f, false);
    if (cfg.expert_bias && cfg.scheme != Scheme::SigmoidBias)
        bad("expert_bias", std::string("on with scheme ") + scheme_name(cfg.scheme),
            "the aux-loss-free bias steers selection in sigmoid_bias only: set scheme sigmoid_bias or turn the bias off");
}

Mix2dConfig apply_balance(Mix2dConfig cfg, Mix2dBalance balance) {
    cfg.z_loss = false;
    switch (balance) {
        case Mix2dBalance::None:
            cfg.scheme = Scheme::Switch;
            cfg.k = 1;
            cfg.switch_loss = false;
            cfg.expert_bias = false;
            break;
        case Mix2dBalance::Switch:
            cfg.scheme = Scheme::Switch;
            cfg.k = 1;
            cfg.switch_loss = true;
            cfg.expert_bias = false;
            break;
        case Mix2dBalance::Bias:
            // K = 2: with K = 1 SigmoidBias's gate s_i / s_i is always 1 and the router gets
            // no gradient at all; DeepSeek-V3 routes each token to several experts too.
            cfg.scheme = Scheme::SigmoidBias;
            cfg.k = std::min(2, cfg.n_experts);
            cfg.switch_loss = false;
            cfg.expert_bias = true;
            break;
    }
    return cfg;
}

// [SECTION] Helpers
namespace {

void fill_normal(float* p, Eigen::Index n, float std, std::mt19937_64& rng) {
    std::normal_distribution<float> nd(0.0f, std);
    for (Eigen::Index i = 0; i < n; ++i) p[i] = nd(rng);
}

void fill_uniform(float* p, Eigen::Index n, float lo, float hi, std::mt19937_64& rng) {
    std::uniform_real_distribution<float> ud(lo, hi);
    for (Eigen::Index i = 0; i < n; ++i) p[i] = ud(rng);
}

// Adam (Kingma & Ba) with bias correction, on a flat array; t counts from 1.
void adam(float* w, const float* g, float* m, float* v, Eigen::Index n, float lr, int t) {
    constexpr float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    const float c1 = 1.0f - std::pow(b1, static_cast<float>(t));
    const float c2 = 1.0f - std::pow(b2, static_cast<float>(t));
    for (Eigen::Index i = 0; i < n; ++i) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
    }
}

// Load statistics the lessons quote, from kept pairs per expert.
void load_stats(const std::vector<int>& load, float& cv, int& n_idle) {
    const double n = static_cast<double>(load.size());
    double mean = 0.0;
    for (int l : load) mean += l;
    mean /= n;
    double var = 0.0;
    for (int l : load) var += (l - mean) * (l - mean);
    var /= n;
    cv = mean > 0 ? static_cast<float>(std::sqrt(var) / mean) : 0.0f;
    n_idle = 0;
    for (int l : load)
        if (l < 0.1 * mean) ++n_idle;
}

}  // namespace

// [SECTION] Trainer: init and toggles
Mix2dTrainer::Mix2dTrainer(const Mix2dConfig& cfg) : cfg_(cfg) {
    validate(cfg_);
    reset();
}

void Mix2dTrainer::reset(const Mix2dConfig& cfg) {
    validate(cfg);
    cfg_ = cfg;
    reset();
}

void Mix2dTrainer::reset() {
    const int n = cfg_.n_experts, hd = cfg_.hidden;
    step_ = 0;
    rng_.seed(splitmix64(cfg_.seed));

    // Router: small random weights, so it starts nearly uniform and the symmetry breaking
    // (collapse or not) is the training's doing.
    w_router_.resize(n, 2);
    fill_normal(w_router_.data(), w_router_.size(), cfg_.router_init_std, rng_);
    b_router_ = Vec::Zero(n);
    b_select_ = Vec::Zero(n);

    // Experts: tanh units with hyperplanes spread over the square (weights ~ N(0, 1.5^2),
    // offsets U(-1, 1)); a small output layer so untrained experts predict about 0.
    w1_.assign(n, Mat());
    b1_.assign(n, Vec());
    for (int e = 0; e < n; ++e) {
        w1_[e].resize(hd, 2);
        fill_normal(w1_[e].data(), w1_[e].size(), 1.5f, rng_);
        b1_[e].resize(hd);
        fill_uniform(b1_[e].data(), hd, -1.0f, 1.0f, rng_);
    }
    w2_.resize(n, hd);
    fill_normal(w2_.data(), w2_.size(), 0.5f / std::sqrt(static_cast<float>(hd)), rng_);
    b2_ = Vec::Zero(n);

    g_w_router_ = m_w_router_ = v_w_router_ = Mat::Zero(n, 2);
    g_b_router_ = m_b_router_ = v_b_router_ = Vec::Zero(n);
    g_w1_ = m_w1_ = v_w1_ = std::vector<Mat>(n, Mat::Zero(hd, 2));
    g_b1_ = m_b1_ = v_b1_ = std::vector<Vec>(n, Vec::Zero(hd));
    g_w2_ = m_w2_ = v_w2_ = Mat::Zero(n, hd);
    g_b2_ = m_b2_ = v_b2_ = Vec::Zero(n);

    // Evaluation points come from their own stream so they do not depend on the batch size.
    std::mt19937_64 eval_rng(splitmix64(cfg_.seed ^ 0x5EEDE7A1ull));
    eval_points_.resize(cfg_.n_eval, 2);
    fill_uniform(eval_points_.data(), eval_points_.size(), -1.0f, 1.0f, eval_rng);
    eval_targets_.resize(cfg_.n_eval);
    for (int i = 0; i < cfg_.n_eval; ++i) eval_targets_[i] = mix2d_target(eval_points_(i, 0), eval_points_(i, 1));
}

void Mix2dTrainer::set_checked(const Mix2dConfig& next) {
    validate(next);
    cfg_ = next;
}

void Mix2dTrainer::set_switch_loss(bool on, float alpha) {
    Mix2dConfig c = cfg_;
    c.switch_loss = on;
    c.alpha = alpha;
    set_checked(c);
}

void Mix2dTrainer::set_z_loss(bool on, float beta) {
    Mix2dConfig c = cfg_;
    c.z_loss = on;
    c.beta = beta;
    set_checked(c);
}

void Mix2dTrainer::set_expert_bias(bool on, float rate) {
    Mix2dConfig c = cfg_;
    c.expert_bias = on;
    c.bias_rate = rate;
    set_checked(c);
}

void Mix2dTrainer::set_jitter(float eps) {
    Mix2dConfig c = cfg_;
    c.jitter_eps = eps;
    set_checked(c);
}

void Mix2dTrainer::set_k(int k) {
    Mix2dConfig c = cfg_;
    c.k = k;
    set_checked(c);
}

void Mix2dTrainer::set_scheme(Scheme scheme) {
    Mix2dConfig c = cfg_;
    c.scheme = scheme;
    // Leaving SigmoidBias turns the bias off rather than failing validation: it has no meaning elsewhere.
    if (scheme != Scheme::SigmoidBias) c.expert_bias = false;
    set_checked(c);
}

void Mix2dTrainer::set_balance(Mix2dBalance balance) { set_checked(apply_balance(cfg_, balance)); }

void Mix2dTrainer::set_lr(float lr) {
    Mix2dConfig c = cfg_;
    c.lr = lr;
    set_checked(c);
}

RouterConfig Mix2dTrainer::router_config(uint64_t step_seed) const {
    RouterConfig rc;
    rc.scheme = cfg_.scheme;
    rc.n_experts = cfg_.n_experts;
    rc.k = cfg_.k;
    rc.drop_policy = DropPolicy::Dropless;
    rc.jitter_eps = cfg_.jitter_eps;  // documentation only: this trainer applies the jitter itself
    rc.bias_update_rate = cfg_.bias_rate;
    rc.seed = step_seed;
    return rc;
}

// [SECTION] Trainer: forward
void Mix2dTrainer::forward(ConstMatRef points, ConstMatRef router_in, const RouterConfig& rc,
                           Vec& y_hat, RoutingTrace& trace, Mat* hidden_act, Vec* expert_out) const {
    const Eigen::Index n_pts = points.rows();
    Mat logits = router_in * w_router_.transpose();  // (n_pts, n_experts)
    logits.rowwise() += b_router_.transpose();
    RouteExtras extras;
    if (cfg_.scheme == Scheme::SigmoidBias) extras.expert_bias = &b_select_;
    trace = route(rc, logits, extras);

    const int hd = cfg_.hidden;
    const Eigen::Index n_pairs = static_cast<Eigen::Index>(trace.pairs.size());
    if (hidden_act) hidden_act->setZero(n_pairs, hd);
    if (expert_out) expert_out->setZero(n_pairs);
    y_hat.setZero(n_pts);
    Vec h(hd);  // (hidden)
    for (Eigen::Index p = 0; p < n_pairs; ++p) {
        const RoutedPair& pr = trace.pairs[p];
        if (pr.dropped) continue;
        const int e = pr.expert;
        const float px = points(pr.token, 0), py = points(pr.token, 1);
        for (int j = 0; j < hd; ++j) h[j] = std::tanh(w1_[e](j, 0) * px + w1_[e](j, 1) * py + b1_[e][j]);
        const float out = w2_.row(e).dot(h.transpose()) + b2_[e];
        y_hat[pr.token] += pr.gate * out;
        if (hidden_act) hidden_act->row(p) = h.transpose();
        if (expert_out) (*expert_out)[p] = out;
    }
}

// [SECTION] Trainer: step (backward + Adam)
float Mix2dTrainer::loss_and_grad(ConstMatRef points, ConstMatRef router_in, const Vec& target,
                                  const RouterConfig& rc, RoutingTrace& trace, float& mse) {
    const Eigen::Index n_pts = points.rows();
    const int n = cfg_.n_experts, hd = cfg_.hidden;
    Vec y_hat;             // (batch)
    Mat hidden_act;        // (n_pairs, hidden)
    Vec expert_out;        // (n_pairs)
    forward(points, router_in, rc, y_hat, trace, &hidden_act, &expert_out);

    // L = mean (y_hat - target)^2.
    const Vec resid = y_hat - target;  // (batch)
    mse = resid.squaredNorm() / static_cast<float>(n_pts);
    const Vec d_y = resid * (2.0f / static_cast<float>(n_pts));  // (batch)

    // Experts and gates.
    for (Mat& g : g_w1_) g.setZero();
    for (Vec& g : g_b1_) g.setZero();
    g_w2_.setZero();
    g_b2_.setZero();
    std::vector<float> d_gate(trace.pairs.size(), 0.0f);  // (n_pairs)
    Vec d_h(hd);  // (hidden)
    for (size_t p = 0; p < trace.pairs.size(); ++p) {
        const RoutedPair& pr = trace.pairs[p];
        if (pr.dropped) continue;
        const int e = pr.expert;
        const Eigen::Index pi = static_cast<Eigen::Index>(p);
        d_gate[p] = d_y[pr.token] * expert_out[pi];
        const float d_out = d_y[pr.token] * pr.gate;
        g_b2_[e] += d_out;
        g_w2_.row(e) += d_out * hidden_act.row(pi);
        for (int j = 0; j < hd; ++j) {
            const float hj = hidden_act(pi, j);
            d_h[j] = d_out * w2_(e, j) * (1.0f - hj * hj);
        }
        g_b1_[e] += d_h;
        g_w1_[e].col(0) += d_h * points(pr.token, 0);
        g_w1_[e].col(1) += d_h * points(pr.token, 1);
    }

    // Router: through the gates, plus the balancing losses, all by the shared routing code.
    Mat d_logits = Mat::Zero(n_pts, n);  // (batch, n_experts)
    gate_backward(rc, trace, d_gate, d_logits);
    float total = mse;
    if (cfg_.switch_loss && cfg_.alpha > 0.0f) {
        aux_loss_backward(trace, cfg_.alpha, d_logits);
        total += cfg_.alpha * trace.stats.aux_loss;
    }
    if (cfg_.z_loss && cfg_.beta > 0.0f) {
        z_loss_backward(trace, cfg_.beta, d_logits);
        total += cfg_.beta * trace.stats.z_loss;
    }

    g_w_router_ = d_logits.transpose() * router_in;
    g_b_router_ = d_logits.colwise().sum().transpose();
    return total;
}

Mix2dMetrics Mix2dTrainer::step() {
    const int n_pts = cfg_.batch;

    Mat points(n_pts, 2);  // (batch, 2)
    fill_uniform(points.data(), points.size(), -1.0f, 1.0f, rng_);
    Mat router_in = points;  // (batch, 2) after jitter
    if (cfg_.jitter_eps > 0.0f) {
        std::uniform_real_distribution<float> jit(1.0f - cfg_.jitter_eps, 1.0f + cfg_.jitter_eps);
        for (Eigen::Index i = 0; i < router_in.size(); ++i) router_in.data()[i] *= jit(rng_);
    }
    Vec target(n_pts);  // (batch)
    for (int i = 0; i < n_pts; ++i) target[i] = mix2d_target(points(i, 0), points(i, 1));

    const RouterConfig rc = router_config(splitmix64(cfg_.seed * 0x100000001B3ull + static_cast<uint64_t>(step_)));
    RoutingTrace trace;
    float mse = 0.0f;
    const float total = loss_and_grad(points, router_in, target, rc, trace, mse);

    ++step_;
    adam_update();
    if (cfg_.expert_bias) update_expert_bias(b_select_, trace, cfg_.bias_rate);

    Mix2dMetrics m;
    m.step = step_;
    m.loss = mse;
    m.aux_loss = trace.stats.aux_loss;
    m.z_loss = trace.stats.z_loss;
    m.total_loss = total;
    m.load = trace.expert_load;
    load_stats(m.load, m.load_cv, m.n_idle);
    return m;
}

void Mix2dTrainer::adam_update() {
    const float lr = cfg_.lr;
    const int t = step_;
    adam(w_router_.data(), g_w_router_.data(), m_w_router_.data(), v_w_router_.data(), w_router_.size(), lr, t);
    adam(b_router_.data(), g_b_router_.data(), m_b_router_.data(), v_b_router_.data(), b_router_.size(), lr, t);
    for (size_t e = 0; e < w1_.size(); ++e) {
        adam(w1_[e].data(), g_w1_[e].data(), m_w1_[e].data(), v_w1_[e].data(), w1_[e].size(), lr, t);
        adam(b1_[e].data(), g_b1_[e].data(), m_b1_[e].data(), v_b1_[e].data(), b1_[e].size(), lr, t);
    }
    adam(w2_.data(), g_w2_.data(), m_w2_.data(), v_w2_.data(), w2_.size(), lr, t);
    adam(b2_.data(), g_b2_.data(), m_b2_.data(), v_b2_.data(), b2_.size(), lr, t);
}

// [SECTION] Trainer: evaluation and region maps
Mix2dEval Mix2dTrainer::evaluate() const {
    Vec y_hat;
    RoutingTrace trace;
    forward(eval_points_, eval_points_, router_config(cfg_.seed), y_hat, trace, nullptr, nullptr);
    Mix2dEval ev;
    ev.loss = (y_hat - eval_targets_).squaredNorm() / static_cast<float>(cfg_.n_eval);
    ev.load = trace.expert_load;
    load_stats(ev.load, ev.load_cv, ev.n_idle);
    return ev;
}

Mix2dRegions Mix2dTrainer::sample_regions(int width, int height) const {
    constexpr int kMaxSide = 4096;
    if (width < 1 || width > kMaxSide)
        throw Error("Mix2dTrainer::sample_regions", "width", "width = " + std::to_string(width), "1..4096 cells");
    if (height < 1 || height > kMaxSide)
        throw Error("Mix2dTrainer::sample_regions", "height", "height = " + std::to_string(height), "1..4096 cells");
    const int n_cells = width * height;
    Mat points(n_cells, 2);  // (n_cells, 2) cell centres, row-major over the picture
    for (int r = 0; r < height; ++r) {
        for (int c = 0; c < width; ++c) {
            points(r * width + c, 0) = -1.0f + (static_cast<float>(c) + 0.5f) * 2.0f / static_cast<float>(width);
            points(r * width + c, 1) = 1.0f - (static_cast<float>(r) + 0.5f) * 2.0f / static_cast<float>(height);
        }
    }
    Vec y_hat;
    RoutingTrace trace;
    forward(points, points, router_config(cfg_.seed), y_hat, trace, nullptr, nullptr);

    Mix2dRegions out;
    out.width = width;
    out.height = height;
    out.expert.assign(n_cells, -1);
    out.gate.assign(n_cells, 0.0f);
    out.prediction.assign(y_hat.data(), y_hat.data() + n_cells);
    out.target.resize(n_cells);
    for (int i = 0; i < n_cells; ++i) {
        out.target[i] = mix2d_target(points(i, 0), points(i, 1));
        for (const RoutedPair& pr : trace.token_pairs(i)) {
            if (pr.dropped) continue;
            if (out.expert[i] < 0 || pr.gate > out.gate[i]) {
                out.expert[i] = pr.expert;
                out.gate[i] = pr.gate;
            }
        }
    }
    return out;
}

}  // namespace moe
