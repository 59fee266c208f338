// config.json -> HfConfig, following each transformers configuration_<arch>.py (keys and
// defaults) and the decoder layers' choices of dense vs MoE FFN.
//
// [SECTION] Key readers
// [SECTION] Rotary embedding (default and YaRN)
// [SECTION] Per-architecture fields
#include "core/models/hf/hf_config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io/file_io.h"
#include "core/io/json_input.h"
#include "core/io/limits.h"

namespace moe::hf {

using nlohmann::json;

const char* arch_name(Arch a) {
    switch (a) {
        case Arch::Mixtral: return "mixtral";
        case Arch::Qwen2Moe: return "qwen2_moe";
        case Arch::Qwen3Moe: return "qwen3_moe";
        case Arch::Olmoe: return "olmoe";
        case Arch::GraniteMoe: return "granitemoe";
        case Arch::DeepseekV2: return "deepseek_v2";
        case Arch::DeepseekV3: return "deepseek_v3";
    }
    return "?";
}

const std::vector<std::string>& hf_model_types() {
    static const std::vector<std::string> kTypes = {"mixtral",    "qwen2_moe",   "qwen3_moe",   "olmoe",
                                                    "granitemoe", "deepseek_v2", "deepseek_v3", "kimi_k2"};
    return kTypes;
}

namespace {

// [SECTION] Key readers
// Sizes no real model reaches (core/io/limits.h); they keep a hostile config from asking for
// absurd allocations.
constexpr int64_t kMaxWidth = kMaxLoadedWidth;
constexpr int64_t kMaxVocab = kMaxLoadedVocab;
constexpr int64_t kMaxLayers = kMaxLoadedLayers;
constexpr int64_t kMaxExperts = kMaxLayerExperts;

struct Reader {
    const json& j;
    const std::string& where;

