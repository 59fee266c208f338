// Routing: every scheme of MOE_REFERENCE.md §2, capacity and dropping (§3), balancing
// statistics (§4), and the routing trace the app, the CLI and the exporters read.
//
// route() turns router logits into a RoutingTrace: which experts each token goes to, with what
// gate weight, which (token, expert) pairs were dropped for capacity, and batch statistics.
// It is pure: same config (seed included) and inputs give the same trace.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/engine/tensor.h"

namespace moe {

// [SECTION] Schemes
enum class Scheme : int {
    Soft = 0,      // dense mixture (Jacobs 1991): all N experts, gate p = softmax(h)
    TopKMixtral,   // top-K of h; gate = softmax over the K chosen logits only
    TopKGShard,    // top-K of p = softmax(h); gate = p_i, renormalised to sum 1 if cfg.renormalize
    NoisyTopK,     // top-K of h + eps*softplus(W_noise x), eps~N(0,1) when cfg.add_noise; softmax over kept
    Switch,        // K = 1; gate = raw p_i
    GShardTop2,    // first = argmax p; second sent with probability min(1, 2 p_2); p1, p2 renormalised
    ExpertChoice,  // each expert takes its top-c tokens by p, c = ceil(T * capacity_factor / N), <= T
    Hash,          // expert = fixed hash of (token id, seed); K hash functions; gate 1 (1/K each if K>1)
    Base,          // balanced assignment: each expert takes at most ceil(T/N) tokens (T/N when N | T), max sum h; gate sigmoid(h)
    Sinkhorn,      // Sinkhorn-balance exp(h) for cfg.sinkhorn_iters, top-K of that; gate = softmax p of chosen
    SigmoidBias,   // DeepSeek-V3: s = sigmoid(h), top-K of s + b; gate = s_i / sum_chosen s_j * routed_scaling
                   // (s_i * routed_scaling without cfg.renormalize: V3's norm_topk_prob = false)
};
inline constexpr int kNumSchemes = 11;

const char* scheme_name(Scheme s);     // stable id for files and the CLI: "topk_mixtral"
const char* scheme_label(Scheme s);    // for people: "Top-K softmax (Mixtral)"
const char* scheme_tooltip(Scheme s);  // one teaching sentence
std::optional<Scheme> scheme_from_name(std::string_view name);

// [SECTION] Capacity
enum class DropPolicy : int {
    Dropless = 0,  // no capacity limit (MegaBlocks)
    Position,      // C_e = ceil(cf*T*K/N); first choices of all tokens in position order, then second choices, ...
    Score,         // same capacity; pairs ranked by gate score, highest first ("batch priority routing")
};
const char* drop_policy_name(DropPolicy p);
std::optional<DropPolicy> drop_policy_from_name(std::string_view name);

// [SECTION] Configuration
struct RouterConfig {
    Scheme scheme = Scheme::TopKMixtral;
    int n_experts = 8;
    int k = 2;                       // forced to 1 by Switch and Base, to 2 by GShardTop2
    float capacity_factor = 1.25f;   // token-choice capacity, and Expert Choice's c
    DropPolicy drop_policy = DropPolicy::Dropless;
    bool renormalize = true;         // TopKGShard and SigmoidBias: renormalise the chosen p (s) to sum 1
    bool add_noise = false;          // NoisyTopK: add the noise (training-time behaviour)
    float noise_scale = 1.0f;        // NoisyTopK: multiplies eps (a teaching knob; 1 = the paper)
    float jitter_eps = 0.0f;         // router input multiplied by U(1-eps, 1+eps) (applied by the layer)
    bool shared_experts = true;      // layer knob: run the shared experts (teaching toggle)
    int n_groups = 1;                // group-limited routing: N experts in n_groups equal groups (1 = off)
    int topk_groups = 1;             // ... only the best topk_groups groups are searched
    bool group_by_max = false;       // a group scores by its best expert (DeepSeek-V2), not its two best (V3)
    float routed_scaling = 1.0f;     // multiplies routed gate weights (DeepSeek-V3 uses 2.5)
    int sinkhorn_iters = 3;
    float bias_update_rate = 0.001f; // gamma of the aux-loss-free bias update
    uint64_t seed = 0;               // every random draw (noise, jitter, GShard's second, hash) comes from it
};

// Throws moe::Error naming the knob, the bad value and what was expected (K = 0, K > N,
// capacity_factor <= 0, not finite or over kMaxCapacityFactor, N not divisible by n_groups,
// ...). Every scheme accepts n_tokens = 0 and returns an empty trace.
void validate(const RouterConfig& cfg, int n_tokens);

// The K a scheme really uses (Switch and Base 1, GShardTop2 2, Soft N, ExpertChoice 0 = varies).
int effective_k(const RouterConfig& cfg);

// [SECTION] Trace
struct RoutedPair {
    int token = 0;
    int expert = 0;
    int rank = 0;          // 0 = the token's first choice (Expert Choice: order of selection)
    float gate = 0.0f;     // weight of this expert's output (kept even when dropped, for display)
    float score = 0.0f;    // the value the scheme ranked by (biased score for SigmoidBias)
    bool dropped = false;  // refused for capacity: contributes nothing
};

struct BatchStats {
    float load_cv = 0;         // std / mean of kept load over experts
    float max_over_mean = 0;   // max kept load / mean kept load
    float router_entropy = 0;  // mean over tokens of the entropy of p (nats)
    float aux_loss = 0;        // Switch load-balancing N * sum_i f_i P_i, WITHOUT alpha (1.0 when uniform)
    float z_loss = 0;          // mean_t logsumexp(h_t)^2, WITHOUT beta
    float seq_aux_loss = 0;    // DeepSeek-V3 sequence-wise balance loss, WITHOUT alpha, mean over sequences
    float frac_dropped = 0;    // dropped pairs / chosen pairs
    int n_pairs = 0;           // chosen (token, expert) pairs, before capacity
    int n_dropped = 0;
    int n_tokens_unrouted = 0; // tokens left with no kept expert (they pass through the residual)
};

struct RoutingTrace {
    Scheme scheme = Scheme::TopKMixtral;
    int n_tokens = 0;
    int n_experts = 0;
    int k = 0;                        // effective K (0 for Expert Choice: varies per token)
    Mat logits;                       // (n_tokens, n_experts) h
    Mat probs;                        // (n_tokens, n_experts) softmax(h); sigmoid(h) for SigmoidBias/Base
    std::vector<RoutedPair> pairs;    // (n_pairs) grouped by token in position order, by rank inside
    std::vector<int> token_begin;     // (n_tokens + 1) token t owns pairs [token_begin[t], token_begin[t+1])
    std::vector<int> expert_load;     // (n_experts) kept pairs
    std::vector<int> expert_wanted;   // (n_experts) pairs before capacity
    std::vector<int> expert_dropped;  // (n_experts) wanted - load
    int capacity = -1;                // per-expert capacity; -1 = dropless
    BatchStats stats;

