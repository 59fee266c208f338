// Parameter and compute counter: config.json parsing, per-layer counting, the JSON report.
//
// [SECTION] Checked arithmetic
// [SECTION] Field readers
// [SECTION] Per-architecture parsing
// [SECTION] Counting
// [SECTION] Report JSON
#include "core/teach/params.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/io/file_io.h"
#include "core/io/json_input.h"
#include "core/io/limits.h"
#include "core/teach/format.h"

namespace moe {

using nlohmann::json;

const char* attention_kind_name(AttentionKind k) {
    switch (k) {
        case AttentionKind::MHA: return "MHA";
        case AttentionKind::GQA: return "GQA";
        case AttentionKind::MLA: return "MLA";
    }
    return "?";
}

const std::vector<std::string>& known_model_types() {
    static const std::vector<std::string> kTypes = {
        "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "deepseek_v2", "deepseek_v3",
        "kimi_k2", "llama", "mistral", "qwen2", "qwen3"};
    return kTypes;
}

namespace {

// [SECTION] Checked arithmetic
// Configs come from outside: a hostile or mistyped one must not wrap around silently.
int64_t mul(int64_t a, int64_t b, const std::string& where) {
    int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r))
        throw Error(where, "", "parameter count overflows 64 bits", "check the config's sizes");
    return r;
}
int64_t add(int64_t a, int64_t b, const std::string& where) {
    int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r))
        throw Error(where, "", "parameter count overflows 64 bits", "check the config's sizes");
    return r;
}

// [SECTION] Field readers
// The upper bounds are core/io/limits.h's.
constexpr int64_t kMaxWidth = kMaxModelWidth;

struct Reader {
    const json& j;
    const std::string& where;

    bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }

    // An integer field in [lo, hi]. Absent (or null) gives fallback when not required.
    int64_t integer(const char* key, bool required, int64_t fallback, int64_t lo, int64_t hi) const {
        if (!has(key)) {
            if (required) throw Error(where, key, "is missing", "a " + std::string(j.value("model_type", "")) + " config.json needs it");
            return fallback;
        }
        return json_integer(j.at(key), where, key, lo, hi, "");
    }

    bool boolean(const char* key, bool fallback) const {
        if (!has(key)) return fallback;
        const json& v = j.at(key);
        if (!v.is_boolean()) throw Error(where, key, "is " + json_described(v), "expected true or false");
        return v.get<bool>();
    }

    std::string string(const char* key, const std::string& fallback) const {
        if (!has(key)) return fallback;
        const json& v = j.at(key);
        if (!v.is_string()) throw Error(where, key, "is " + json_described(v), "expected a string");
        return v.get<std::string>();
    }

    // A list of layer indices (qwen's mlp_only_layers).
    std::set<int64_t> index_list(const char* key, int64_t n_layers) const {
        std::set<int64_t> out;
        if (!has(key)) return out;
        const json& v = j.at(key);
        if (!v.is_array()) throw Error(where, key, "is " + json_described(v), "expected a list of layer indices");
        for (size_t i = 0; i < v.size(); ++i)
            out.insert(json_integer(v[i], where, std::string(key) + "[" + std::to_string(i) + "]", 0, n_layers - 1, "a layer index"));
        return out;
    }
};

// [SECTION] Per-architecture parsing
void read_common(const Reader& r, ModelConfig& c) {
    c.vocab_size = r.integer("vocab_size", true, 0, 1, kMaxVocab);
    c.d_model = r.integer("hidden_size", true, 0, 1, kMaxWidth);
    c.n_layers = r.integer("num_hidden_layers", true, 0, 1, kMaxLayers);
    c.n_heads = r.integer("num_attention_heads", true, 0, 1, kMaxHeads);
    c.tied_embeddings = r.boolean("tie_word_embeddings", false);
}

