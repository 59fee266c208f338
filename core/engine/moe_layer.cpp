// The MoE FFN layer (MOE_REFERENCE.md §1, §3, §6), written once against core/engine/backend.h.
//
// [SECTION] Small functions   activations, names
// [SECTION] Config            validate, count_params
// [SECTION] Init              seeded scaled-normal weights
// [SECTION] Reference         expert_forward_reference: plain Eigen, obviously correct
// [SECTION] MoeLayer          packing, forward: jitter -> logits -> route -> sort -> gather
//                             -> grouped experts -> combine (+ shared experts)
#include "core/engine/moe_layer.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "core/engine/backend.h"
#include "core/error.h"
#include "core/engine/rng.h"
#include "core/io/limits.h"

namespace moe {

// [SECTION] Small functions
const char* activation_name(Activation a) {
    switch (a) {
        case Activation::GELU: return "gelu";
        case Activation::SwiGLU: return "swiglu";
    }
    return "?";
}

float gelu(float x) {
    const float k = static_cast<float>(std::numbers::sqrt2 / std::sqrt(std::numbers::pi));
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }

namespace {

// Independent stream per (seed, tensor index): weights do not depend on the thread count.
uint64_t mix(uint64_t seed, uint64_t index) {
    Rng r(seed ^ (index * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL));
    return r.next();
}


int d_ff_shared_of(const MoeLayerConfig& cfg) { return cfg.d_ff_shared > 0 ? cfg.d_ff_shared : cfg.d_ff; }

int64_t expert_params(const MoeLayerConfig& cfg, int d_ff) {
    const int64_t d = cfg.d_model;
    if (cfg.activation == Activation::SwiGLU) return 3 * d * d_ff;
    return 2 * d * d_ff + (cfg.expert_biases ? d_ff + d : 0);
}

}  // namespace

// [SECTION] Config
void validate(const MoeLayerConfig& cfg) {
    const char* where = "MoeLayerConfig";
    // Limits keep every index in int and a layer within what a desktop holds; the largest
    // published layers (DeepSeek-V3: d_model 7168, 256 experts of d_ff 2048) fit easily.
    constexpr int kMaxDim = 1 << 16;
    constexpr int64_t kMaxParams = int64_t{1} << 31;  // 8 GiB of floats
    if (cfg.d_model < 1 || cfg.d_model > kMaxDim)
        throw Error(where, "d_model", "is " + num(cfg.d_model), "expected 1.." + num(kMaxDim));
    if (cfg.d_ff < 1 || cfg.d_ff > 4 * kMaxDim)
        throw Error(where, "d_ff", "is " + num(cfg.d_ff), "expected 1.." + num(4 * kMaxDim));
    if (cfg.n_experts < 1 || cfg.n_experts > kMaxLayerExperts)
        throw Error(where, "n_experts", "is " + num(cfg.n_experts), "expected 1.." + num(kMaxLayerExperts));
    if (cfg.n_shared < 0 || cfg.n_shared > 64)
        throw Error(where, "n_shared", "is " + num(cfg.n_shared), "expected 0..64");
    if (cfg.d_ff_shared < 0 || cfg.d_ff_shared > 4 * kMaxDim)
        throw Error(where, "d_ff_shared", "is " + num(cfg.d_ff_shared),
                    "expected 0 (same as d_ff) .. " + num(4 * kMaxDim));
    const int a = static_cast<int>(cfg.activation);
    if (a != static_cast<int>(Activation::GELU) && a != static_cast<int>(Activation::SwiGLU))
        throw Error(where, "activation", "is " + num(a), "expected gelu (0) or swiglu (1)");
    if (cfg.expert_biases && cfg.activation != Activation::GELU)
        throw Error(where, "expert_biases", "is on with activation swiglu",
                    "expert biases b1/b2 exist for GELU experts only");
    const int64_t per_matrix = int64_t{cfg.d_model} * std::max(cfg.d_ff, d_ff_shared_of(cfg));
    if (per_matrix > kMaxParams)
        throw Error(where, "d_model * d_ff", "is " + num(per_matrix),
                    "one expert matrix may hold at most " + num(kMaxParams) + " values");
    const int64_t total = count_params(cfg, false, 0);
    if (total > kMaxParams)
        throw Error(where, "n_experts * d_model * d_ff", "gives " + num(total) + " parameters",
                    "at most " + num(kMaxParams) + " per layer; use fewer or smaller experts");
}

// Router N*d (+N) + experts + shared experts (MOE_REFERENCE §5). The noisy top-K noise
// projection is not counted: it only exists for that scheme and no published count includes it.
int64_t count_params(const MoeLayerConfig& cfg, bool active_only, int k) {
    if (active_only && (k < 0 || k > cfg.n_experts))
        throw Error("count_params", "k", "is " + num(k), "expected 0.." + num(cfg.n_experts));
    const int64_t router = int64_t{cfg.n_experts} * cfg.d_model + (cfg.router_bias ? cfg.n_experts : 0);
    const int64_t routed = expert_params(cfg, cfg.d_ff) * (active_only ? k : cfg.n_experts);
    const int64_t shared = expert_params(cfg, d_ff_shared_of(cfg)) * cfg.n_shared;
    return router + routed + shared;
}

// [SECTION] Init
namespace {

ExpertWeights init_expert(const MoeLayerConfig& cfg, int d_ff, uint64_t seed) {
    // Scaled normal: std 1/sqrt(fan_in), so activations keep their scale through the expert.
    Rng rng(seed);
    ExpertWeights e;
    e.w1.resize(d_ff, cfg.d_model);
    rng.fill_normal(e.w1.data(), e.w1.size(), 1.0f / std::sqrt(static_cast<float>(cfg.d_model)));
    if (cfg.activation == Activation::SwiGLU) {
        e.w3.resize(d_ff, cfg.d_model);
        rng.fill_normal(e.w3.data(), e.w3.size(), 1.0f / std::sqrt(static_cast<float>(cfg.d_model)));
    }
    e.w2.resize(cfg.d_model, d_ff);
    rng.fill_normal(e.w2.data(), e.w2.size(), 1.0f / std::sqrt(static_cast<float>(d_ff)));
    if (cfg.expert_biases) {
        e.b1 = Vec::Zero(d_ff);
        e.b2 = Vec::Zero(cfg.d_model);
    }
    return e;
}

}  // namespace

MoeLayerWeights init_moe_layer(const MoeLayerConfig& cfg, uint64_t seed) {
    validate(cfg);
    MoeLayerWeights w;
    w.w_router.resize(cfg.n_experts, cfg.d_model);
    Rng(mix(seed, 0)).fill_normal(w.w_router.data(), w.w_router.size(),
                                  1.0f / std::sqrt(static_cast<float>(cfg.d_model)));
    if (cfg.router_bias) w.b_router = Vec::Zero(cfg.n_experts);
    // Shazeer et al. 2017 start W_noise at zero: noise std softplus(0) = 0.69 for every expert.
    w.w_noise = Mat::Zero(cfg.n_experts, cfg.d_model);
    w.expert_bias = Vec::Zero(cfg.n_experts);
    w.experts.resize(cfg.n_experts);
    w.shared.resize(cfg.n_shared);
    const int n_total = cfg.n_experts + cfg.n_shared;
    // Threads only pay off for big layers; tests build hundreds of tiny ones.
#pragma omp parallel for schedule(dynamic) if (count_params(cfg, false, 0) > (int64_t{1} << 20))
    for (int i = 0; i < n_total; ++i) {
        if (i < cfg.n_experts)
            w.experts[i] = init_expert(cfg, cfg.d_ff, mix(seed, 1 + i));
        else
            w.shared[i - cfg.n_experts] = init_expert(cfg, d_ff_shared_of(cfg), mix(seed, 1 + i));
    }
    return w;
}

// [SECTION] Reference
void expert_forward_reference(const ExpertWeights& e, Activation act, ConstMatRef x, Mat& y) {
    Mat h = x * e.w1.transpose();  // (n_rows, d_ff)
    if (e.b1.size() > 0) h.rowwise() += e.b1.transpose();
    if (act == Activation::GELU) {
        h = h.unaryExpr([](float v) { return gelu(v); });
    } else {
        const Mat lin = x * e.w3.transpose();  // (n_rows, d_ff)
        h = h.unaryExpr([](float v) { return silu(v); }).cwiseProduct(lin);
    }
    y = h * e.w2.transpose();  // (n_rows, d_model)
    if (e.b2.size() > 0) y.rowwise() += e.b2.transpose();
}

// [SECTION] MoeLayer
struct MoeLayer::Packed {
    const Backend* backend = nullptr;                     // who packed these
    std::unique_ptr<PackedExperts> routed;                // (n_experts)
    std::vector<std::unique_ptr<PackedExperts>> shared;   // (n_shared) one pack each: their
                                                          // intermediates are cached apart
};

namespace {

void check_shape(const Mat& m, int64_t rows, int64_t cols, const std::string& field, bool may_be_empty) {
    if (may_be_empty && m.size() == 0) return;
    if (m.rows() != rows || m.cols() != cols)
        throw Error("MoeLayerWeights", field,
                    "has shape (" + num(m.rows()) + ", " + num(m.cols()) + ")",
                    "expected (" + num(rows) + ", " + num(cols) + ")");
}

void check_len(const Vec& v, int64_t n, const std::string& field) {
    if (v.size() != 0 && v.size() != n)
        throw Error("MoeLayerWeights", field, "has length " + num(v.size()),
                    "expected " + num(n) + " or empty");
}

void check_expert(const ExpertWeights& e, const MoeLayerConfig& cfg, int d_ff, const std::string& name) {
    check_shape(e.w1, d_ff, cfg.d_model, name + ".w1", false);
    if (cfg.activation == Activation::SwiGLU)
        check_shape(e.w3, d_ff, cfg.d_model, name + ".w3", false);
    check_shape(e.w2, cfg.d_model, d_ff, name + ".w2", false);
    check_len(e.b1, d_ff, name + ".b1");
    check_len(e.b2, cfg.d_model, name + ".b2");
}

// experts_packed: the experts live only in a backend's pack (MoeLayer's second constructor).
void check_weights(const MoeLayerConfig& cfg, const MoeLayerWeights& w, bool experts_packed = false) {
    check_shape(w.w_router, cfg.n_experts, cfg.d_model, "w_router", false);
    check_len(w.b_router, cfg.n_experts, "b_router");
    check_shape(w.w_noise, cfg.n_experts, cfg.d_model, "w_noise", true);
    check_len(w.expert_bias, cfg.n_experts, "expert_bias");
    if (experts_packed) return;
    if (static_cast<int>(w.experts.size()) != cfg.n_experts)
        throw Error("MoeLayerWeights", "experts", "has " + num(w.experts.size()) + " experts",
                    "expected n_experts = " + num(cfg.n_experts));
    if (static_cast<int>(w.shared.size()) != cfg.n_shared)
        throw Error("MoeLayerWeights", "shared", "has " + num(w.shared.size()) + " experts",
                    "expected n_shared = " + num(cfg.n_shared));
    for (int e = 0; e < cfg.n_experts; ++e)
        check_expert(w.experts[e], cfg, cfg.d_ff, "experts[" + num(e) + "]");
    for (int s = 0; s < cfg.n_shared; ++s)
        check_expert(w.shared[s], cfg, d_ff_shared_of(cfg), "shared[" + num(s) + "]");
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

MoeLayer::MoeLayer(MoeLayerConfig cfg, MoeLayerWeights weights)
    : cfg_(cfg), w_(std::move(weights)), backend_(&cpu_backend()) {
    validate(cfg_);
    check_weights(cfg_, w_);
}

MoeLayer::MoeLayer(MoeLayerConfig cfg, MoeLayerWeights weights, const Backend& packed_by,
                   std::unique_ptr<PackedExperts> routed)
    : cfg_(cfg), w_(std::move(weights)), backend_(&packed_by), packed_only_(true) {
    validate(cfg_);
    check_weights(cfg_, w_, true);
    MOE_ASSERT(routed && routed->n_experts == cfg_.n_experts && routed->d_model == cfg_.d_model &&
                   routed->d_ff == cfg_.d_ff && routed->activation == cfg_.activation,
               "a packed-only layer's pack matches its config");
    MOE_ASSERT(cfg_.n_shared == 0 && w_.experts.empty() && w_.shared.empty(),
               "a packed-only layer holds no FP32 experts and no shared experts");
    packed_ = std::make_unique<Packed>();
    packed_->backend = &packed_by;
    packed_->routed = std::move(routed);
}

MoeLayer::~MoeLayer() = default;
MoeLayer::MoeLayer(MoeLayer&&) noexcept = default;
MoeLayer& MoeLayer::operator=(MoeLayer&&) noexcept = default;

MoeLayerWeights& MoeLayer::mutable_weights() {
    if (!packed_only_) packed_.reset();  // packed-only: the experts are not in w_, nothing to redo
    return w_;
}

void MoeLayer::set_backend(const Backend& backend) {
    if (packed_only_ && &backend != backend_)
        throw Error("MoeLayer::set_backend", "backend", std::string("is ") + backend.name() + ", but this layer's experts are held packed for " +
                                                            backend_->name() + " only (no FP32 copy is kept to repack from)",
                    "run this model on the CPU");
    if (&backend != backend_) packed_.reset();
    backend_ = &backend;
}

void MoeLayer::router_logits(ConstMatRef x, Mat& logits) const {
    if (x.cols() != cfg_.d_model)
        throw Error("MoeLayer::router_logits", "x", "has " + num(x.cols()) + " columns",
                    "expected d_model = " + num(cfg_.d_model));
    backend_->router_logits(x, w_.w_router, w_.b_router, logits);
}

void MoeLayer::forward(ConstMatRef x, const RouterConfig& rc, std::span<const int32_t> token_ids,
                       Mat& y, RoutingTrace& trace, MoeForwardCache* cache,
                       MoeForwardProfile* profile) const {
    const char* where = "MoeLayer::forward";
    const Clock::time_point t_start = Clock::now();
    const int n_tokens = static_cast<int>(x.rows());
    const int d_model = cfg_.d_model;
    if (x.cols() != d_model)
        throw Error(where, "x", "has " + num(x.cols()) + " columns", "expected d_model = " + num(d_model));
    if (rc.n_experts != cfg_.n_experts)
        throw Error(where, "RouterConfig.n_experts", "is " + num(rc.n_experts),
                    "the layer has " + num(cfg_.n_experts) + " experts");
    if (!(rc.jitter_eps >= 0.0f && rc.jitter_eps <= 1.0f))
        throw Error(where, "RouterConfig.jitter_eps", "is " + std::to_string(rc.jitter_eps),
                    "expected 0 <= eps <= 1 (input scaled by U(1-eps, 1+eps))");
    if (rc.scheme == Scheme::NoisyTopK && w_.w_noise.size() == 0)
        throw Error(where, "w_noise", "is empty", "noisy top-K needs a (n_experts, d_model) noise projection");
    validate(rc, n_tokens);
    const Backend& be = *backend_;

    if (!packed_ || packed_->backend != &be) {
        auto packed = std::make_unique<Packed>();
        packed->backend = &be;
        packed->routed = be.pack_experts(w_.experts, cfg_.activation);
        for (const ExpertWeights& s : w_.shared)
            packed->shared.push_back(be.pack_experts(std::span<const ExpertWeights>(&s, 1), cfg_.activation));
        packed_ = std::move(packed);
    }

    // Router input: jitter (Switch) multiplies it by U(1-eps, 1+eps); the experts see clean x.
    Clock::time_point t0 = Clock::now();
    Mat jittered;  // (n_tokens, d_model), only when jitter is on
    if (rc.jitter_eps > 0.0f) {
        jittered = x;
        Rng rng(mix(rc.seed, 0x6a17));
        const double eps = rc.jitter_eps;
        float* p = jittered.data();
        for (int64_t i = 0; i < jittered.size(); ++i)
            p[i] *= static_cast<float>(1.0 - eps + 2.0 * eps * rng.uniform());
    }
    const ConstMatRef x_router = rc.jitter_eps > 0.0f ? ConstMatRef(jittered) : x;
    Mat logits;        // (n_tokens, n_experts)
    Mat noise_logits;  // (n_tokens, n_experts), noisy top-K only
    be.router_logits(x_router, w_.w_router, w_.b_router, logits);
    RouteExtras extras;
    if (rc.scheme == Scheme::NoisyTopK) {
        be.router_logits(x_router, w_.w_noise, Vec(), noise_logits);
        extras.noise_logits = &noise_logits;
    }
    extras.token_ids = token_ids;
    if (w_.expert_bias.size() == cfg_.n_experts) extras.expert_bias = &w_.expert_bias;
    if (cache) cache->x_router = x_router;
    if (profile) profile->router_s = seconds_since(t0);

    t0 = Clock::now();
    trace = route(rc, logits, extras);
    if (profile) profile->route_s = seconds_since(t0);

    // Counting sort of the kept pairs by expert, stable, so each expert's rows stay in token order.
    t0 = Clock::now();
    const int n_experts = cfg_.n_experts;
    std::vector<int> expert_begin(n_experts + 1, 0);  // (n_experts + 1)
    for (const RoutedPair& p : trace.pairs)
        if (!p.dropped) ++expert_begin[p.expert + 1];
    for (int e = 0; e < n_experts; ++e) expert_begin[e + 1] += expert_begin[e];
    const int n_kept = expert_begin[n_experts];
    std::vector<int> order(n_kept);        // (n_kept) pair index
    std::vector<int> row_token(n_kept);    // (n_kept)
    std::vector<float> row_gate(n_kept);   // (n_kept)
    {
        std::vector<int> fill(expert_begin.begin(), expert_begin.end() - 1);
        const int n_pairs = static_cast<int>(trace.pairs.size());
        for (int i = 0; i < n_pairs; ++i) {
            const RoutedPair& p = trace.pairs[i];
            if (p.dropped) continue;
            const int r = fill[p.expert]++;
            order[r] = i;
            row_token[r] = p.token;
            row_gate[r] = p.gate;
        }
    }
    if (profile) profile->sort_s = seconds_since(t0);

    t0 = Clock::now();
    Mat xs;  // (n_kept, d_model) rows gathered per expert
    be.gather_rows(x, row_token, xs);
    if (profile) profile->gather_s = seconds_since(t0);

    t0 = Clock::now();
    Mat local_out;  // (n_kept, d_model) E_i(x_t) before the gate
    Mat& out = cache ? cache->expert_out : local_out;
    ExpertIntermediates keep;
    if (cache) keep = {&cache->h_pre, &cache->h_lin, &cache->h_act};
    be.expert_ffn_grouped(*packed_->routed, xs, expert_begin, out, cache ? &keep : nullptr);
    if (profile) profile->experts_s = seconds_since(t0);

    t0 = Clock::now();
    y.setZero(n_tokens, d_model);
    be.combine(out, row_token, row_gate, y);
    double combine_s = seconds_since(t0);

    // Shared experts: every token, weight 1; skipped entirely when the knob turns them off, and
    // then the cache holds no shared intermediates (a backward must skip them too).
    t0 = Clock::now();
    const int n_shared_run = rc.shared_experts ? cfg_.n_shared : 0;
    if (cache) {
        cache->shared_h_pre.resize(n_shared_run);
        cache->shared_h_lin.resize(n_shared_run);
        cache->shared_h_act.resize(n_shared_run);
    }
    double shared_combine_s = 0;
    if (n_shared_run > 0) {
        std::vector<int> all_tokens(n_tokens);  // (n_tokens)
        for (int t = 0; t < n_tokens; ++t) all_tokens[t] = t;
        const std::vector<float> ones(n_tokens, 1.0f);
        const int begin_end[2] = {0, n_tokens};
        Mat shared_out;  // (n_tokens, d_model)
        for (int s = 0; s < n_shared_run; ++s) {
            ExpertIntermediates keep_s;
            if (cache) keep_s = {&cache->shared_h_pre[s], &cache->shared_h_lin[s], &cache->shared_h_act[s]};
            be.expert_ffn_grouped(*packed_->shared[s], x, begin_end, shared_out, cache ? &keep_s : nullptr);
            const Clock::time_point tc = Clock::now();
            be.combine(shared_out, all_tokens, ones, y);
            shared_combine_s += seconds_since(tc);
        }
    }
    if (cache) {
        cache->order = std::move(order);
        cache->expert_begin = std::move(expert_begin);
    }
    if (profile) {
        profile->shared_s = seconds_since(t0) - shared_combine_s;
        profile->combine_s = combine_s + shared_combine_s;
        profile->total_s = seconds_since(t_start);
    }
}

}  // namespace moe