    const json* find(const char* key) const {
        const auto it = j.find(key);
        return it == j.end() || it->is_null() ? nullptr : &*it;
    }
    [[noreturn]] void bad(const char* key, const std::string& problem, const std::string& hint) const {
        throw Error(where, key, problem, hint);
    }
    int integer(const char* key, int64_t lo, int64_t hi) const {
        const json* v = find(key);
        if (!v) bad(key, "is missing", "expected an integer in " + num(lo) + ".." + num(hi));
        return integer_of(key, *v, lo, hi);
    }
    int integer_or(const char* key, int fallback, int64_t lo, int64_t hi) const {
        const json* v = find(key);
        return v ? integer_of(key, *v, lo, hi) : fallback;
    }
    int integer_of(const char* key, const json& v, int64_t lo, int64_t hi) const {
        return static_cast<int>(json_integer(v, where, key, lo, hi, ""));  // callers' hi fits an int
    }
    double real_or(const char* key, double fallback, double lo, double hi) const {
        const json* v = find(key);
        if (!v) return fallback;
        return real_of(key, *v, lo, hi);
    }
    double real_of(const char* key, const json& v, double lo, double hi) const {
        if (!v.is_number()) bad(key, "is " + json_shown(v), "expected a number in [" + fnum(lo) + ", " + fnum(hi) + "]");
        const double x = v.get<double>();
        if (!std::isfinite(x) || x < lo || x > hi) bad(key, "is " + json_shown(v), "expected a number in [" + fnum(lo) + ", " + fnum(hi) + "]");
        return x;
    }
    bool boolean_or(const char* key, bool fallback) const {
        const json* v = find(key);
        if (!v) return fallback;
        if (!v->is_boolean()) bad(key, "is " + v->dump(), "expected true or false");
        return v->get<bool>();
    }
    std::string string_or(const char* key, const std::string& fallback) const {
        const json* v = find(key);
        if (!v) return fallback;
        if (!v->is_string()) bad(key, "is " + v->dump(), "expected a string");
        return v->get<std::string>();
    }
};

// [SECTION] Rotary embedding (default and YaRN)
// transformers' modeling_rope_utils: _compute_default_rope_parameters and _compute_yarn_parameters.
double yarn_get_mscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

void read_rope(const Reader& r, HfConfig& c) {
    // Newer configs nest rope_theta and the scaling into rope_parameters; older ones use
    // rope_theta and rope_scaling at the top level.
    const json* params = r.find("rope_parameters");
    const json* scaling = params ? params : r.find("rope_scaling");
    c.rope_theta = r.real_or("rope_theta", c.rope_theta, 1.0, 1e12);
    if (params && params->is_object() && params->contains("rope_theta"))
        c.rope_theta = r.real_of("rope_parameters.rope_theta", (*params)["rope_theta"], 1.0, 1e12);
    const int dim = c.rope_dim;
    std::vector<double> extrapolation(static_cast<size_t>(dim / 2));
    for (int i = 0; i < dim / 2; ++i)
        extrapolation[static_cast<size_t>(i)] = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / dim);
    c.inv_freq.assign(extrapolation.begin(), extrapolation.end());
    c.rope_attention_factor = 1.0f;
    if (!scaling || !scaling->is_object()) return;
    const Reader s{*scaling, r.where};
    std::string type = s.string_or("rope_type", s.string_or("type", "default"));
    if (type == "default") return;
    if (type != "yarn")
        throw Error(r.where, "rope_scaling.type", "is '" + type + "'", "this loader runs default and yarn rotary embeddings");
    const int orig = s.integer_or("original_max_position_embeddings", c.max_position, 1, 1 << 26);
    double factor = s.real_or("factor", 0.0, 0.0, 1e6);
    if (factor == 0.0) factor = static_cast<double>(c.max_position) / orig;  // transformers: factor None
    const json* af = s.find("attention_factor");
    const double mscale = s.real_or("mscale", 0.0, 0.0, 1e3);
    const double mscale_all_dim = s.real_or("mscale_all_dim", 0.0, 0.0, 1e3);
    double attention_factor = 0;
    if (af) attention_factor = s.real_of("rope_scaling.attention_factor", *af, 0.0, 1e3);
    else if (mscale != 0.0 && mscale_all_dim != 0.0)
        attention_factor = yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim);
    else attention_factor = yarn_get_mscale(factor, 1.0);
    const double beta_fast = s.real_or("beta_fast", 0.0, 0.0, 1e6) != 0.0 ? s.real_or("beta_fast", 32.0, 0.0, 1e6) : 32.0;
    const double beta_slow = s.real_or("beta_slow", 0.0, 0.0, 1e6) != 0.0 ? s.real_or("beta_slow", 1.0, 0.0, 1e6) : 1.0;
    const bool truncate = s.boolean_or("truncate", true);
    auto correction_dim = [&](double rotations) {
        return (dim * std::log(orig / (rotations * 2.0 * M_PI))) / (2.0 * std::log(c.rope_theta));
    };
    double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
    if (truncate) {
        low = std::floor(low);
        high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;  // transformers: prevent the singularity
    for (int i = 0; i < dim / 2; ++i) {
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double extra_factor = 1.0 - ramp;
        const double e = extrapolation[static_cast<size_t>(i)];
        c.inv_freq[static_cast<size_t>(i)] = static_cast<float>(e / factor * (1.0 - extra_factor) + e * extra_factor);
    }
    c.rope_attention_factor = static_cast<float>(attention_factor);
    // DeepSeek-V3's attention also multiplies its softmax scale by mscale(factor, mscale_all_dim)^2.
    if (c.arch == Arch::DeepseekV3 && mscale_all_dim != 0.0) {
        const double m = yarn_get_mscale(factor, mscale_all_dim);
        c.attn_scale = static_cast<float>(c.attn_scale * m * m);
    }
}

// [SECTION] Per-architecture fields
void read_attention(const Reader& r, HfConfig& c) {
    c.n_heads = r.integer("num_attention_heads", 1, 4096);
    if (c.mla) {
        const json* ql = r.find("q_lora_rank");
        c.q_lora_rank = ql ? r.integer_of("q_lora_rank", *ql, 1, kMaxWidth) : 0;
        c.kv_lora_rank = r.integer("kv_lora_rank", 1, kMaxWidth);
        c.qk_nope_dim = r.integer("qk_nope_head_dim", 0, kMaxWidth);
        c.qk_rope_dim = r.integer("qk_rope_head_dim", 2, kMaxWidth);
        c.v_head_dim = r.integer("v_head_dim", 1, kMaxWidth);
        if (c.qk_rope_dim % 2 != 0) r.bad("qk_rope_head_dim", "is " + num(c.qk_rope_dim), "expected an even number");
        c.n_kv_heads = c.n_heads;
        c.head_dim = c.qk_nope_dim + c.qk_rope_dim;
        c.rope_dim = c.qk_rope_dim;
        c.rope_pairs = RopePairs::Interleaved;
        if (c.arch == Arch::DeepseekV3 && !r.boolean_or("rope_interleave", true)) c.rope_pairs = RopePairs::Half;
        c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
        c.o_bias = r.boolean_or("attention_bias", false);
        return;
    }
    c.n_kv_heads = r.integer_or("num_key_value_heads", c.n_heads, 1, c.n_heads);
    if (c.n_heads % c.n_kv_heads != 0)
        r.bad("num_key_value_heads", "is " + num(c.n_kv_heads), "must divide num_attention_heads = " + num(c.n_heads));
    const json* hd = r.find("head_dim");
    if (hd) {
        c.head_dim = r.integer_of("head_dim", *hd, 2, kMaxWidth);
    } else {
        if (c.d_model % c.n_heads != 0)
            r.bad("num_attention_heads", "is " + num(c.n_heads), "must divide hidden_size = " + num(c.d_model) + " (or give head_dim)");
        c.head_dim = c.d_model / c.n_heads;
    }
    if (c.head_dim % 2 != 0) r.bad("head_dim", "is " + num(c.head_dim), "expected an even head size for the rotary embedding");
    c.rope_dim = c.head_dim;
    c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    const bool bias = r.boolean_or("attention_bias", false);
    c.qkv_bias = bias || c.arch == Arch::Qwen2Moe;  // Qwen2MoeAttention: q/k/v always biased, o never
    c.o_bias = bias && c.arch != Arch::Qwen2Moe;
    if (c.arch == Arch::Qwen3Moe) c.qk_norm = QkNorm::PerHead;
    if (c.arch == Arch::Olmoe) {
        c.qk_norm = QkNorm::Whole;
        c.clip_qkv = static_cast<float>(r.real_or("clip_qkv", 0.0, 0.0, 1e9));
    }
    if (c.arch == Arch::GraniteMoe) c.attn_scale = static_cast<float>(r.real_or("attention_multiplier", 1.0, 1e-9, 1e9));
}

// qwen2_moe / qwen3_moe: layer i is sparse when not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0.
void read_sparse_step(const Reader& r, HfConfig& c) {
    const int step = r.integer_or("decoder_sparse_step", 1, 1, kMaxLayers);
    std::vector<bool> dense_only(static_cast<size_t>(c.n_layers), false);
    if (const json* m = r.find("mlp_only_layers")) {
        if (!m->is_array()) r.bad("mlp_only_layers", "is " + m->dump(), "expected a list of layer indices");
        for (const json& e : *m) dense_only[static_cast<size_t>(r.integer_of("mlp_only_layers", e, 0, c.n_layers - 1))] = true;
    }
    for (int i = 0; i < c.n_layers; ++i)
        c.moe_layer[static_cast<size_t>(i)] = !dense_only[static_cast<size_t>(i)] && c.n_experts > 0 && (i + 1) % step == 0;
}

void read_moe(const Reader& r, HfConfig& c) {
    c.moe_layer.assign(static_cast<size_t>(c.n_layers), true);
    RouterConfig& rc = c.router;
    switch (c.arch) {
        case Arch::Mixtral:
        case Arch::GraniteMoe:
            // MixtralSparseMoeBlock: softmax over all, top-K, divided by their sum; GraniteMoe:
            // softmax over the K chosen logits. The same numbers: the engine's TopKMixtral.
            c.n_experts = r.integer("num_local_experts", 1, kMaxExperts);
            c.d_ff_expert = r.integer("intermediate_size", 1, kMaxWidth);
            rc.scheme = Scheme::TopKMixtral;
            break;
        case Arch::Qwen2Moe:
        case Arch::Qwen3Moe:
        case Arch::Olmoe: {
            c.n_experts = r.integer("num_experts", 1, kMaxExperts);
            c.d_ff_expert = r.integer(c.arch == Arch::Olmoe ? "intermediate_size" : "moe_intermediate_size", 1, kMaxWidth);
            if (c.arch != Arch::Olmoe) {
                c.d_ff_dense = r.integer_or("intermediate_size", 0, 0, kMaxWidth);
                read_sparse_step(r, c);
            }
            if (c.arch == Arch::Qwen2Moe) {
                c.d_ff_shared = r.integer_or("shared_expert_intermediate_size", 0, 0, kMaxWidth);
                c.n_shared = c.d_ff_shared > 0 ? 1 : 0;
                c.shared_gate = c.n_shared > 0;
            }
            // softmax over all experts, top-K of it, renormalised only with norm_topk_prob.
            rc.scheme = Scheme::TopKGShard;
            rc.renormalize = r.boolean_or("norm_topk_prob", false);
            break;
        }
        case Arch::DeepseekV2:
        case Arch::DeepseekV3: {
            c.n_experts = r.integer("n_routed_experts", 1, kMaxExperts);
            c.d_ff_expert = r.integer("moe_intermediate_size", 1, kMaxWidth);
            c.d_ff_dense = r.integer("intermediate_size", 1, kMaxWidth);
            const int n_shared = r.integer_or("n_shared_experts", 0, 0, 64);
            c.n_shared = n_shared;
            c.d_ff_shared = n_shared * c.d_ff_expert;  // one MLP, moe_intermediate_size * n_shared_experts wide
            const int first_dense = r.integer_or("first_k_dense_replace", 0, 0, c.n_layers);
            for (int i = 0; i < c.n_layers; ++i) c.moe_layer[static_cast<size_t>(i)] = i >= first_dense;
            rc.routed_scaling = static_cast<float>(r.real_or("routed_scaling_factor", 1.0, 1e-6, 1e6));
            const int n_group = r.integer_or("n_group", 1, 1, kMaxExperts);
            const int topk_group = r.integer_or("topk_group", 1, 1, n_group);
            if (c.arch == Arch::DeepseekV2) {
                // softmax; greedy or group_limited_greedy (group = its best expert); weights
                // times routed_scaling_factor; transformers ignores norm_topk_prob here.
                rc.scheme = Scheme::TopKGShard;
                rc.renormalize = false;
                const std::string method = r.string_or("topk_method", "greedy");
                if (method == "group_limited_greedy") {
                    rc.n_groups = n_group;
                    rc.topk_groups = topk_group;
                    rc.group_by_max = true;
                } else if (method != "greedy") {
                    r.bad("topk_method", "is '" + method + "'", "greedy or group_limited_greedy");
                }
            } else {
                // sigmoid + e_score_correction_bias for selection, groups by their two best,
                // gates from the unbiased scores, normalised with norm_topk_prob, times the factor.
                rc.scheme = Scheme::SigmoidBias;
                rc.renormalize = r.boolean_or("norm_topk_prob", true);
                rc.n_groups = n_group;
                rc.topk_groups = topk_group;
                c.router_bias = true;
            }
            break;
        }
    }
    if (c.n_experts % rc.n_groups != 0) r.bad("n_group", "is " + num(rc.n_groups), "must divide the " + num(c.n_experts) + " experts");
    c.k = r.integer("num_experts_per_tok", 1, c.n_experts);
    if (c.k > rc.topk_groups * (c.n_experts / rc.n_groups))
        r.bad("num_experts_per_tok", "is " + num(c.k), "at most topk_group * experts per group = " + num(rc.topk_groups * (c.n_experts / rc.n_groups)));
    rc.n_experts = c.n_experts;
    rc.k = c.k;
    rc.drop_policy = DropPolicy::Dropless;  // inference: every token keeps its experts
    rc.shared_experts = true;
    for (int i = 0; i < c.n_layers; ++i)
        if (!c.moe_layer[static_cast<size_t>(i)] && c.d_ff_dense <= 0)
            r.bad("intermediate_size", "is missing or 0", "layer " + num(i) + " is dense and needs its FFN width");
}

}  // namespace

