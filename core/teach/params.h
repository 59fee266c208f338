// Parameter and compute counter for real MoE models (MOE_REFERENCE.md §5).
//
// A ModelConfig is read from a Hugging Face config.json (mixtral, qwen2_moe, qwen3_moe, olmoe,
// granitemoe, deepseek_v2, deepseek_v3, kimi_k2, and dense llama-like models) and counted
// layer by layer: attention (MHA, GQA, or DeepSeek's MLA), norms, routers, routed and shared
// experts, dense FFN layers, embeddings and the LM head.
//
// Two numbers always travel together, because a MoE model's size is not its per-token cost:
//   total_params   every weight, all experts; what must stay resident in memory
//   active_params  the weights one token uses, counted the way model cards count it: the whole
//                  embedding table and head, attention, routers, K routed + all shared experts.
// FLOPs per token = 2 per multiply-add of the weights a token is multiplied by (the input
// embedding is a lookup, so it costs nothing; norms and biases are negligible and excluded).
// Attention's sequence-dependent score FLOPs (QK^T and AV) are reported separately, for one
// token attending over a stated context length.
//
// [SECTION] ModelConfig
// [SECTION] Report
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

// [SECTION] ModelConfig
enum class AttentionKind : int { MHA = 0, GQA, MLA };
const char* attention_kind_name(AttentionKind k);

struct ModelConfig {
    std::string source;       // file the config came from (for error messages)
    std::string model_type;   // as in config.json: "mixtral", "deepseek_v3", ...
    int64_t vocab_size = 0;
    int64_t d_model = 0;      // hidden_size
    int64_t n_layers = 0;
    bool tied_embeddings = false;

    // Attention. MHA/GQA: q (n_heads*head_dim), k and v (n_kv_heads*head_dim), o back to d_model.
    AttentionKind attention = AttentionKind::MHA;
    int64_t n_heads = 0;
    int64_t n_kv_heads = 0;
    int64_t head_dim = 0;
    bool qkv_bias = false;        // q, k, v projections have biases (qwen2_moe)
    bool o_bias = false;          // o projection has a bias (attention_bias in llama-like configs)
    int64_t qk_norm_q = 0;        // width of the q norm weight (qwen3: head_dim, olmoe: n_heads*head_dim); 0 = none
    int64_t qk_norm_k = 0;        // width of the k norm weight
    // MLA (DeepSeek-V2/V3): q through a low-rank bottleneck (q_lora_rank, 0 = a plain q_proj),
    // k and v from a shared compressed latent (kv_lora_rank) plus a decoupled RoPE key.
    int64_t q_lora_rank = 0;
    int64_t kv_lora_rank = 0;
    int64_t qk_nope_head_dim = 0;
    int64_t qk_rope_head_dim = 0;
    int64_t v_head_dim = 0;
    int64_t sliding_window = 0;   // 0 = full attention

    // FFN. Every FFN here is gated (SwiGLU: 3 matrices) unless gated_ffn is false (2 matrices).
    bool gated_ffn = true;
    int64_t d_ff_dense = 0;       // FFN width of dense (non-MoE) layers
    int64_t d_ff_expert = 0;      // per routed expert
    int64_t n_experts = 0;        // routed experts per MoE layer
    int64_t k = 0;                // routed experts per token
    int64_t n_shared = 0;         // shared experts (always on)
    int64_t d_ff_shared = 0;      // FFN width of EACH shared expert
    bool shared_expert_gate = false;  // qwen2_moe: a (1, d_model) sigmoid gate on the shared expert
    bool router_bias = false;     // a per-expert bias in the router (DeepSeek-V3's e_score_correction_bias)
    std::vector<bool> moe_layer;  // (n_layers) true where the FFN is a MoE layer
    int64_t n_mtp_layers = 0;     // DeepSeek-V3's multi-token-prediction module: NOT counted
};

// Parses a config.json text. `where` names the file in errors. Throws moe::Error naming the file
// and the field: invalid JSON (with line and column), a missing or mistyped field, a negative or
// absurd value, or an unknown model_type (the hint lists the known ones).
ModelConfig parse_model_config(std::string_view json_text, const std::string& where);
ModelConfig load_model_config(const std::string& path);

// The model_type values parse_model_config understands.
const std::vector<std::string>& known_model_types();

// [SECTION] Report
struct ParamGroup {
    int64_t total = 0;          // parameters stored
    int64_t active = 0;         // parameters one token uses (model-card convention, see top)
    int64_t matmul_total = 0;   // weights of matrix multiplies, all experts
    int64_t matmul_active = 0;  // weights one token is multiplied by (the FLOPs basis)
};

struct ParamBreakdown {
    ParamGroup embeddings;  // input token embedding table
    ParamGroup attention;   // q/k/v/o (or MLA) projections and their biases
    ParamGroup router;      // router weights (and selection biases)
    ParamGroup experts;     // routed experts
    ParamGroup shared;      // shared experts (and qwen2_moe's shared-expert gate)
    ParamGroup dense_ffn;   // FFNs of the dense layers (first_k_dense_replace, mlp_only_layers, ...)
    ParamGroup norms;       // RMSNorm weights, including MLA's latent norms and q/k norms
    ParamGroup head;        // LM head (0 stored when tied, but still multiplied by)
};

struct ParamReport {
    std::string model_type;
    int64_t total_params = 0;
    int64_t active_params = 0;
    double active_fraction = 0;              // active / total
    int64_t n_moe_layers = 0;
    int64_t n_dense_layers = 0;
    double flops_per_token = 0;              // 2 * matmul_active: weights only, no attention scores
    int64_t context = 0;                     // context length the score FLOPs are stated for
    double attn_score_flops_per_token = 0;   // QK^T + AV for one token attending over `context` positions
    double dense_same_total_flops_per_token = 0;  // 2 * matmul_total: a dense model as big as this one
    std::string dtype;                       // of resident_bytes
    double bytes_per_param = 0;
    double resident_bytes = 0;               // total_params * bytes_per_param: all experts stay resident
    ParamBreakdown breakdown;
    std::vector<std::string> notes;          // what the count includes or leaves out, for people
};

// Bytes per parameter for "f32", "bf16", "f16", "fp8", "int8", "int4" (and common spellings).
// Throws moe::Error naming `where` and listing the known dtypes.
double dtype_bytes(std::string_view dtype, const std::string& where);

// Throws moe::Error if the counts overflow 64 bits or dtype/context are bad.
ParamReport count_model_params(const ModelConfig& cfg, std::string_view dtype = "bf16", int64_t context = 4096);

// The report as JSON (pretty, stable keys), for `moelab-cli params --json` and the app.
std::string report_to_json(const ParamReport& r);

}  // namespace moe