    std::span<const RoutedPair> token_pairs(int t) const {
        return {pairs.data() + token_begin[t], pairs.data() + token_begin[t + 1]};
    }
};

// [SECTION] Routing
struct RouteExtras {
    const Mat* noise_logits = nullptr;          // (n_tokens, n_experts) W_noise x; NoisyTopK only
    std::span<const int32_t> token_ids = {};    // (n_tokens) Hash only (byte values for the LM)
    const Vec* expert_bias = nullptr;           // (n_experts) SigmoidBias selection bias; never in gates
    int seq_len = 0;                            // tokens per sequence for seq_aux_loss; 0 = one sequence
};

RoutingTrace route(const RouterConfig& cfg, ConstMatRef logits, const RouteExtras& extras = {});

// Aux-loss-free balancing (DeepSeek-V3): b_i += gamma * sign(mean_load - load_i).
void update_expert_bias(Vec& bias, const RoutingTrace& trace, float gamma);

// [SECTION] Gradients, for training
// d_logits (n_tokens, n_experts) += d(sum_pairs d_gate[p] * gate[p]) / d logits, for the kept pairs.
// d_gate has one entry per trace.pairs. Selection is treated as constant (straight-through on the
// chosen set), as every MoE trainer does. Supported: Soft, TopKMixtral, TopKGShard, NoisyTopK
// (w.r.t. the clean logits), Switch, GShardTop2, ExpertChoice, Sinkhorn, SigmoidBias, Base.
void gate_backward(const RouterConfig& cfg, const RoutingTrace& trace,
                   std::span<const float> d_gate, MatRef d_logits);
// d_logits += scale * d(aux_loss)/d logits (f_i held constant, as in Switch), and likewise z_loss.
void aux_loss_backward(const RoutingTrace& trace, float scale, MatRef d_logits);
void z_loss_backward(const RoutingTrace& trace, float scale, MatRef d_logits);

}  // namespace moe
