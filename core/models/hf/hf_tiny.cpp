// Tiny random Hugging Face checkpoints, one per architecture, in the Hub's exact layout.
//
// [SECTION] Configs
// [SECTION] Tensors
// [SECTION] Files
#include "core/models/hf/hf_tiny.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/io/file_io.h"
#include "core/io/safetensors.h"

namespace moe::hf {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<std::string>& tiny_model_types() {
    static const std::vector<std::string> kTypes = {"mixtral",    "qwen2_moe",   "qwen3_moe",   "olmoe",
                                                    "granitemoe", "deepseek_v2", "deepseek_v3", "kimi_k2"};
    return kTypes;
}

namespace {

constexpr int kVocab = 320, kD = 32, kHeads = 4, kKv = 2, kExperts = 8, kK = 2, kFfExpert = 16, kFfDense = 48;

// [SECTION] Configs
json base_config(const std::string& type, int n_layers) {
    return {{"model_type", type},       {"vocab_size", kVocab},    {"hidden_size", kD},
            {"num_hidden_layers", n_layers}, {"num_attention_heads", kHeads}, {"num_key_value_heads", kKv},
            {"hidden_act", "silu"},     {"max_position_embeddings", 128}, {"rms_norm_eps", 1e-5},
            {"rope_theta", 10000.0},    {"tie_word_embeddings", false}, {"num_experts_per_tok", kK},
            {"bos_token_id", 1},        {"eos_token_id", 2}};
}

json config_of(const TinySpec& s) {
    const std::string& t = s.model_type;
    if (t == "mixtral") {
        json c = base_config(t, 3);
        c["num_local_experts"] = kExperts;
        c["intermediate_size"] = kFfExpert;
        c["rope_theta"] = 1e6;
        return c;
    }
    if (t == "qwen2_moe") {  // a dense layer by mlp_only_layers, biases, the gated shared expert
        json c = base_config(t, 3);
        c["num_experts"] = kExperts;
        c["moe_intermediate_size"] = kFfExpert;
        c["shared_expert_intermediate_size"] = 24;
        c["intermediate_size"] = kFfDense;
        c["decoder_sparse_step"] = 1;
        c["mlp_only_layers"] = {1};
        c["norm_topk_prob"] = false;
        c["rms_norm_eps"] = 1e-6;
        return c;
    }
    if (t == "qwen3_moe") {  // explicit head_dim, per-head q/k norms, sparse every 2nd layer
        json c = base_config(t, 4);
        c["num_experts"] = kExperts;
        c["moe_intermediate_size"] = kFfExpert;
        c["intermediate_size"] = kFfDense;
        c["head_dim"] = 12;
        c["decoder_sparse_step"] = 2;
        c["mlp_only_layers"] = json::array();
        c["norm_topk_prob"] = true;
        c["rms_norm_eps"] = 1e-6;
        return c;
    }
    if (t == "olmoe") {  // whole-projection q/k norms and clip_qkv
        json c = base_config(t, 3);
        c["num_experts"] = kExperts;
        c["intermediate_size"] = kFfExpert;
        c["clip_qkv"] = 1.5;
        c["norm_topk_prob"] = false;
        return c;
    }
    if (t == "granitemoe") {  // multipliers, logits_scaling, tied embeddings
        json c = base_config(t, 3);
        c["num_local_experts"] = kExperts;
        c["intermediate_size"] = kFfExpert;
        c["embedding_multiplier"] = 12.0;
        c["attention_multiplier"] = 0.2;
        c["residual_multiplier"] = 0.22;
        c["logits_scaling"] = 6.0;
        c["tie_word_embeddings"] = true;
        return c;
    }
    // deepseek_v2, deepseek_v3, kimi_k2: MLA, first_k_dense_replace, shared experts, groups.
    json c = base_config(t, 3);
    c.erase("num_key_value_heads");
    c["num_key_value_heads"] = kHeads;
    c["n_routed_experts"] = kExperts;
    c["moe_intermediate_size"] = kFfExpert;
    c["intermediate_size"] = kFfDense;
    c["n_shared_experts"] = 2;
    c["first_k_dense_replace"] = 1;
    c["q_lora_rank"] = s.mla_q_lora ? json(24) : json(nullptr);
    c["kv_lora_rank"] = 16;
    c["qk_nope_head_dim"] = 8;
    c["qk_rope_head_dim"] = 4;
    c["v_head_dim"] = 8;
    c["rms_norm_eps"] = 1e-6;
    if (t == "deepseek_v2") {
        c["routed_scaling_factor"] = 1.5;
        c["topk_method"] = "group_limited_greedy";
        c["n_group"] = 4;
        c["topk_group"] = 2;
        c["norm_topk_prob"] = false;
    } else {
        c["routed_scaling_factor"] = 2.5;
        c["topk_method"] = "noaux_tc";
        c["n_group"] = t == "kimi_k2" ? 1 : 4;
        c["topk_group"] = t == "kimi_k2" ? 1 : 2;
        c["norm_topk_prob"] = true;
        c["rope_interleave"] = true;
    }
    if (s.yarn) {
        const double m = t == "deepseek_v2" ? 0.707 : 1.0;
        c["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32},
                             {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", m}, {"mscale_all_dim", m}};
    }
    return c;
}

// [SECTION] Tensors
struct Gen {
    std::mt19937_64 rng;
    std::map<std::string, SafeTensor> out;
    std::string dtype;
    void add(const std::string& name, std::vector<int64_t> shape, float stddev, float mean = 0.0f) {
        SafeTensor t;
        t.dtype = dtype;
        t.shape = shape;
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        std::normal_distribution<float> normal(mean, stddev);
        t.data.resize(static_cast<size_t>(n));
        for (float& v : t.data) v = normal(rng);
        out[name] = std::move(t);
    }
    void norm(const std::string& name, int64_t n) { add(name, {n}, 0.1f, 1.0f); }
};

void add_tensors(const json& c, Gen& g) {
    const std::string t = c["model_type"];
    const int n_layers = c["num_hidden_layers"];
    const bool mla = t == "deepseek_v2" || t == "deepseek_v3" || t == "kimi_k2";
    const int64_t hd = c.contains("head_dim") ? c["head_dim"].get<int64_t>() : kD / kHeads;
    g.add("model.embed_tokens.weight", {kVocab, kD}, 1.0f);
    g.norm("model.norm.weight", kD);
    if (!c["tie_word_embeddings"].get<bool>()) g.add("lm_head.weight", {kVocab, kD}, 0.2f);
    for (int l = 0; l < n_layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        g.norm(p + "input_layernorm.weight", kD);
        g.norm(p + "post_attention_layernorm.weight", kD);
        const std::string a = p + "self_attn.";
        if (!mla) {
            g.add(a + "q_proj.weight", {kHeads * hd, kD}, 0.2f);
            g.add(a + "k_proj.weight", {kKv * hd, kD}, 0.2f);
            g.add(a + "v_proj.weight", {kKv * hd, kD}, 0.2f);
            g.add(a + "o_proj.weight", {kD, kHeads * hd}, 0.2f);
            if (t == "qwen2_moe") {
                g.add(a + "q_proj.bias", {kHeads * hd}, 0.2f);
                g.add(a + "k_proj.bias", {kKv * hd}, 0.2f);
                g.add(a + "v_proj.bias", {kKv * hd}, 0.2f);
            }
            if (t == "qwen3_moe") {
                g.norm(a + "q_norm.weight", hd);
                g.norm(a + "k_norm.weight", hd);
            }
            if (t == "olmoe") {
                g.norm(a + "q_norm.weight", kHeads * hd);
                g.norm(a + "k_norm.weight", kKv * hd);
            }
        } else {
            const int64_t qk = 8 + 4, v = 8;
            if (c["q_lora_rank"].is_null()) {
                g.add(a + "q_proj.weight", {kHeads * qk, kD}, 0.2f);
            } else {
                g.add(a + "q_a_proj.weight", {24, kD}, 0.2f);
                g.norm(a + "q_a_layernorm.weight", 24);
                g.add(a + "q_b_proj.weight", {kHeads * qk, 24}, 0.2f);
            }
            g.add(a + "kv_a_proj_with_mqa.weight", {16 + 4, kD}, 0.2f);
            g.norm(a + "kv_a_layernorm.weight", 16);
            g.add(a + "kv_b_proj.weight", {kHeads * (8 + v), 16}, 0.2f);
            g.add(a + "o_proj.weight", {kD, kHeads * v}, 0.2f);
        }
        // Which layers are dense, per each architecture's rule.
        bool dense = false;
        if (t == "qwen2_moe" || t == "qwen3_moe") {
            const int step = c["decoder_sparse_step"];
            bool only = false;
            for (const json& e : c["mlp_only_layers"]) only = only || e.get<int>() == l;
            dense = only || (l + 1) % step != 0;
        }
        if (mla) dense = l < c["first_k_dense_replace"].get<int>();
        const float router_std = 0.5f;
        if (dense) {
            g.add(p + "mlp.gate_proj.weight", {kFfDense, kD}, 0.2f);
            g.add(p + "mlp.up_proj.weight", {kFfDense, kD}, 0.2f);
            g.add(p + "mlp.down_proj.weight", {kD, kFfDense}, 0.2f);
        } else if (t == "mixtral") {
            g.add(p + "block_sparse_moe.gate.weight", {kExperts, kD}, router_std);
            for (int e = 0; e < kExperts; ++e) {
                const std::string x = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
                g.add(x + "w1.weight", {kFfExpert, kD}, 0.2f);
                g.add(x + "w2.weight", {kD, kFfExpert}, 0.2f);
                g.add(x + "w3.weight", {kFfExpert, kD}, 0.2f);
            }
        } else if (t == "granitemoe") {
            g.add(p + "block_sparse_moe.router.layer.weight", {kExperts, kD}, router_std);
            g.add(p + "block_sparse_moe.input_linear.weight", {kExperts, 2 * kFfExpert, kD}, 0.2f);
            g.add(p + "block_sparse_moe.output_linear.weight", {kExperts, kD, kFfExpert}, 0.2f);
        } else {
            g.add(p + "mlp.gate.weight", {kExperts, kD}, router_std);
            if (t == "deepseek_v3" || t == "kimi_k2") g.add(p + "mlp.gate.e_score_correction_bias", {kExperts}, 0.1f);
            for (int e = 0; e < kExperts; ++e) {
                const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
                g.add(x + "gate_proj.weight", {kFfExpert, kD}, 0.2f);
                g.add(x + "up_proj.weight", {kFfExpert, kD}, 0.2f);
                g.add(x + "down_proj.weight", {kD, kFfExpert}, 0.2f);
            }
            if (t == "qwen2_moe") {
                g.add(p + "mlp.shared_expert.gate_proj.weight", {24, kD}, 0.2f);
                g.add(p + "mlp.shared_expert.up_proj.weight", {24, kD}, 0.2f);
                g.add(p + "mlp.shared_expert.down_proj.weight", {kD, 24}, 0.2f);
                g.add(p + "mlp.shared_expert_gate.weight", {1, kD}, 0.5f);
            }
            if (mla) {
                const int64_t w = kFfExpert * c["n_shared_experts"].get<int64_t>();
                g.add(p + "mlp.shared_experts.gate_proj.weight", {w, kD}, 0.2f);
                g.add(p + "mlp.shared_experts.up_proj.weight", {w, kD}, 0.2f);
                g.add(p + "mlp.shared_experts.down_proj.weight", {kD, w}, 0.2f);
            }
        }
    }
}

// [SECTION] Files
// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for 256 + n.
std::string byte_char(int b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; ++x)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) ++n;
        cp = 256 + n;
    }
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

// A byte-level BPE tokenizer.json: the 256 byte tokens (id = byte) and a few merges.
std::string tokenizer_json() {
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
    const std::vector<std::pair<std::string, std::string>> merges = {{"t", "h"}, {"th", "e"}, {byte_char(' '), "t"}, {"a", "t"}};
    json m = json::array();
    int next = 256;
    for (const auto& [a, b] : merges) {
        m.push_back(a + " " + b);
        vocab[a + b] = next++;
    }
    json tok = {{"version", "1.0"},
                {"truncation", nullptr},
                {"padding", nullptr},
                {"added_tokens", json::array()},
                {"normalizer", nullptr},
                {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
                {"post_processor", nullptr},
                {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
                {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                           {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
                           {"merges", m}}}};
    return tok.dump(1);
}

}  // namespace

void write_tiny_checkpoint(const std::string& folder, const TinySpec& spec) {
    const std::vector<std::string>& types = tiny_model_types();
    if (std::find(types.begin(), types.end(), spec.model_type) == types.end())
        throw Error("tiny checkpoint", "model_type", "is '" + spec.model_type + "'", "one of the Hugging Face MoE types");
    if (spec.dtype != "F32" && spec.dtype != "BF16") throw Error("tiny checkpoint", "dtype", "is '" + spec.dtype + "'", "F32 or BF16");
    if (spec.n_shards < 1 || spec.n_shards > 16) throw Error("tiny checkpoint", "n_shards", "is " + std::to_string(spec.n_shards), "1..16");
    fs::create_directories(folder);
    const json config = config_of(spec);
    Gen g{std::mt19937_64(spec.seed), {}, spec.dtype};
    add_tensors(config, g);
    write_file_atomic((fs::path(folder) / "config.json").string(), config.dump(2) + "\n");
    write_file_atomic((fs::path(folder) / "tokenizer.json").string(), tokenizer_json() + "\n");
    write_file_atomic((fs::path(folder) / "tokenizer_config.json").string(), "{\"model_max_length\": 128}\n");
    // Old files of another layout would confuse the loader (it prefers model.safetensors).
    for (const auto& e : fs::directory_iterator(folder))
        if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json") fs::remove(e.path());
    if (spec.n_shards == 1) {
        SafeTensorsFile f;
        f.tensors = std::move(g.out);
        write_safetensors((fs::path(folder) / "model.safetensors").string(), f);
        return;
    }
    std::vector<SafeTensorsFile> shards(static_cast<size_t>(spec.n_shards));
    json weight_map = json::object();
    int i = 0;
    uint64_t total = 0;
    char name[64];
    for (auto& [tensor, t] : g.out) {
        const int s = i++ % spec.n_shards;
        std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, spec.n_shards);
        weight_map[tensor] = name;
        total += static_cast<uint64_t>(t.data.size()) * (spec.dtype == "F32" ? 4 : 2);
        shards[static_cast<size_t>(s)].tensors[tensor] = std::move(t);
    }
    for (int s = 0; s < spec.n_shards; ++s) {
        std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, spec.n_shards);
        write_safetensors((fs::path(folder) / name).string(), shards[static_cast<size_t>(s)]);
    }
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic((fs::path(folder) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
}

}  // namespace moe::hf