// MHA / GQA attention as in llama, mixtral, qwen, olmoe, granite.
void read_gqa(const Reader& r, ModelConfig& c) {
    c.n_kv_heads = r.integer("num_key_value_heads", false, c.n_heads, 1, kMaxHeads);
    if (c.n_heads % c.n_kv_heads != 0)
        throw Error(r.where, "num_key_value_heads", "is " + std::to_string(c.n_kv_heads) + ", which does not divide num_attention_heads " + std::to_string(c.n_heads),
                    "each key/value head serves a whole group of query heads");
    if (!r.has("head_dim") && c.d_model % c.n_heads != 0)
        throw Error(r.where, "head_dim", "is missing and hidden_size " + std::to_string(c.d_model) + " is not a multiple of num_attention_heads " + std::to_string(c.n_heads),
                    "give head_dim explicitly");
    c.head_dim = r.integer("head_dim", false, c.d_model / c.n_heads, 1, kMaxWidth);
    c.attention = c.n_kv_heads == c.n_heads ? AttentionKind::MHA : AttentionKind::GQA;
    const bool bias = r.boolean("attention_bias", false);
    c.qkv_bias = bias;
    c.o_bias = bias;
}

void read_sliding_window(const Reader& r, ModelConfig& c) {
    // Qwen configs carry a window they do not use unless use_sliding_window is true.
    if (!r.boolean("use_sliding_window", true)) return;
    c.sliding_window = r.integer("sliding_window", false, 0, 0, int64_t(1) << 40);
}

void all_moe(ModelConfig& c) { c.moe_layer.assign(static_cast<size_t>(c.n_layers), true); }

void read_expert_count(const Reader& r, ModelConfig& c, const char* experts_key) {
    c.n_experts = r.integer(experts_key, true, 0, 1, kMaxExperts);
    c.k = r.integer("num_experts_per_tok", true, 0, 1, kMaxExperts);
    if (c.k > c.n_experts)
        throw Error(r.where, "num_experts_per_tok", "is " + std::to_string(c.k) + ", more than the " + std::to_string(c.n_experts) + " experts",
                    "K must be at most " + std::string(experts_key));
}

void parse_mixtral_like(const Reader& r, ModelConfig& c) {  // mixtral, granitemoe
    read_gqa(r, c);
    read_expert_count(r, c, "num_local_experts");
    c.d_ff_expert = r.integer("intermediate_size", true, 0, 1, kMaxWidth);
    read_sliding_window(r, c);
    all_moe(c);
}

void parse_qwen_moe(const Reader& r, ModelConfig& c, bool qwen3) {
    read_gqa(r, c);
    if (!qwen3) {
        // Qwen2-MoE's attention always has q/k/v biases and no o bias.
        c.qkv_bias = true;
        c.o_bias = false;
    } else {
        c.qk_norm_q = c.head_dim;  // per-head RMSNorm on q and k, shared across heads
        c.qk_norm_k = c.head_dim;
    }
    c.n_experts = r.integer("num_experts", true, 0, 0, kMaxExperts);
    c.k = r.integer("num_experts_per_tok", c.n_experts > 0, 0, 1, kMaxExperts);
    if (c.k > c.n_experts)
        throw Error(r.where, "num_experts_per_tok", "is " + std::to_string(c.k) + ", more than num_experts " + std::to_string(c.n_experts));
    c.d_ff_expert = r.integer("moe_intermediate_size", c.n_experts > 0, 0, 1, kMaxWidth);
    c.d_ff_dense = r.integer("intermediate_size", false, 0, 1, kMaxWidth);
    if (!qwen3) {
        c.d_ff_shared = r.integer("shared_expert_intermediate_size", false, 0, 0, kMaxWidth);
        c.n_shared = c.d_ff_shared > 0 ? 1 : 0;
        c.shared_expert_gate = c.n_shared > 0;
    }
    const int64_t step = r.integer("decoder_sparse_step", false, 1, 1, kMaxLayers);
    const std::set<int64_t> mlp_only = r.index_list("mlp_only_layers", c.n_layers);
    c.moe_layer.resize(static_cast<size_t>(c.n_layers));
    for (int64_t i = 0; i < c.n_layers; ++i)
        c.moe_layer[static_cast<size_t>(i)] = !mlp_only.count(i) && c.n_experts > 0 && (i + 1) % step == 0;
    read_sliding_window(r, c);
}

