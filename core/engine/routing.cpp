// Routing engine: every scheme of MOE_REFERENCE.md §2, capacity (§3), balancing statistics and
// their gradients (§4). See core/engine/routing.h for the contract.
//
// [SECTION] Names and tooltips
// [SECTION] Validation
// [SECTION] Helpers (PRNG, top-K, groups, softmax)
// [SECTION] Token-choice schemes
// [SECTION] Expert Choice
// [SECTION] BASE (balanced assignment)
// [SECTION] Capacity
// [SECTION] Statistics
// [SECTION] route()
// [SECTION] Bias update
// [SECTION] Gradients
#include "core/engine/routing.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>

#include "core/error.h"
#include "core/io/limits.h"
#include "core/engine/rng.h"

namespace moe {

// [SECTION] Names and tooltips
namespace {

struct SchemeInfo {
    Scheme scheme;
    const char* name;
    const char* label;
    const char* tooltip;
};

// One table so the name, the label and the tooltip of a scheme can never disagree.
constexpr std::array<SchemeInfo, kNumSchemes> kSchemes = {{
    {Scheme::Soft, "soft", "Soft / dense mixture (Jacobs 1991)",
     "Every expert runs on every token, weighted by softmax(h): exact but no sparsity saving."},
    {Scheme::TopKMixtral, "topk_mixtral", "Top-K softmax (Mixtral)",
     "Keep the K largest logits and softmax over just those K, so the gates always sum to 1."},
    {Scheme::TopKGShard, "topk_gshard", "Top-K softmax (GShard/Switch)",
     "Softmax over all experts first, keep the K largest probabilities (optionally renormalised)."},
    {Scheme::NoisyTopK, "noisy_topk", "Noisy top-K (Shazeer 2017)",
     "Add learned, scaled Gaussian noise to the logits before top-K so quiet experts get tried."},
    {Scheme::Switch, "switch", "Switch top-1 (Fedus 2021)",
     "One expert per token with its raw softmax probability as gate; overflow past capacity drops."},
    {Scheme::GShardTop2, "gshard_top2", "GShard top-2 (Lepikhin 2020)",
     "Always the best expert; the second only with probability min(1, 2 p2), saving capacity."},
    {Scheme::ExpertChoice, "expert_choice", "Expert Choice (Zhou 2022)",
     "Experts pick their top-c tokens instead: perfect balance, but a token may get 0..N experts."},
    {Scheme::Hash, "hash", "Hash routing (Roller 2021)",
     "A fixed hash of the token id picks the experts: no learned router, balanced by construction."},
    {Scheme::Base, "base", "BASE layers (Lewis 2021)",
     "Solve a balanced assignment: every expert takes exactly T/N tokens, maximising total score."},
    {Scheme::Sinkhorn, "sinkhorn", "Sinkhorn balanced (S-BASE)",
     "Rescale exp(h) rows and columns until balanced, then top-K: cheap approximate balancing."},
    {Scheme::SigmoidBias, "sigmoid_bias", "Aux-loss-free bias (DeepSeek-V3)",
     "Sigmoid scores plus a per-expert bias choose the experts; the bias never touches the gates."},
}};

const SchemeInfo* find_info(Scheme s) {
    for (const SchemeInfo& info : kSchemes)
        if (info.scheme == s) return &info;
    return nullptr;
}

}  // namespace

const char* scheme_name(Scheme s) {
    const SchemeInfo* info = find_info(s);
    return info ? info->name : "unknown";
}
const char* scheme_label(Scheme s) {
    const SchemeInfo* info = find_info(s);
    return info ? info->label : "Unknown scheme";
}
const char* scheme_tooltip(Scheme s) {
    const SchemeInfo* info = find_info(s);
    return info ? info->tooltip : "";
}
std::optional<Scheme> scheme_from_name(std::string_view name) {
    for (const SchemeInfo& info : kSchemes)
        if (name == info.name) return info.scheme;
    return std::nullopt;
}

const char* drop_policy_name(DropPolicy p) {
    switch (p) {
        case DropPolicy::Dropless: return "dropless";
        case DropPolicy::Position: return "position";
        case DropPolicy::Score: return "score";
    }
    return "unknown";
}
std::optional<DropPolicy> drop_policy_from_name(std::string_view name) {
    for (DropPolicy p : {DropPolicy::Dropless, DropPolicy::Position, DropPolicy::Score})
        if (name == drop_policy_name(p)) return p;
    return std::nullopt;
}

// [SECTION] Validation
namespace {

constexpr const char* kWhere = "RouterConfig";
constexpr int kMaxSinkhornIters = 1000;  // beyond this the balance no longer changes; a typo guard

std::string fmt(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

bool is_token_choice(Scheme s) {
    return s != Scheme::Soft && s != Scheme::ExpertChoice && s != Scheme::Base;
}

// Schemes that group-limited routing (DeepSeek-V2/V3) wraps.
bool supports_groups(Scheme s) {
    return s == Scheme::TopKMixtral || s == Scheme::TopKGShard || s == Scheme::NoisyTopK ||
           s == Scheme::Switch || s == Scheme::SigmoidBias || s == Scheme::Sinkhorn;
}

// Schemes whose K comes from cfg.k (the others force it).
bool uses_cfg_k(Scheme s) {
    return s == Scheme::TopKMixtral || s == Scheme::TopKGShard || s == Scheme::NoisyTopK ||
           s == Scheme::Hash || s == Scheme::Sinkhorn || s == Scheme::SigmoidBias;
}

// Capacity is a per-(T, K, N) integer; the tolerance keeps 1.1f * 10 / 11 from rounding up to 2.
// Clamped to hi in double before the cast: a capacity factor of 3e9 would overflow int (UB).
int ceil_tolerant(double x, int hi) {
    return static_cast<int>(std::min(std::ceil(x - 1e-6 * std::max(1.0, std::fabs(x))), static_cast<double>(hi)));
}

}  // namespace

void validate(const RouterConfig& cfg, int n_tokens) {
    const int scheme_id = static_cast<int>(cfg.scheme);
    if (scheme_id < 0 || scheme_id >= kNumSchemes)
        throw Error(kWhere, "scheme", "unknown scheme id " + std::to_string(scheme_id),
                    "0.." + std::to_string(kNumSchemes - 1));
    const int n = cfg.n_experts;
    if (n < 1)
        throw Error(kWhere, "n_experts", "n_experts = " + std::to_string(n), "at least 1");
    if (n_tokens < 0)
        throw Error(kWhere, "n_tokens", "n_tokens = " + std::to_string(n_tokens), "0 or more");
    if (uses_cfg_k(cfg.scheme) && (cfg.k < 1 || cfg.k > n))
        throw Error(kWhere, "k", "k = " + std::to_string(cfg.k) + " with n_experts = " + std::to_string(n),
                    "1 <= k <= n_experts");
    if (cfg.scheme == Scheme::GShardTop2 && n < 2)
        throw Error(kWhere, "n_experts", "GShard top-2 with n_experts = " + std::to_string(n),
                    "at least 2 experts");
    const int policy_id = static_cast<int>(cfg.drop_policy);
    if (policy_id < 0 || policy_id > 2)
        throw Error(kWhere, "drop_policy", "unknown drop policy id " + std::to_string(policy_id),
                    "dropless, position or score");
    const bool capacity_matters = cfg.scheme == Scheme::ExpertChoice ||
                                  (is_token_choice(cfg.scheme) && cfg.drop_policy != DropPolicy::Dropless);
    // Checked even where dropless ignores it: a config that says inf is wrong whatever it routes.
    if (!std::isfinite(cfg.capacity_factor) || cfg.capacity_factor > kMaxCapacityFactor ||
        (capacity_matters && !(cfg.capacity_factor > 0.0f)))
        throw Error(kWhere, "capacity_factor", "capacity_factor = " + fmt(cfg.capacity_factor),
                    "a number in (0, " + fmt(kMaxCapacityFactor) + "] (1.0-1.25 in training, 2.0 in eval)");
    if (cfg.n_groups < 1)
        throw Error(kWhere, "n_groups", "n_groups = " + std::to_string(cfg.n_groups), "at least 1 (1 = off)");
    if (n % cfg.n_groups != 0)
        throw Error(kWhere, "n_groups",
                    "n_experts = " + std::to_string(n) + " is not divisible by n_groups = " +
                        std::to_string(cfg.n_groups),
                    "a divisor of n_experts");
    if (cfg.topk_groups < 1 || cfg.topk_groups > cfg.n_groups)
        throw Error(kWhere, "topk_groups",
                    "topk_groups = " + std::to_string(cfg.topk_groups) + " with n_groups = " +
                        std::to_string(cfg.n_groups),
                    "1 <= topk_groups <= n_groups");
    if (cfg.n_groups > 1 && supports_groups(cfg.scheme)) {
        const int reachable = cfg.topk_groups * (n / cfg.n_groups);
        const int k = effective_k(cfg);
        if (k > reachable)
            throw Error(kWhere, "topk_groups",
                        "k = " + std::to_string(k) + " but the " + std::to_string(cfg.topk_groups) +
                            " chosen groups hold only " + std::to_string(reachable) + " experts",
                        "k <= topk_groups * n_experts / n_groups");
    }
    if (cfg.sinkhorn_iters < 1 || cfg.sinkhorn_iters > kMaxSinkhornIters)
        throw Error(kWhere, "sinkhorn_iters", "sinkhorn_iters = " + std::to_string(cfg.sinkhorn_iters),
                    "1.." + std::to_string(kMaxSinkhornIters));
    if (!(std::isfinite(cfg.noise_scale) && cfg.noise_scale >= 0.0f && cfg.noise_scale <= kMaxNoiseScale))
        throw Error(kWhere, "noise_scale", "noise_scale = " + fmt(cfg.noise_scale),
                    "a number in [0, " + fmt(kMaxNoiseScale) + "] (1 = the paper's noise)");
    if (!(std::isfinite(cfg.jitter_eps) && cfg.jitter_eps >= 0.0f && cfg.jitter_eps <= 1.0f))
        throw Error(kWhere, "jitter_eps", "jitter_eps = " + fmt(cfg.jitter_eps),
                    "0 <= jitter_eps <= 1 (input scaled by U(1-eps, 1+eps))");
    if (!(std::isfinite(cfg.routed_scaling) && cfg.routed_scaling > 0.0f))
        throw Error(kWhere, "routed_scaling", "routed_scaling = " + fmt(cfg.routed_scaling),
                    "a finite number > 0 (1 = off, DeepSeek-V3 uses 2.5)");
    if (!(std::isfinite(cfg.bias_update_rate) && cfg.bias_update_rate >= 0.0f))
        throw Error(kWhere, "bias_update_rate", "bias_update_rate = " + fmt(cfg.bias_update_rate),
                    "a finite number >= 0 (DeepSeek-V3 uses 0.001)");
}

int effective_k(const RouterConfig& cfg) {
    switch (cfg.scheme) {
        case Scheme::Soft: return cfg.n_experts;
        case Scheme::Switch:
        case Scheme::Base: return 1;
        case Scheme::GShardTop2: return 2;
        case Scheme::ExpertChoice: return 0;
        default: return cfg.k;
    }
}

// [SECTION] Helpers (PRNG, top-K, groups, softmax)
namespace {


// Distinct stream per purpose, so turning on noise does not change GShard's coin flips.
constexpr uint64_t kNoiseStream = 0x6E6F697365ull;
constexpr uint64_t kGShardStream = 0x6773686172ull;
constexpr uint64_t kHashStream = 0x68617368ull;

// Indices of the k largest score[i] with allowed[i] (allowed may be null), best first; ties go
// to the lower index. Insertion into a k-long list: O(n k), no allocation, fine for small k.
void top_k(const float* score, int n, int k, const unsigned char* allowed, int* out) {
    int filled = 0;
    float worst = -std::numeric_limits<float>::infinity();  // score of out[k-1] once full
    for (int i = 0; i < n; ++i) {
        if (allowed && !allowed[i]) continue;
        const float v = score[i];
        int pos;
        if (filled == k) {
            if (!(v > worst)) continue;
            pos = k - 1;
        } else {
            pos = filled++;
        }
        while (pos > 0 && v > score[out[pos - 1]]) {
            out[pos] = out[pos - 1];
            --pos;
        }
        out[pos] = i;
        if (filled == k) worst = score[out[k - 1]];
    }
    MOE_ASSERT(filled == k, "top_k: fewer allowed entries than k (validate() should prevent this)");
}

// Group-limited routing: experts in n_groups equal groups; keep the topk_groups groups with the
// highest sum of their two best scores (one if a group has one expert), or with the highest best
// score when by_max (DeepSeek-V2's group_limited_greedy). Writes allowed (n).
void group_mask(const float* score, int n, int n_groups, int topk_groups, bool by_max, float* group_score,
                int* group_pick, unsigned char* allowed) {
    const int group_size = n / n_groups;
    for (int g = 0; g < n_groups; ++g) {
        float best = -std::numeric_limits<float>::infinity();
        float second = -std::numeric_limits<float>::infinity();
        for (int j = g * group_size; j < (g + 1) * group_size; ++j) {
            const float v = score[j];
            if (v > best) {
                second = best;
                best = v;
            } else if (v > second) {
                second = v;
            }
        }
        group_score[g] = group_size >= 2 && !by_max ? best + second : best;
    }
    top_k(group_score, n_groups, topk_groups, nullptr, group_pick);
    std::fill(allowed, allowed + n, static_cast<unsigned char>(0));
    for (int p = 0; p < topk_groups; ++p)
        std::fill(allowed + group_pick[p] * group_size, allowed + (group_pick[p] + 1) * group_size,
                  static_cast<unsigned char>(1));
}

float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

bool uses_sigmoid(Scheme s) { return s == Scheme::SigmoidBias || s == Scheme::Base; }

// Shares q_a = s_a / sum_b s_b of a set of experts (experts[0..m), or all m when null), s the
// sigmoid probabilities p of row h. Returns the sum. When every s rounds to zero or near it (all
// h below about -87, where float's sigmoid underflows) the plain ratio is 0/0 or inexact, yet the
// shares are well defined: they are a softmax of log sigmoid(h), computed here in double.
float sigmoid_shares(const float* h, const float* p, const int* experts, int m, float* q) {
    float sum = 0.0f;
    for (int a = 0; a < m; ++a) sum += p[experts ? experts[a] : a];
    if (sum >= std::numeric_limits<float>::min()) {
        for (int a = 0; a < m; ++a) q[a] = p[experts ? experts[a] : a] / sum;
        return sum;
    }
    const auto log_sigmoid = [](double x) { return x < 0.0 ? x - std::log1p(std::exp(x)) : -std::log1p(std::exp(-x)); };
    double mx = -std::numeric_limits<double>::infinity();
    for (int a = 0; a < m; ++a) mx = std::max(mx, log_sigmoid(h[experts ? experts[a] : a]));
    double total = 0.0;
    for (int a = 0; a < m; ++a) total += std::exp(log_sigmoid(h[experts ? experts[a] : a]) - mx);
    for (int a = 0; a < m; ++a) q[a] = static_cast<float>(std::exp(log_sigmoid(h[experts ? experts[a] : a]) - mx) / total);
    return sum;
}

// Per-route scratch, sized once so the per-token loops never allocate.
struct Scratch {
    std::vector<float> score;        // (n_experts) the values a token's experts are ranked by
    std::vector<int> pick;           // (n_experts) chosen expert ids, best first
    std::vector<unsigned char> allowed;  // (n_experts) group mask
    std::vector<float> group_score;  // (n_groups)
    std::vector<int> group_pick;     // (n_groups)
    std::vector<float> share;        // (n_experts) SigmoidBias: s_i / sum_chosen s_j
    explicit Scratch(const RouterConfig& cfg)
        : score(cfg.n_experts), pick(cfg.n_experts), allowed(cfg.n_experts),
          group_score(cfg.n_groups), group_pick(cfg.n_groups), share(cfg.n_experts) {}
};

}  // namespace

// [SECTION] Token-choice schemes
namespace {

// Selects token t's experts by scratch.score (group-limited when configured), best first.
const int* choose(const RouterConfig& cfg, Scratch& s, int k) {
    const int n = cfg.n_experts;
    const unsigned char* allowed = nullptr;
    if (cfg.n_groups > 1 && supports_groups(cfg.scheme)) {
        group_mask(s.score.data(), n, cfg.n_groups, cfg.topk_groups, cfg.group_by_max, s.group_score.data(),
                   s.group_pick.data(), s.allowed.data());
        allowed = s.allowed.data();
    }
    top_k(s.score.data(), n, k, allowed, s.pick.data());
    return s.pick.data();
}

void push_pair(RoutingTrace& tr, int t, int e, int rank, float gate, float score) {
    RoutedPair p;
    p.token = t;
    p.expert = e;
    p.rank = rank;
    p.gate = gate;
    p.score = score;
    tr.pairs.push_back(p);
}

// Second-best expert of a row by p, excluding `first` (GShard top-2's candidate).
int second_best(const float* p, int n, int first) {
    int best = -1;
    for (int i = 0; i < n; ++i)
        if (i != first && (best < 0 || p[i] > p[best])) best = i;
    return best;
}

void route_token_choice(const RouterConfig& cfg, const RouteExtras& ex, RoutingTrace& tr) {
    const int n_tokens = tr.n_tokens;
    const int n = tr.n_experts;
    const int k = tr.k;
    const float rs = cfg.routed_scaling;
    Scratch s(cfg);
    Rng noise_rng(splitmix64(cfg.seed ^ kNoiseStream));
    Rng gshard_rng(splitmix64(cfg.seed ^ kGShardStream));
    Mat balanced;  // (n_tokens, n_experts) Sinkhorn only
    if (cfg.scheme == Scheme::Sinkhorn && n_tokens > 0) {  // T = 0: a 0 x N matrix has no columns to scale
        // Rows to sum 1 and columns to sum T/N, alternately, in the log domain: log m = h + u_t + v_i
        // with u_t = -logsumexp_i(h + v) and v_i = log(T/N) - logsumexp_t(h + u). The same
        // iteration as rescaling exp(h), but a column whose exp(h) all underflow (logits 1000 below
        // the rest) stays finite instead of 0 / 0. Double: many iterations of float drift visibly.
        using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
        const RowMajorD h = tr.logits.cast<double>();  // (n_tokens, n_experts)
        Eigen::VectorXd u = Eigen::VectorXd::Zero(n_tokens);  // (n_tokens) row log-scales
        Eigen::VectorXd v = Eigen::VectorXd::Zero(n);         // (n_experts) column log-scales
        const double log_col_target = std::log(static_cast<double>(n_tokens) / n);
        // log sum_j exp(x_j), shifted by the largest so nothing overflows or underflows to 0 / 0.
        const auto logsumexp = [](const Eigen::VectorXd& x) {
            const double mx = x.maxCoeff();
            return mx + std::log((x.array() - mx).exp().sum());
        };
        for (int it = 0; it < cfg.sinkhorn_iters; ++it) {
            for (int t = 0; t < n_tokens; ++t) u(t) = -logsumexp(h.row(t).transpose() + v);
            for (int i = 0; i < n; ++i) v(i) = log_col_target - logsumexp(h.col(i) + u);
        }
        // m = exp(h + u + v): its entries are the balanced scores the trace reports; u and v are
        // finite, so an entry far below the rest is 0, never NaN.
        balanced.resize(n_tokens, n);
        for (int t = 0; t < n_tokens; ++t)
            for (int i = 0; i < n; ++i) balanced(t, i) = static_cast<float>(std::exp(h(t, i) + u(t) + v(i)));
    }

    tr.pairs.reserve(static_cast<size_t>(n_tokens) * static_cast<size_t>(std::max(k, 1)));
    for (int t = 0; t < n_tokens; ++t) {
        tr.token_begin[t] = static_cast<int>(tr.pairs.size());
        const float* h = tr.logits.row(t).data();
        const float* p = tr.probs.row(t).data();
        switch (cfg.scheme) {
            case Scheme::TopKMixtral:
            case Scheme::NoisyTopK: {
                for (int i = 0; i < n; ++i) {
                    float v = h[i];
                    if (cfg.scheme == Scheme::NoisyTopK && cfg.add_noise) {
                        const float eps = static_cast<float>(noise_rng.normal());
                        v += eps * softplus((*ex.noise_logits)(t, i)) * cfg.noise_scale;
                        // Finite h and noise can still sum past float's range (h or W_noise x
                        // near 3e38); the softmax over the kept values would then be inf - inf.
                        if (!std::isfinite(v))
                            throw Error(kWhere, "noise_logits",
                                        "the noisy logit of token " + std::to_string(t) + ", expert " +
                                            std::to_string(i) + " overflows a float (h = " + fmt(h[i]) +
                                            ", W_noise x = " + fmt((*ex.noise_logits)(t, i)) + ")",
                                        "logits and noise small enough that h + eps * softplus(W_noise x) * "
                                        "noise_scale stays finite");
                    }
                    s.score[i] = v;
                }
                const int* pick = choose(cfg, s, k);
                // Softmax over the K kept values; pick[0] holds the max.
                const float m = s.score[pick[0]];
                float sum = 0.0f;
                for (int r = 0; r < k; ++r) sum += std::exp(s.score[pick[r]] - m);
                for (int r = 0; r < k; ++r)
                    push_pair(tr, t, pick[r], r, rs * std::exp(s.score[pick[r]] - m) / sum, s.score[pick[r]]);
                break;
            }
            case Scheme::TopKGShard:
            case Scheme::Switch:
            case Scheme::Sinkhorn: {
                const float* rank_by = cfg.scheme == Scheme::Sinkhorn ? balanced.row(t).data() : p;
                std::copy(rank_by, rank_by + n, s.score.begin());
                const int* pick = choose(cfg, s, k);
                float norm = 1.0f;
                if (cfg.scheme == Scheme::TopKGShard && cfg.renormalize) {
                    norm = 0.0f;
                    for (int r = 0; r < k; ++r) norm += p[pick[r]];
                }
                for (int r = 0; r < k; ++r) push_pair(tr, t, pick[r], r, rs * p[pick[r]] / norm, s.score[pick[r]]);
                break;
            }
            case Scheme::GShardTop2: {
                int first = 0;
                for (int i = 1; i < n; ++i)
                    if (p[i] > p[first]) first = i;
                const int second = second_best(p, n, first);
                const float norm = p[first] + p[second];
                // The coin is drawn for every token so one token's outcome never shifts another's.
                const bool send_second = gshard_rng.uniform() < std::min(1.0f, 2.0f * p[second]);
                push_pair(tr, t, first, 0, rs * p[first] / norm, p[first]);
                if (send_second) push_pair(tr, t, second, 1, rs * p[second] / norm, p[second]);
                break;
            }
            case Scheme::Hash: {
                const auto id = static_cast<uint64_t>(static_cast<uint32_t>(ex.token_ids[t]));
                int* pick = s.pick.data();
                for (int j = 0; j < k; ++j) {
                    // Rehash on collision so the K experts are distinct; linear probe as a backstop.
                    int e = -1;
                    for (uint64_t attempt = 0; attempt < 64 && e < 0; ++attempt) {
                        const uint64_t hv =
                            splitmix64(cfg.seed ^ kHashStream ^ splitmix64(id ^ splitmix64((uint64_t(j) << 32) | attempt)));
                        const int cand = static_cast<int>(hv % static_cast<uint64_t>(n));
                        if (std::find(pick, pick + j, cand) == pick + j) e = cand;
                    }
                    if (e < 0) {
                        e = pick[j - 1];
                        while (std::find(pick, pick + j, e) != pick + j) e = (e + 1) % n;
                    }
                    pick[j] = e;
                    push_pair(tr, t, e, j, rs / static_cast<float>(k), 1.0f / static_cast<float>(k));
                }
                break;
            }
            case Scheme::SigmoidBias: {
                for (int i = 0; i < n; ++i)
                    s.score[i] = p[i] + (ex.expert_bias ? (*ex.expert_bias)[i] : 0.0f);
                const int* pick = choose(cfg, s, k);
                float* share = s.share.data();
                if (cfg.renormalize) sigmoid_shares(h, p, pick, k, share);
                for (int r = 0; r < k; ++r)
                    push_pair(tr, t, pick[r], r, rs * (cfg.renormalize ? share[r] : p[pick[r]]), s.score[pick[r]]);
                break;
            }
            case Scheme::Soft: {
                // Rank by p so rank 0 is still "the first choice" in the trace view.
                std::iota(s.pick.begin(), s.pick.end(), 0);
                std::sort(s.pick.begin(), s.pick.end(),
                          [p](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
                for (int r = 0; r < n; ++r) push_pair(tr, t, s.pick[r], r, rs * p[s.pick[r]], p[s.pick[r]]);
                break;
            }
            default: MOE_ASSERT(false, "route_token_choice: scheme handled elsewhere");
        }
    }
    tr.token_begin[n_tokens] = static_cast<int>(tr.pairs.size());
}

}  // namespace

// [SECTION] Expert Choice
namespace {

void route_expert_choice(const RouterConfig& cfg, RoutingTrace& tr) {
    const int n_tokens = tr.n_tokens;
    const int n = tr.n_experts;
    const int c = ceil_tolerant(static_cast<double>(n_tokens) * cfg.capacity_factor / n, n_tokens);
    tr.capacity = c;
    // picked[e * c + j]: the j-th token expert e took, best first.
    std::vector<int> picked(static_cast<size_t>(n) * c);
    std::vector<int> order(n_tokens);
    std::vector<int> per_token(n_tokens + 1, 0);
    for (int e = 0; e < n; ++e) {
        std::iota(order.begin(), order.end(), 0);
        const auto better = [&](int a, int b) {
            const float pa = tr.probs(a, e), pb = tr.probs(b, e);
            return pa > pb || (pa == pb && a < b);
        };
        std::partial_sort(order.begin(), order.begin() + c, order.end(), better);
        for (int j = 0; j < c; ++j) {
            picked[static_cast<size_t>(e) * c + j] = order[j];
            ++per_token[order[j] + 1];
        }
    }
    for (int t = 0; t < n_tokens; ++t) per_token[t + 1] += per_token[t];
    tr.token_begin.assign(per_token.begin(), per_token.end());
    tr.pairs.assign(static_cast<size_t>(n) * c, RoutedPair{});
    std::vector<int> fill(per_token.begin(), per_token.end() - 1);
    for (int e = 0; e < n; ++e)
        for (int j = 0; j < c; ++j) {
            const int t = picked[static_cast<size_t>(e) * c + j];
            RoutedPair& pr = tr.pairs[fill[t]++];
            pr.token = t;
            pr.expert = e;
            pr.gate = cfg.routed_scaling * tr.probs(t, e);
            pr.score = tr.probs(t, e);
        }
    // Inside a token, rank its experts by p (best first): the order the trace view lists them.
    for (int t = 0; t < n_tokens; ++t) {
        const auto first = tr.pairs.begin() + tr.token_begin[t];
        const auto last = tr.pairs.begin() + tr.token_begin[t + 1];
        std::sort(first, last, [](const RoutedPair& a, const RoutedPair& b) {
            return a.score > b.score || (a.score == b.score && a.expert < b.expert);
        });
        for (auto it = first; it != last; ++it) it->rank = static_cast<int>(it - first);
    }
}

}  // namespace

// [SECTION] BASE (balanced assignment)
namespace {

// Exact maximum-score assignment with every expert taking at most ceil(T/N) tokens: exactly T/N
// when N divides T (Lewis et al. 2021), and at any other T the best assignment under the
// smallest capacity that fits every token, so no token is left out. Tokens are added
// one at a time along a shortest augmenting path (the Hungarian invariant: the partial
// assignment stays optimal for the tokens placed so far). Paths are found on the N expert nodes:
// moving some token from expert a to expert b costs min over a's tokens of h(t,a) - h(t,b).
// Bellman-Ford on N nodes handles the negative edges; the residual graph has no negative cycle
// because the partial assignment is optimal. O(T * (T N + N^3)); fine for teaching batch sizes.
void route_base(const RouterConfig& cfg, RoutingTrace& tr) {
    const int n_tokens = tr.n_tokens;
    const int n = tr.n_experts;
    const int cap = (n_tokens + n - 1) / n;
    tr.capacity = cap;
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<int> assigned(n_tokens, -1);             // (n_tokens) expert of each placed token
    std::vector<std::vector<int>> members(n);            // (n_experts) tokens held by each expert
    for (auto& m : members) m.reserve(cap);
    std::vector<double> edge(static_cast<size_t>(n) * n);  // (n, n) cost of moving a -> b
    std::vector<int> edge_token(static_cast<size_t>(n) * n);
    std::vector<double> dist(n);
    std::vector<int> pred(n);

    // Row a of the edge matrix only changes when a's members do, so only the experts on the
    // last augmenting path are recomputed: O(path * T) per token instead of O(T N).
    std::vector<unsigned char> stale(n, 1);
    const auto refresh_row = [&](int a) {
        double* row = &edge[static_cast<size_t>(a) * n];
        int* who = &edge_token[static_cast<size_t>(a) * n];
        std::fill(row, row + n, inf);
        for (int u : members[a])
            for (int b = 0; b < n; ++b) {
                if (b == a) continue;
                const double c = static_cast<double>(tr.logits(u, a)) - tr.logits(u, b);
                if (c < row[b]) {
                    row[b] = c;
                    who[b] = u;
                }
            }
        stale[a] = 0;
    };
    for (int t = 0; t < n_tokens; ++t) {
        for (int a = 0; a < n; ++a)
            if (stale[a]) refresh_row(a);
        // Source -> expert b: place token t there, cost -h(t, b).
        for (int b = 0; b < n; ++b) {
            dist[b] = -static_cast<double>(tr.logits(t, b));
            pred[b] = -1;
        }
        for (int round = 0; round < n - 1; ++round) {
            bool changed = false;
            for (int a = 0; a < n; ++a)
                for (int b = 0; b < n; ++b) {
                    const double w = edge[static_cast<size_t>(a) * n + b];
                    if (w == inf) continue;
                    if (dist[a] + w < dist[b] - 1e-12) {
                        dist[b] = dist[a] + w;
                        pred[b] = a;
                        changed = true;
                    }
                }
            if (!changed) break;
        }
        int target = -1;
        for (int b = 0; b < n; ++b)
            if (static_cast<int>(members[b].size()) < cap && (target < 0 || dist[b] < dist[target])) target = b;
        MOE_ASSERT(target >= 0, "route_base: no expert with free capacity");
        // Walk back: each hop a -> b moves edge_token(a, b) from a to b; the first hop places t.
        int b = target;
        for (int hops = 0; pred[b] >= 0; ++hops) {
            MOE_ASSERT(hops < n, "route_base: augmenting path loops");
            const int a = pred[b];
            const int u = edge_token[static_cast<size_t>(a) * n + b];
            auto& from = members[a];
            from.erase(std::find(from.begin(), from.end(), u));
            members[b].push_back(u);
            assigned[u] = b;
            stale[a] = stale[b] = 1;
            b = a;
        }
        members[b].push_back(t);
        assigned[t] = b;
        stale[b] = 1;
    }

    tr.pairs.resize(n_tokens);
    for (int t = 0; t < n_tokens; ++t) {
        const int e = assigned[t];
        RoutedPair& p = tr.pairs[t];
        p.token = t;
        p.expert = e;
        p.rank = 0;
        p.gate = cfg.routed_scaling * tr.probs(t, e);
        p.score = tr.logits(t, e);
        tr.token_begin[t] = t;
    }
    tr.token_begin[n_tokens] = n_tokens;
}

}  // namespace

// [SECTION] Capacity
namespace {

void apply_capacity(const RouterConfig& cfg, RoutingTrace& tr) {
    const int n = tr.n_experts;
    // More than every pair changes nothing, so the capacity is at most T * K.
    tr.capacity = ceil_tolerant(static_cast<double>(cfg.capacity_factor) * tr.n_tokens * tr.k / n,
                                 static_cast<int>(std::min<int64_t>(int64_t{tr.n_tokens} * tr.k, INT32_MAX)));
    std::vector<int> load(n, 0);
    const auto admit = [&](RoutedPair& p) {
        if (load[p.expert] < tr.capacity) ++load[p.expert];
        else p.dropped = true;
    };
    if (cfg.drop_policy == DropPolicy::Position) {
        for (int r = 0; r < tr.k; ++r)
            for (int t = 0; t < tr.n_tokens; ++t) {
                const int idx = tr.token_begin[t] + r;
                if (idx < tr.token_begin[t + 1]) admit(tr.pairs[idx]);
            }
    } else {
        // Batch priority routing: highest gate first; pairs are stored by (token, rank), so a
        // stable sort breaks ties by position.
        std::vector<int> order(tr.pairs.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](int a, int b) { return tr.pairs[a].gate > tr.pairs[b].gate; });
        for (int idx : order) admit(tr.pairs[idx]);
    }
}

}  // namespace

// [SECTION] Statistics
namespace {

// q: the normalised router distribution the balance losses use: softmax p, or s / sum s for the
// sigmoid schemes (as DeepSeek-V3's sequence-wise loss normalises its affinities).
void normalised_probs(const RoutingTrace& tr, Mat& q) {
    q.resize(tr.n_tokens, tr.n_experts);
    for (int t = 0; t < tr.n_tokens; ++t)
        sigmoid_shares(tr.logits.row(t).data(), tr.probs.row(t).data(), nullptr, tr.n_experts, q.row(t).data());
}

void compute_stats(const RouteExtras& ex, const Vec& row_lse, RoutingTrace& tr) {
    const int n_tokens = tr.n_tokens;
    const int n = tr.n_experts;
    BatchStats& st = tr.stats;
    st = BatchStats{};
    st.n_pairs = static_cast<int>(tr.pairs.size());
    for (int e = 0; e < n; ++e) st.n_dropped += tr.expert_dropped[e];
    st.frac_dropped = st.n_pairs > 0 ? static_cast<float>(st.n_dropped) / st.n_pairs : 0.0f;
    for (int t = 0; t < n_tokens; ++t) {
        bool kept = false;
        for (const RoutedPair& p : tr.token_pairs(t)) kept = kept || !p.dropped;
        if (!kept) ++st.n_tokens_unrouted;
    }
    if (n_tokens == 0) return;

    double mean = 0.0, max_load = 0.0;
    for (int e = 0; e < n; ++e) {
        mean += tr.expert_load[e];
        max_load = std::max(max_load, static_cast<double>(tr.expert_load[e]));
    }
    mean /= n;
    double var = 0.0;
    for (int e = 0; e < n; ++e) var += (tr.expert_load[e] - mean) * (tr.expert_load[e] - mean);
    var /= n;
    st.load_cv = mean > 0 ? static_cast<float>(std::sqrt(var) / mean) : 0.0f;
    st.max_over_mean = mean > 0 ? static_cast<float>(max_load / mean) : 0.0f;

    Mat q_sigmoid;  // (n_tokens, n_experts) only the sigmoid schemes need a normalised copy
    if (uses_sigmoid(tr.scheme)) normalised_probs(tr, q_sigmoid);
    const Mat& q = uses_sigmoid(tr.scheme) ? q_sigmoid : tr.probs;  // (n_tokens, n_experts)
    double entropy = 0.0, z = 0.0;
    for (int t = 0; t < n_tokens; ++t) {
        const double lse = row_lse[t];
        z += lse * lse;
        if (uses_sigmoid(tr.scheme)) {
            for (int i = 0; i < n; ++i)
                if (q(t, i) > 0.0f) entropy -= static_cast<double>(q(t, i)) * std::log(q(t, i));
        } else {
            // log p_i = h_i - lse, so H = lse - sum_i p_i h_i: no log per entry.
            entropy += lse - static_cast<double>(q.row(t).dot(tr.logits.row(t)));
        }
    }
    st.router_entropy = static_cast<float>(entropy / n_tokens);
    st.z_loss = static_cast<float>(z / n_tokens);

    // Switch aux loss N * sum_i f_i P_i over the batch; the sequence-wise loss is the same
    // formula per sequence (DeepSeek-V3: f_i = N/(K T) * count_i, P_i = mean normalised s).
    const auto balance = [&](int t0, int t1, double& out) -> bool {
        std::vector<double> count(n, 0.0), mean_q(n, 0.0);
        double pairs = 0.0;
        for (int t = t0; t < t1; ++t) {
            for (const RoutedPair& p : tr.token_pairs(t)) count[p.expert] += 1.0;
            pairs += tr.token_begin[t + 1] - tr.token_begin[t];
            for (int i = 0; i < n; ++i) mean_q[i] += q(t, i);
        }
        if (pairs == 0.0) return false;
        double sum = 0.0;
        for (int i = 0; i < n; ++i) sum += (count[i] / pairs) * (mean_q[i] / (t1 - t0));
        out = n * sum;
        return true;
    };
    double aux = 0.0;
    if (balance(0, n_tokens, aux)) st.aux_loss = static_cast<float>(aux);
    if (ex.seq_len <= 0 || ex.seq_len >= n_tokens) {  // one sequence: the same number
        st.seq_aux_loss = st.aux_loss;
        return;
    }
    const int seq_len = ex.seq_len;
    double seq_sum = 0.0;
    int n_seq = 0;
    for (int t0 = 0; t0 < n_tokens; t0 += seq_len) {
        double v = 0.0;
        if (balance(t0, std::min(n_tokens, t0 + seq_len), v)) {
            seq_sum += v;
            ++n_seq;
        }
    }
    st.seq_aux_loss = n_seq > 0 ? static_cast<float>(seq_sum / n_seq) : 0.0f;
}

}  // namespace

// [SECTION] route()
RoutingTrace route(const RouterConfig& cfg, ConstMatRef logits, const RouteExtras& ex) {
    const int n_tokens = static_cast<int>(logits.rows());
    validate(cfg, n_tokens);
    const int n = cfg.n_experts;
    if (logits.cols() != n)
        throw Error(kWhere, "logits",
                    "logits have " + std::to_string(logits.cols()) + " columns but n_experts = " + std::to_string(n),
                    "one column per expert");
    // x * 0 is NaN exactly when x is NaN or Inf, and a vectorised sum keeps this check cheap
    // (Eigen's allFinite() is a scalar loop, a fifth of route() at T = 1024).
    if (!std::isfinite((logits.array() * 0.0f).sum()))
        throw Error(kWhere, "logits", "router logits contain NaN or Inf",
                    "finite logits (lower the learning rate or enable the z-loss)");
    if (ex.seq_len < 0)
        throw Error(kWhere, "seq_len", "seq_len = " + std::to_string(ex.seq_len), "0 (one sequence) or more");
    if (cfg.scheme == Scheme::Hash && static_cast<int>(ex.token_ids.size()) != n_tokens)
        throw Error(kWhere, "token_ids",
                    "hash routing got " + std::to_string(ex.token_ids.size()) + " token ids for " +
                        std::to_string(n_tokens) + " tokens",
                    "one token id per token");
    if (cfg.scheme == Scheme::NoisyTopK && cfg.add_noise) {
        if (!ex.noise_logits)
            throw Error(kWhere, "noise_logits", "noisy top-K with add_noise but no noise logits",
                        "pass W_noise x, or turn add_noise off");
        if (ex.noise_logits->rows() != n_tokens || ex.noise_logits->cols() != n)
            throw Error(kWhere, "noise_logits",
                        "noise logits are " + std::to_string(ex.noise_logits->rows()) + "x" +
                            std::to_string(ex.noise_logits->cols()),
                        "(n_tokens, n_experts) = " + std::to_string(n_tokens) + "x" + std::to_string(n));
        if (!ex.noise_logits->allFinite())
            throw Error(kWhere, "noise_logits", "noise logits contain NaN or Inf", "finite values");
    }
    if (cfg.scheme == Scheme::SigmoidBias && ex.expert_bias) {
        if (ex.expert_bias->size() != n)
            throw Error(kWhere, "expert_bias",
                        "expert_bias has " + std::to_string(ex.expert_bias->size()) + " entries",
                        "one per expert (" + std::to_string(n) + ")");
        if (!ex.expert_bias->allFinite())
            throw Error(kWhere, "expert_bias", "expert_bias contains NaN or Inf", "finite values");
    }

    RoutingTrace tr;
    tr.scheme = cfg.scheme;
    tr.n_tokens = n_tokens;
    tr.n_experts = n;
    tr.k = effective_k(cfg);
    tr.logits = logits;
    // Whole-matrix Eigen array ops vectorise exp; this is most of route()'s time at T = 1024.
    Vec row_lse(n_tokens);  // (n_tokens) logsumexp(h_t), for the z-loss and the entropy
    if (n_tokens > 0) {
        const Vec row_max = tr.logits.rowwise().maxCoeff();  // (n_tokens)
        // Shift, then exp in place: exp over a broadcast expression falls back to scalar expf.
        Mat shifted_exp = tr.logits;  // (n_tokens, n_experts)
        shifted_exp.colwise() -= row_max;
        shifted_exp.array() = shifted_exp.array().exp();
        const Vec row_sum = shifted_exp.rowwise().sum();  // (n_tokens)
        row_lse = row_max.array() + row_sum.array().log();
        if (uses_sigmoid(cfg.scheme)) {
            tr.probs = (1.0f + (-tr.logits.array()).exp()).inverse().matrix();
        } else {
            tr.probs = (shifted_exp.array().colwise() / row_sum.array()).matrix();
        }
    } else {
        tr.probs.resize(0, n);
    }
    tr.token_begin.assign(n_tokens + 1, 0);

    if (cfg.scheme == Scheme::ExpertChoice) {
        route_expert_choice(cfg, tr);
    } else if (cfg.scheme == Scheme::Base) {
        route_base(cfg, tr);
    } else {
        route_token_choice(cfg, ex, tr);
        if (is_token_choice(cfg.scheme) && cfg.drop_policy != DropPolicy::Dropless && n_tokens > 0)
            apply_capacity(cfg, tr);
    }

    tr.expert_load.assign(n, 0);
    tr.expert_wanted.assign(n, 0);
    tr.expert_dropped.assign(n, 0);
    for (const RoutedPair& p : tr.pairs) {
        ++tr.expert_wanted[p.expert];
        if (p.dropped) ++tr.expert_dropped[p.expert];
        else ++tr.expert_load[p.expert];
    }
    compute_stats(ex, row_lse, tr);
    return tr;
}

// [SECTION] Bias update
void update_expert_bias(Vec& bias, const RoutingTrace& trace, float gamma) {
    if (bias.size() != trace.n_experts)
        throw Error("update_expert_bias", "expert_bias",
                    "bias has " + std::to_string(bias.size()) + " entries for " +
                        std::to_string(trace.n_experts) + " experts",
                    "one per expert");
    if (!(std::isfinite(gamma) && gamma >= 0.0f))
        throw Error("update_expert_bias", "bias_update_rate", "gamma = " + fmt(gamma), "a finite number >= 0");
    if (trace.n_experts == 0) return;
    double mean = 0.0;
    for (int load : trace.expert_load) mean += load;
    mean /= trace.n_experts;
    for (int i = 0; i < trace.n_experts; ++i) {
        const double diff = mean - trace.expert_load[i];
        const float sign = diff > 0 ? 1.0f : (diff < 0 ? -1.0f : 0.0f);
        bias[i] += gamma * sign;
    }
}

// [SECTION] Gradients
namespace {

// Gates g_a = rs * softmax over the set S of values v (a in S). With d_a the upstream gradient
// of each gate: dL/dv_j = rs * q_j * (d_j - sum_a d_a q_a) for j in S.
void softmax_set_backward(const float* v, const int* experts, const float* d, int m, float rs, float* d_row) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int a = 0; a < m; ++a) mx = std::max(mx, v[a]);
    float sum = 0.0f;
    std::array<float, 2> q_small{};
    std::vector<float> q_big;
    float* q = q_small.data();
    if (m > 2) {
        q_big.resize(m);
        q = q_big.data();
    }
    for (int a = 0; a < m; ++a) {
        q[a] = std::exp(v[a] - mx);
        sum += q[a];
    }
    float dot = 0.0f;
    for (int a = 0; a < m; ++a) {
        q[a] /= sum;
        dot += d[a] * q[a];
    }
    for (int a = 0; a < m; ++a) d_row[experts[a]] += rs * q[a] * (d[a] - dot);
}

}  // namespace

void gate_backward(const RouterConfig& cfg, const RoutingTrace& tr, std::span<const float> d_gate,
                   MatRef d_logits) {
    MOE_ASSERT(d_gate.size() == tr.pairs.size(), "gate_backward: one d_gate per trace pair");
    MOE_ASSERT(d_logits.rows() == tr.n_tokens && d_logits.cols() == tr.n_experts,
               "gate_backward: d_logits must be (n_tokens, n_experts)");
    const int n = tr.n_experts;
    const float rs = cfg.routed_scaling;
    std::vector<float> v(n), d(n);
    std::vector<int> experts(n);
    for (int t = 0; t < tr.n_tokens; ++t) {
        const int b = tr.token_begin[t], e = tr.token_begin[t + 1];
        const int m = e - b;
        float* d_row = &d_logits(t, 0);
        const float* p = tr.probs.row(t).data();
        const auto kept_grad = [&](int idx) { return tr.pairs[idx].dropped ? 0.0f : d_gate[idx]; };
        switch (tr.scheme) {
            case Scheme::TopKMixtral:
            case Scheme::NoisyTopK: {
                // score holds the (noisy) value the softmax ran over; noise is constant in h.
                for (int a = 0; a < m; ++a) {
                    v[a] = tr.pairs[b + a].score;
                    experts[a] = tr.pairs[b + a].expert;
                    d[a] = kept_grad(b + a);
                }
                if (m > 0) softmax_set_backward(v.data(), experts.data(), d.data(), m, rs, d_row);
                break;
            }
            case Scheme::TopKGShard: {
                if (cfg.renormalize) {  // p_a / sum_S p = softmax over the chosen logits
                    for (int a = 0; a < m; ++a) {
                        experts[a] = tr.pairs[b + a].expert;
                        v[a] = tr.logits(t, experts[a]);
                        d[a] = kept_grad(b + a);
                    }
                    if (m > 0) softmax_set_backward(v.data(), experts.data(), d.data(), m, rs, d_row);
                    break;
                }
                [[fallthrough]];
            }
            case Scheme::Soft:
            case Scheme::Switch:
            case Scheme::Sinkhorn:
            case Scheme::ExpertChoice: {
                // Raw softmax gates g_a = rs * p_a: dL/dh_j = rs * p_j * (d_j - sum_a d_a p_a).
                float dot = 0.0f;
                std::fill(d.begin(), d.end(), 0.0f);
                for (int a = 0; a < m; ++a) {
                    const float g = kept_grad(b + a);
                    d[tr.pairs[b + a].expert] += g;
                    dot += g * p[tr.pairs[b + a].expert];
                }
                for (int j = 0; j < n; ++j) d_row[j] += rs * p[j] * (d[j] - dot);
                break;
            }
            case Scheme::GShardTop2: {
                // Both gates are softmax over {first, second candidate}, whether or not the second
                // was sent; recover the candidate from p as route() picked it.
                const int first = tr.pairs[b].expert;
                const int second = second_best(p, n, first);
                experts[0] = first;
                experts[1] = second;
                v[0] = tr.logits(t, first);
                v[1] = tr.logits(t, second);
                d[0] = kept_grad(b);
                d[1] = m > 1 ? kept_grad(b + 1) : 0.0f;
                softmax_set_backward(v.data(), experts.data(), d.data(), 2, rs, d_row);
                break;
            }
            case Scheme::SigmoidBias: {
                if (!cfg.renormalize) {  // g_a = rs * s_a, as Base's gates
                    for (int a = 0; a < m; ++a) {
                        const int j = tr.pairs[b + a].expert;
                        d_row[j] += rs * kept_grad(b + a) * p[j] * (1.0f - p[j]);
                    }
                    break;
                }
                // g_a = rs * q_a, q_a = s_a / S over the chosen set:
                // dL/dh_j = rs * s_j(1-s_j)/S * (d_j - sum_a d_a q_a) = rs * q_j (1-s_j) (d_j - dot).
                for (int a = 0; a < m; ++a) experts[a] = tr.pairs[b + a].expert;
                sigmoid_shares(tr.logits.row(t).data(), p, experts.data(), m, v.data());
                float dot = 0.0f;
                for (int a = 0; a < m; ++a) dot += kept_grad(b + a) * v[a];
                for (int a = 0; a < m; ++a) {
                    const int j = experts[a];
                    d_row[j] += rs * v[a] * (1.0f - p[j]) * (kept_grad(b + a) - dot);
                }
                break;
            }
            case Scheme::Base: {
                for (int a = 0; a < m; ++a) {
                    const int j = tr.pairs[b + a].expert;
                    d_row[j] += rs * kept_grad(b + a) * p[j] * (1.0f - p[j]);
                }
                break;
            }
            case Scheme::Hash: break;  // gates are constants: no router, no gradient
        }
    }
}

void aux_loss_backward(const RoutingTrace& tr, float scale, MatRef d_logits) {
    MOE_ASSERT(d_logits.rows() == tr.n_tokens && d_logits.cols() == tr.n_experts,
               "aux_loss_backward: d_logits must be (n_tokens, n_experts)");
    const int n_tokens = tr.n_tokens, n = tr.n_experts;
    if (n_tokens == 0 || tr.pairs.empty()) return;
    // aux = N * sum_i f_i * mean_t q_{t,i}; f held constant, so d aux / d q_{t,i} = N f_i / T.
    std::vector<float> c(n);
    for (int i = 0; i < n; ++i)
        c[i] = static_cast<float>(n) * tr.expert_wanted[i] / static_cast<float>(tr.pairs.size()) / n_tokens;
    std::vector<float> q(uses_sigmoid(tr.scheme) ? n : 0);  // (n_experts) a token's sigmoid shares
    for (int t = 0; t < n_tokens; ++t) {
        const float* p = tr.probs.row(t).data();
        float* d_row = &d_logits(t, 0);
        if (uses_sigmoid(tr.scheme)) {
            // q = s / S: dL/dh_j = (c_j - sum_i c_i q_i) * s_j (1 - s_j) / S = (c_j - dot) q_j (1 - s_j).
            sigmoid_shares(tr.logits.row(t).data(), p, nullptr, n, q.data());
            float dot = 0.0f;
            for (int i = 0; i < n; ++i) dot += c[i] * q[i];
            for (int j = 0; j < n; ++j) d_row[j] += scale * (c[j] - dot) * q[j] * (1.0f - p[j]);
        } else {
            float dot = 0.0f;
            for (int i = 0; i < n; ++i) dot += c[i] * p[i];
            for (int j = 0; j < n; ++j) d_row[j] += scale * p[j] * (c[j] - dot);
        }
    }
}

void z_loss_backward(const RoutingTrace& tr, float scale, MatRef d_logits) {
    MOE_ASSERT(d_logits.rows() == tr.n_tokens && d_logits.cols() == tr.n_experts,
               "z_loss_backward: d_logits must be (n_tokens, n_experts)");
    const int n_tokens = tr.n_tokens, n = tr.n_experts;
    if (n_tokens == 0) return;
    // z = mean_t lse_t^2: dz/dh_{t,j} = 2 lse_t softmax(h_t)_j / T.
    for (int t = 0; t < n_tokens; ++t) {
        const float* h = tr.logits.row(t).data();
        float m = -std::numeric_limits<float>::infinity();
        for (int i = 0; i < n; ++i) m = std::max(m, h[i]);
        float s = 0.0f;
        for (int i = 0; i < n; ++i) s += std::exp(h[i] - m);
        const float lse = m + std::log(s);
        const float coef = scale * 2.0f * lse / (s * n_tokens);
        for (int j = 0; j < n; ++j) d_logits(t, j) += coef * std::exp(h[j] - m);
    }
}

}  // namespace moe
