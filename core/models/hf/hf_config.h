// A Hugging Face MoE checkpoint's config.json, read in one place into what the forward needs.
//
// Every architecture is described by the same fields; each field says which model_type sets it
// and from which config key (transformers' configuration_<arch>.py names and defaults). A
// missing, mistyped or out-of-range key throws moe::Error naming the file and the key.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/engine/routing.h"

namespace moe::hf {

enum class Arch : int { Mixtral = 0, Qwen2Moe, Qwen3Moe, Olmoe, GraniteMoe, DeepseekV2, DeepseekV3 };
const char* arch_name(Arch a);  // the family's model_type ("deepseek_v3" also for kimi_k2)

enum class QkNorm : int {
    None = 0,
    PerHead,  // qwen3_moe: RMSNorm(head_dim) on every head of q and k
    Whole,    // olmoe: RMSNorm over the whole q projection (n_heads*head_dim) and k projection
};

// How the rotary pairs are laid out in a head's rotated part.
enum class RopePairs : int {
    Half = 0,     // (i, i + d/2), llama's rotate_half
    Interleaved,  // (2i, 2i + 1): DeepSeek-V2's complex form, V3's rope_interleave
};

struct HfConfig {
    std::string where;        // the config.json path, for errors
    std::string model_type;   // as written (kimi_k2 stays kimi_k2)
    Arch arch = Arch::Mixtral;

    int vocab = 0;            // vocab_size
    int d_model = 0;          // hidden_size
    int n_layers = 0;         // num_hidden_layers
    int n_heads = 0;          // num_attention_heads
    int n_kv_heads = 0;       // num_key_value_heads (default n_heads)
    int head_dim = 0;         // head_dim if given (qwen3_moe), else hidden_size / num_attention_heads
    float norm_eps = 1e-6f;   // rms_norm_eps: the decoder's norms (MLA's latent norms use 1e-6, as transformers)
    int max_position = 0;     // max_position_embeddings
    bool tie_embeddings = false;  // tie_word_embeddings: no lm_head tensor, the head is embed_tokens
    int d_ff_dense = 0;       // intermediate_size of the dense layers (qwen2/3_moe, deepseek)

    // Attention (GQA family)
    bool qkv_bias = false;    // qwen2_moe: q, k, v projections have biases
    bool o_bias = false;
    QkNorm qk_norm = QkNorm::None;
    float clip_qkv = 0.0f;    // olmoe clip_qkv: q, k, v clamped to [-c, c] after the norms; 0 = none
    // Attention (MLA: deepseek_v2/v3)
    bool mla = false;
    int q_lora_rank = 0;      // 0 = q_proj (config null)
    int kv_lora_rank = 0;
    int qk_nope_dim = 0;
    int qk_rope_dim = 0;
    int v_head_dim = 0;

    // Rotary embedding (rope_theta or rope_parameters.rope_theta; rope_scaling yarn)
    double rope_theta = 10000.0;
    int rope_dim = 0;         // rotated width per head: head_dim, or qk_rope_head_dim for MLA
    RopePairs rope_pairs = RopePairs::Half;
    std::vector<float> inv_freq;   // (rope_dim / 2) after YaRN when configured
    float rope_attention_factor = 1.0f;  // YaRN's attention_factor: multiplies cos and sin
    float attn_scale = 0.0f;  // softmax scale (granite attention_multiplier, MLA's mscale^2 on V3)

    // Granite multipliers
    float embedding_multiplier = 1.0f;
    float residual_multiplier = 1.0f;
    float logits_scaling = 1.0f;  // logits are divided by it

    // MoE
    int n_experts = 0;
    int k = 0;                // num_experts_per_tok
    int d_ff_expert = 0;
    int n_shared = 0;         // shared experts (qwen2_moe: 1 when shared_expert_intermediate_size > 0)
    int d_ff_shared = 0;      // width of the ONE shared MLP (deepseek: moe_intermediate_size * n_shared_experts)
    bool shared_gate = false; // qwen2_moe: sigmoid(shared_expert_gate x) scales the shared expert
    bool router_bias = false; // deepseek_v3: e_score_correction_bias, for selection only
    std::vector<bool> moe_layer;   // (n_layers)
    RouterConfig router;      // the trained routing in the engine's schemes
    std::vector<std::string> routing_notes;
};

// Parses config.json text (`where` names the file). Throws moe::Error naming the key.
HfConfig parse_hf_config(std::string_view json_text, const std::string& where);
HfConfig read_hf_config(const std::string& config_json_path);

// The model_types this loader runs.
const std::vector<std::string>& hf_model_types();

}  // namespace moe::hf