void parse_olmoe(const Reader& r, ModelConfig& c) {
    read_gqa(r, c);
    read_expert_count(r, c, "num_experts");
    c.d_ff_expert = r.integer("intermediate_size", true, 0, 1, kMaxWidth);
    // OLMoE normalises the whole q and k projections (not per head).
    c.qk_norm_q = c.n_heads * c.head_dim;
    c.qk_norm_k = c.n_kv_heads * c.head_dim;
    all_moe(c);
}

void parse_deepseek(const Reader& r, ModelConfig& c, bool v3_family) {
    c.attention = AttentionKind::MLA;
    c.n_kv_heads = c.n_heads;  // MLA keeps a key and value per head, decompressed from the latent
    c.q_lora_rank = r.integer("q_lora_rank", false, 0, 0, kMaxWidth);  // null in DeepSeek-V2-Lite
    c.kv_lora_rank = r.integer("kv_lora_rank", true, 0, 1, kMaxWidth);
    c.qk_nope_head_dim = r.integer("qk_nope_head_dim", true, 0, 0, kMaxWidth);
    c.qk_rope_head_dim = r.integer("qk_rope_head_dim", true, 0, 0, kMaxWidth);
    c.v_head_dim = r.integer("v_head_dim", true, 0, 1, kMaxWidth);
    if (c.qk_nope_head_dim + c.qk_rope_head_dim == 0)
        throw Error(r.where, "qk_nope_head_dim", "and qk_rope_head_dim are both 0", "a query head needs a positive width");
    c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
    const bool bias = r.boolean("attention_bias", false);
    c.qkv_bias = bias;
    c.o_bias = bias;

    c.n_experts = r.integer("n_routed_experts", false, 0, 0, kMaxExperts);
    c.d_ff_dense = r.integer("intermediate_size", true, 0, 1, kMaxWidth);
    if (c.n_experts > 0) {
        c.k = r.integer("num_experts_per_tok", true, 0, 1, kMaxExperts);
        if (c.k > c.n_experts)
            throw Error(r.where, "num_experts_per_tok", "is " + std::to_string(c.k) + ", more than n_routed_experts " + std::to_string(c.n_experts));
        c.d_ff_expert = r.integer("moe_intermediate_size", true, 0, 1, kMaxWidth);
        c.n_shared = r.integer("n_shared_experts", false, 0, 0, 1024);
        c.d_ff_shared = c.d_ff_expert;
    }
    // Aux-loss-free balancing adds a per-expert selection bias to every router.
    const std::string topk_method = r.string("topk_method", v3_family ? "noaux_tc" : "greedy");
    c.router_bias = topk_method == "noaux_tc";
    const int64_t first_dense = r.integer("first_k_dense_replace", false, 0, 0, c.n_layers);
    const int64_t freq = r.integer("moe_layer_freq", false, 1, 1, kMaxLayers);
    c.moe_layer.resize(static_cast<size_t>(c.n_layers));
    for (int64_t i = 0; i < c.n_layers; ++i)
        c.moe_layer[static_cast<size_t>(i)] = c.n_experts > 0 && i >= first_dense && i % freq == 0;
    c.n_mtp_layers = r.integer("num_nextn_predict_layers", false, 0, 0, kMaxLayers);
}

void parse_dense(const Reader& r, ModelConfig& c, const std::string& type) {
    read_gqa(r, c);
    if (type == "qwen2") {
        c.qkv_bias = true;
        c.o_bias = false;
    }
    if (type == "qwen3") {
        c.qk_norm_q = c.head_dim;
        c.qk_norm_k = c.head_dim;
    }
    c.d_ff_dense = r.integer("intermediate_size", true, 0, 1, kMaxWidth);
    read_sliding_window(r, c);
    c.moe_layer.assign(static_cast<size_t>(c.n_layers), false);
}

// [SECTION] Counting
int64_t ffn_params(const ModelConfig& c, int64_t d_ff, const std::string& where) {
    return mul(mul(c.gated_ffn ? 3 : 2, c.d_model, where), d_ff, where);
}

