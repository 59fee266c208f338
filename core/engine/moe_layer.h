// The MoE FFN layer (MOE_REFERENCE.md §1, §6):
//     y_t = sum_{i in S_t} g_{t,i} E_i(x_t) + sum_{j in shared} E_j(x_t)
// The residual is the caller's: a token whose pairs were all dropped gets y_t = 0 here and
// passes through unchanged around the layer.
//
// Dispatch is done the way fast implementations do it: (token, expert) pairs sorted by expert,
// the rows of each expert gathered contiguously, one matrix multiply per expert (grouped GEMM),
// weighted scatter-add back. The naive per-token reference lives in tests/ and must agree.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/engine/routing.h"
#include "core/engine/tensor.h"

namespace moe {

enum class Activation : int { GELU = 0, SwiGLU };
const char* activation_name(Activation a);

struct ExpertWeights {
    Mat w1;  // (d_ff, d_model) up projection; the gate projection for SwiGLU
    Mat w3;  // (d_ff, d_model) SwiGLU's linear branch; empty for GELU
    Mat w2;  // (d_model, d_ff) down projection
    Vec b1;  // (d_ff) GELU only, may be empty
    Vec b2;  // (d_model) GELU only, may be empty
};

struct MoeLayerConfig {
    int d_model = 128;
    int d_ff = 256;          // per routed expert; fine-grained experts = more experts, smaller d_ff
    int n_experts = 8;
    int n_shared = 0;        // shared experts, always on, weight 1 (DeepSeekMoE)
    int d_ff_shared = 0;     // 0 = same as d_ff
    Activation activation = Activation::SwiGLU;
    bool router_bias = false;
    bool expert_biases = false;  // GELU experts with b1/b2
};

struct MoeLayerWeights {
    Mat w_router;                        // (n_experts, d_model)
    Vec b_router;                        // (n_experts), empty unless router_bias
    Mat w_noise;                         // (n_experts, d_model) noisy top-K noise projection
    std::vector<ExpertWeights> experts;  // (n_experts)
    std::vector<ExpertWeights> shared;   // (n_shared)
    Vec expert_bias;                     // (n_experts) aux-loss-free selection bias (routing state)
};

// Random init (scaled normal, fixed seed); shapes follow cfg. Throws moe::Error on a bad cfg.
MoeLayerWeights init_moe_layer(const MoeLayerConfig& cfg, uint64_t seed);
void validate(const MoeLayerConfig& cfg);
int64_t count_params(const MoeLayerConfig& cfg, bool active_only, int k);

// What a backward pass needs from the forward (filled only when asked for).
struct MoeForwardCache {
    Mat x_router;                  // (n_tokens, d_model) router input after jitter
    std::vector<int> order;        // (n_kept) kept pair indices (into trace.pairs) sorted by expert
    std::vector<int> expert_begin; // (n_experts + 1) expert e owns rows [expert_begin[e], expert_begin[e+1]) of order
    Mat h_pre;                     // (n_kept, d_ff) w1 x (+b1), per kept pair, in `order`
    Mat h_lin;                     // (n_kept, d_ff) w3 x (SwiGLU only)
    Mat h_act;                     // (n_kept, d_ff) activation output fed to w2
    Mat expert_out;                // (n_kept, d_model) E_i(x_t) before the gate
    std::vector<Mat> shared_h_pre, shared_h_lin, shared_h_act;  // per shared expert run (n_shared, or 0 when
                                                                // rc.shared_experts is off), (n_tokens, d_ff_shared)
};

// Wall time of each stage of one forward pass, in seconds (filled only when asked for), so the
// cost of dispatch (route + sort + gather + combine) can be set against the experts' GEMMs.
struct MoeForwardProfile {
    double router_s = 0;   // jitter + router logits (+ noise logits)
    double route_s = 0;    // route(): selection, gates, capacity
    double sort_s = 0;     // counting sort of kept pairs by expert
    double gather_s = 0;   // rows gathered contiguously per expert
    double experts_s = 0;  // routed experts' grouped GEMMs and activation
    double shared_s = 0;   // shared experts (gather is not needed: they see every token)
    double combine_s = 0;  // weighted scatter-add of routed and shared outputs
    double total_s = 0;
};

class Backend;
struct PackedExperts;

class MoeLayer {
public:
    MoeLayer(MoeLayerConfig cfg, MoeLayerWeights weights);  // validates, pre-packs expert weights
    // Routed experts held ONLY packed, no FP32 copy (a checkpoint's BF16 experts stay BF16 in
    // memory): weights.experts and weights.shared are empty, cfg.n_shared is 0, and `routed` was
    // made by packed_by.pack_experts for cfg's (n_experts, d_model, d_ff). The layer then runs on
    // packed_by only: set_backend to another backend throws moe::Error (there is nothing to
    // repack from), and mutable_weights() keeps the pack (router, noise and selection bias change).
    MoeLayer(MoeLayerConfig cfg, MoeLayerWeights weights, const Backend& packed_by,
             std::unique_ptr<PackedExperts> routed);
    ~MoeLayer();
    MoeLayer(MoeLayer&&) noexcept;
    MoeLayer& operator=(MoeLayer&&) noexcept;

    const MoeLayerConfig& config() const { return cfg_; }
    const MoeLayerWeights& weights() const { return w_; }
    MoeLayerWeights& mutable_weights();  // invalidates packed copies; they are rebuilt on next forward
    bool experts_packed_only() const { return packed_only_; }

    // x: (n_tokens, d_model). Writes y (n_tokens, d_model) and the routing trace.
    // token_ids (n_tokens) are used by Hash routing only. Throws moe::Error on bad knobs.
    // rc.shared_experts = false skips the shared experts (y is the routed part alone) and leaves
    // cache->shared_h_* empty.
    void forward(ConstMatRef x, const RouterConfig& rc, std::span<const int32_t> token_ids,
                 Mat& y, RoutingTrace& trace, MoeForwardCache* cache = nullptr,
                 MoeForwardProfile* profile = nullptr) const;

    // The backend the math runs on (core/engine/backend.h); CPU unless set. Packed weights are rebuilt
    // for the new backend on the next forward.
    void set_backend(const Backend& backend);
    const Backend& backend() const { return *backend_; }

    // Router logits h = x W_r^T (+ b): (n_tokens, n_experts).
    void router_logits(ConstMatRef x, Mat& logits) const;

private:
    struct Packed;
    MoeLayerConfig cfg_;
    MoeLayerWeights w_;
    const Backend* backend_;
    mutable std::unique_ptr<Packed> packed_;
    bool packed_only_ = false;  // the experts exist only in packed_ (second constructor)
};

// y = E(x) for one expert, rows = tokens: (n_rows, d_model) -> (n_rows, d_model). Plain Eigen;
// the reference the fast path and the CUDA backend are compared against.
void expert_forward_reference(const ExpertWeights& e, Activation act, ConstMatRef x, Mat& y);

float gelu(float x);   // tanh approximation, as GPT-2
float silu(float x);

}  // namespace moe