HfConfig parse_hf_config(std::string_view text, const std::string& where) {
    json j;
    try {
        j = json::parse(text.begin(), text.end(), nullptr, true, false);
    } catch (const json::exception& e) {
        throw Error(where, "", std::string("is not valid JSON: ") + e.what(), "a Hugging Face config.json");
    }
    if (!j.is_object()) throw Error(where, "", "is not a JSON object", "a Hugging Face config.json");
    const Reader r{j, where};
    HfConfig c;
    c.where = where;
    c.model_type = r.string_or("model_type", "");
    const std::vector<std::string>& known = hf_model_types();
    if (std::find(known.begin(), known.end(), c.model_type) == known.end()) {
        std::string list;
        for (const std::string& t : known) list += (list.empty() ? "" : ", ") + t;
        throw Error(where, "model_type", c.model_type.empty() ? "is missing" : "is '" + c.model_type + "'",
                    "this loader runs: " + list);
    }
    static const std::pair<const char*, Arch> kArch[] = {
        {"mixtral", Arch::Mixtral},       {"qwen2_moe", Arch::Qwen2Moe},     {"qwen3_moe", Arch::Qwen3Moe},
        {"olmoe", Arch::Olmoe},           {"granitemoe", Arch::GraniteMoe},  {"deepseek_v2", Arch::DeepseekV2},
        {"deepseek_v3", Arch::DeepseekV3}, {"kimi_k2", Arch::DeepseekV3}};
    for (const auto& [name, arch] : kArch)
        if (c.model_type == name) c.arch = arch;
    c.mla = c.arch == Arch::DeepseekV2 || c.arch == Arch::DeepseekV3;
    if (r.string_or("hidden_act", "silu") != "silu")
        r.bad("hidden_act", "is '" + r.string_or("hidden_act", "") + "'", "these MoE models use silu (SwiGLU experts)");
    c.vocab = r.integer("vocab_size", 1, kMaxVocab);
    c.d_model = r.integer("hidden_size", 1, kMaxWidth);
    c.n_layers = r.integer("num_hidden_layers", 1, kMaxLayers);
    c.max_position = r.integer_or("max_position_embeddings", 4096, 1, 1 << 26);
    c.norm_eps = static_cast<float>(r.real_or("rms_norm_eps", 1e-6, 0.0, 1.0));
    c.tie_embeddings = r.boolean_or("tie_word_embeddings", false);
    read_attention(r, c);
    read_moe(r, c);
    read_rope(r, c);
    if (c.arch == Arch::GraniteMoe) {
        c.embedding_multiplier = static_cast<float>(r.real_or("embedding_multiplier", 1.0, 1e-9, 1e9));
        c.residual_multiplier = static_cast<float>(r.real_or("residual_multiplier", 1.0, 1e-9, 1e9));
        c.logits_scaling = static_cast<float>(r.real_or("logits_scaling", 1.0, 1e-9, 1e9));
    }
    const char* norm_note = c.router.renormalize ? "renormalised" : "not renormalised";
    switch (c.router.scheme) {
        case Scheme::TopKMixtral: c.routing_notes.push_back("softmax over the top-" + num(c.k) + " logits"); break;
        case Scheme::TopKGShard: c.routing_notes.push_back(std::string("top-") + num(c.k) + " of softmax, " + norm_note); break;
        default: c.routing_notes.push_back(std::string("sigmoid + selection bias, top-") + num(c.k) + ", " + norm_note); break;
    }
    if (c.router.n_groups > 1)
        c.routing_notes.push_back("group-limited: best " + num(c.router.topk_groups) + " of " + num(c.router.n_groups) + " groups");
    if (c.router.routed_scaling != 1.0f) c.routing_notes.push_back("routed gates x " + fnum(c.router.routed_scaling));
    if (c.n_shared > 0) c.routing_notes.push_back(c.shared_gate ? "shared expert scaled by sigmoid(gate x)" : "shared experts always on");
    return c;
}

HfConfig read_hf_config(const std::string& path) { return parse_hf_config(read_file(path), path); }

}  // namespace moe::hf