struct AttnCount {
    int64_t total = 0;   // weights and biases
    int64_t matmul = 0;  // weights only
    int64_t norms = 0;   // MLA latent norms, q/k norms
};

AttnCount attention_params(const ModelConfig& c, const std::string& w) {
    AttnCount a;
    const int64_t d = c.d_model;
    if (c.attention == AttentionKind::MLA) {
        const int64_t qk = c.qk_nope_head_dim + c.qk_rope_head_dim;
        const int64_t q_out = mul(c.n_heads, qk, w);
        if (c.q_lora_rank > 0) {
            a.matmul = add(mul(d, c.q_lora_rank, w), mul(c.q_lora_rank, q_out, w), w);  // q_a, q_b
            a.norms += c.q_lora_rank;                                                     // q_a_layernorm
            if (c.qkv_bias) a.total += c.q_lora_rank;
        } else {
            a.matmul = mul(d, q_out, w);  // q_proj
            if (c.qkv_bias) a.total += q_out;
        }
        const int64_t kv_a_out = c.kv_lora_rank + c.qk_rope_head_dim;  // latent + shared RoPE key
        a.matmul = add(a.matmul, mul(d, kv_a_out, w), w);
        if (c.qkv_bias) a.total += kv_a_out;
        a.norms += c.kv_lora_rank;  // kv_a_layernorm
        // kv_b decompresses the latent into per-head no-RoPE keys and values.
        a.matmul = add(a.matmul, mul(c.kv_lora_rank, mul(c.n_heads, c.qk_nope_head_dim + c.v_head_dim, w), w), w);
        a.matmul = add(a.matmul, mul(mul(c.n_heads, c.v_head_dim, w), d, w), w);  // o_proj
        if (c.o_bias) a.total += d;
    } else {
        const int64_t q_out = mul(c.n_heads, c.head_dim, w);
        const int64_t kv_out = mul(c.n_kv_heads, c.head_dim, w);
        a.matmul = add(mul(d, add(q_out, mul(2, kv_out, w), w), w), mul(q_out, d, w), w);
        if (c.qkv_bias) a.total += q_out + 2 * kv_out;
        if (c.o_bias) a.total += d;
        a.norms += c.qk_norm_q + c.qk_norm_k;
    }
    a.total = add(a.total, a.matmul, w);
    return a;
}

void add_to(ParamGroup& g, int64_t total, int64_t active, int64_t matmul_total, int64_t matmul_active, const std::string& w) {
    g.total = add(g.total, total, w);
    g.active = add(g.active, active, w);
    g.matmul_total = add(g.matmul_total, matmul_total, w);
    g.matmul_active = add(g.matmul_active, matmul_active, w);
}

json group_json(const ParamGroup& g) {
    return json{{"total", g.total}, {"active", g.active}, {"matmul_total", g.matmul_total}, {"matmul_active", g.matmul_active}};
}

}  // namespace

ModelConfig parse_model_config(std::string_view text, const std::string& where) {
    const json j = parse_json_input(text, where, "", "a Hugging Face config.json is one JSON object");
    if (!j.is_object()) throw Error(where, "", "is JSON but not an object", "a Hugging Face config.json is one JSON object");

    const Reader r{j, where};
    std::string hint = "known model types:";
    for (const std::string& t : known_model_types()) hint += " " + t;
    if (!r.has("model_type")) throw Error(where, "model_type", "is missing", hint);
    ModelConfig c;
    c.source = where;
    c.model_type = r.string("model_type", "");
    const std::string& t = c.model_type;
    if (std::find(known_model_types().begin(), known_model_types().end(), t) == known_model_types().end())
        throw Error(where, "model_type", "'" + t + "' is not a model type moelab can count", hint);

    read_common(r, c);
    const std::string act = r.string("hidden_act", "silu");
    if (act != "silu" && act != "swiglu")
        throw Error(where, "hidden_act", "'" + act + "' is not supported for " + t, "these architectures use gated SiLU (silu) FFNs");
    if (t == "mixtral" || t == "granitemoe") parse_mixtral_like(r, c);
    else if (t == "qwen2_moe") parse_qwen_moe(r, c, false);
    else if (t == "qwen3_moe") parse_qwen_moe(r, c, true);
    else if (t == "olmoe") parse_olmoe(r, c);
    else if (t == "deepseek_v2") parse_deepseek(r, c, false);
    else if (t == "deepseek_v3" || t == "kimi_k2") parse_deepseek(r, c, true);
    else parse_dense(r, c, t);

    const bool any_dense = std::find(c.moe_layer.begin(), c.moe_layer.end(), false) != c.moe_layer.end();
    if (any_dense && c.d_ff_dense <= 0)
        throw Error(where, "intermediate_size", "is missing but some layers are dense", "dense layers need their FFN width");
    return c;
}

ModelConfig load_model_config(const std::string& path) {
    return parse_model_config(read_file(path, kMaxConfigBytes), path);
}

double dtype_bytes(std::string_view dtype, const std::string& where) {
    std::string s(dtype);
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (s == "f32" || s == "fp32" || s == "float32") return 4;
    if (s == "bf16" || s == "bfloat16" || s == "f16" || s == "fp16" || s == "float16") return 2;
    if (s == "fp8" || s == "f8" || s == "int8" || s == "i8" || s == "q8") return 1;
    if (s == "int4" || s == "i4" || s == "q4" || s == "fp4" || s == "nf4") return 0.5;
    throw Error(where, "dtype", "'" + std::string(dtype) + "' is not a known dtype", "use f32, bf16, f16, fp8, int8 or int4");
}

ParamReport count_model_params(const ModelConfig& c, std::string_view dtype, int64_t context) {
    const std::string w = c.source.empty() ? std::string("ModelConfig") : c.source;
    MOE_ASSERT(static_cast<int64_t>(c.moe_layer.size()) == c.n_layers, "moe_layer must have one entry per layer");
    if (context < 1 || context > (int64_t(1) << 40))
        throw Error(w, "context", "is " + std::to_string(context), "expected a context length between 1 and 2^40 tokens");
    ParamReport r;
    r.model_type = c.model_type;
    r.dtype = std::string(dtype);
    r.bytes_per_param = dtype_bytes(dtype, w);
    r.context = context;
    ParamBreakdown& b = r.breakdown;

    const int64_t table = mul(c.vocab_size, c.d_model, w);
    // Model cards count the whole table as active; a token only reads one row (no FLOPs).
    add_to(b.embeddings, table, table, 0, 0, w);
    add_to(b.head, c.tied_embeddings ? 0 : table, c.tied_embeddings ? 0 : table, table, table, w);
    add_to(b.norms, c.d_model, c.d_model, 0, 0, w);  // final norm

    const AttnCount attn = attention_params(c, w);
    const int64_t expert = ffn_params(c, c.d_ff_expert, w);
    const int64_t shared_one = ffn_params(c, c.d_ff_shared, w);
    const int64_t qk_dim = c.attention == AttentionKind::MLA ? c.qk_nope_head_dim + c.qk_rope_head_dim : c.head_dim;
    const int64_t v_dim = c.attention == AttentionKind::MLA ? c.v_head_dim : c.head_dim;
    const int64_t ctx = c.sliding_window > 0 ? std::min(context, c.sliding_window) : context;

    for (int64_t i = 0; i < c.n_layers; ++i) {
        add_to(b.attention, attn.total, attn.total, attn.matmul, attn.matmul, w);
        const int64_t norms = add(2 * c.d_model, attn.norms, w);  // input + post-attention RMSNorm
        add_to(b.norms, norms, norms, 0, 0, w);
        r.attn_score_flops_per_token += 2.0 * static_cast<double>(c.n_heads) * static_cast<double>(qk_dim + v_dim) * static_cast<double>(ctx);
        if (c.moe_layer[static_cast<size_t>(i)]) {
            ++r.n_moe_layers;
            const int64_t router_w = mul(c.n_experts, c.d_model, w);
            const int64_t router = add(router_w, c.router_bias ? c.n_experts : 0, w);
            add_to(b.router, router, router, router_w, router_w, w);
            add_to(b.experts, mul(c.n_experts, expert, w), mul(c.k, expert, w), mul(c.n_experts, expert, w), mul(c.k, expert, w), w);
            const int64_t sh_w = add(mul(c.n_shared, shared_one, w), c.shared_expert_gate ? c.d_model : 0, w);
            add_to(b.shared, sh_w, sh_w, sh_w, sh_w, w);
        } else {
            ++r.n_dense_layers;
            const int64_t ffn = ffn_params(c, c.d_ff_dense, w);
            add_to(b.dense_ffn, ffn, ffn, ffn, ffn, w);
        }
    }

    int64_t matmul_total = 0, matmul_active = 0;
    for (const ParamGroup* g : {&b.embeddings, &b.attention, &b.router, &b.experts, &b.shared, &b.dense_ffn, &b.norms, &b.head}) {
        r.total_params = add(r.total_params, g->total, w);
        r.active_params = add(r.active_params, g->active, w);
        matmul_total = add(matmul_total, g->matmul_total, w);
        matmul_active = add(matmul_active, g->matmul_active, w);
    }
    r.active_fraction = r.total_params > 0 ? static_cast<double>(r.active_params) / static_cast<double>(r.total_params) : 0.0;
    r.flops_per_token = 2.0 * static_cast<double>(matmul_active);
    r.dense_same_total_flops_per_token = 2.0 * static_cast<double>(matmul_total);
    r.resident_bytes = static_cast<double>(r.total_params) * r.bytes_per_param;

    r.notes.push_back("active counts the whole embedding table and LM head, as model cards do; a token reads only one embedding row (" +
                      std::to_string(c.d_model) + " weights), which costs no FLOPs");
    r.notes.push_back("FLOPs/token = 2 x weights multiplied per token (attention projections, router, " + std::to_string(c.k) +
                      " routed + " + std::to_string(c.n_shared) + " shared experts, dense FFNs, LM head); norms, biases, softmax and activations are left out");
    r.notes.push_back("attention score FLOPs (QK^T + AV) are separate: one token attending over " + std::to_string(ctx) + " positions" +
                      (c.sliding_window > 0 && ctx < context ? " (sliding window)" : "") +
                      (c.attention == AttentionKind::MLA ? "; MLA counted in its plain (non-absorbed) form" : ""));
    if (c.n_mtp_layers > 0)
        r.notes.push_back("the multi-token-prediction module (" + std::to_string(c.n_mtp_layers) + " layer) is not counted, as in the published totals");
    r.notes.push_back("total " + format_count(static_cast<double>(r.total_params)) + " stays resident even though only " + format_count(static_cast<double>(r.active_params)) + " are active per token");
    return r;
}

// [SECTION] Report JSON
std::string report_to_json(const ParamReport& r) {
    const ParamBreakdown& b = r.breakdown;
    json j = {
        {"model_type", r.model_type},
        {"total_params", r.total_params},
        {"active_params", r.active_params},
        {"active_fraction", r.active_fraction},
        {"n_moe_layers", r.n_moe_layers},
        {"n_dense_layers", r.n_dense_layers},
        {"flops_per_token", r.flops_per_token},
        {"context", r.context},
        {"attn_score_flops_per_token", r.attn_score_flops_per_token},
        {"dense_same_total_flops_per_token", r.dense_same_total_flops_per_token},
        {"dtype", r.dtype},
        {"bytes_per_param", r.bytes_per_param},
        {"resident_bytes", r.resident_bytes},
        {"breakdown",
         {{"embeddings", group_json(b.embeddings)},
          {"attention", group_json(b.attention)},
          {"router", group_json(b.router)},
          {"experts", group_json(b.experts)},
          {"shared", group_json(b.shared)},
          {"dense_ffn", group_json(b.dense_ffn)},
          {"norms", group_json(b.norms)},
          {"head", group_json(b.head)}}},
        {"notes", r.notes},
    };
    return j.dump(2);
}

}  // namespace moe
