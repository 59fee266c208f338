// Parameter and compute counter (core/teach/params.h) against published model sizes and hand counts.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "core/teach/params.h"

namespace {

using moe::ModelConfig;
using moe::ParamReport;

std::string config_path(const std::string& name) { return std::string(MOE_SOURCE_DIR) + "/assets/configs/" + name; }

ParamReport count_file(const std::string& name) {
    return moe::count_model_params(moe::load_model_config(config_path(name)));
}

// Relative error of a count against a published figure.
double rel(int64_t got, double published) { return std::abs(static_cast<double>(got) - published) / published; }

// Expects parse_model_config to throw a moe::Error whose text contains every fragment.
void expect_error(const std::string& json_text, std::initializer_list<std::string> fragments) {
    try {
        moe::parse_model_config(json_text, "bad.json");
        ADD_FAILURE() << "no error for: " << json_text;
    } catch (const moe::Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("bad.json"), std::string::npos) << msg;
        for (const std::string& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
    }
}

const char* kTinyMixtral = R"({"model_type": "mixtral", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 32, "num_local_experts": 4,
  "num_experts_per_tok": 2})";

}  // namespace

// [SECTION] Published totals and actives (within 2%)

// Mistral AI, "Mixtral of experts" announcement (Dec 2023): 46.7B total, 12.9B used per token.
// The exact count of the released checkpoint is 46,702,792,704.
TEST(Params, Mixtral8x7BMatchesMistralAnnouncement) {
    const ParamReport r = count_file("mixtral-8x7b.json");
    EXPECT_EQ(r.total_params, 46702792704LL);
    EXPECT_LT(rel(r.total_params, 46.7e9), 0.02);
    EXPECT_LT(rel(r.active_params, 12.9e9), 0.02) << r.active_params;
    EXPECT_EQ(r.n_moe_layers, 32);
    EXPECT_EQ(r.n_dense_layers, 0);
}

// DeepSeek-V3 Technical Report (arXiv 2412.19437): 671B total, 37B activated per token; the
// 14B multi-token-prediction module is not part of those figures and is not counted here.
TEST(Params, DeepSeekV3MatchesTechReport) {
    const ParamReport r = count_file("deepseek-v3.json");
    EXPECT_LT(rel(r.total_params, 671e9), 0.02) << r.total_params;
    EXPECT_LT(rel(r.active_params, 37e9), 0.02) << r.active_params;
    EXPECT_EQ(r.n_dense_layers, 3);  // first_k_dense_replace
    EXPECT_EQ(r.n_moe_layers, 58);
    EXPECT_GT(r.breakdown.router.total, 58LL * 256 * 7168);  // plus the aux-loss-free selection bias
    bool mtp_noted = false;
    for (const std::string& n : r.notes) mtp_noted |= n.find("multi-token-prediction") != std::string::npos;
    EXPECT_TRUE(mtp_noted);
}

// Qwen3-30B-A3B model card (Hugging Face, Qwen team): 30.5B total, 3.3B activated.
TEST(Params, Qwen3_30B_A3BMatchesModelCard) {
    const ParamReport r = count_file("qwen3-30b-a3b.json");
    EXPECT_LT(rel(r.total_params, 30.5e9), 0.02) << r.total_params;
    EXPECT_LT(rel(r.active_params, 3.3e9), 0.02) << r.active_params;
}

// OLMoE paper (Muennighoff et al. 2024, arXiv 2409.02060): 6.9B total, 1.3B active per input token.
TEST(Params, OLMoEMatchesPaper) {
    const ParamReport r = count_file("olmoe-1b-7b.json");
    EXPECT_LT(rel(r.total_params, 6.9e9), 0.02) << r.total_params;
    EXPECT_LT(rel(r.active_params, 1.3e9), 0.02) << r.active_params;
}

// Kimi K2 model card (Moonshot AI, 2025): 1.04T total ("1T"), 32.6B activated ("32B"), 384 experts, top-8.
TEST(Params, KimiK2MatchesModelCard) {
    const ModelConfig c = moe::load_model_config(config_path("kimi-k2.json"));
    EXPECT_EQ(c.n_experts, 384);
    EXPECT_EQ(c.k, 8);
    EXPECT_EQ(c.attention, moe::AttentionKind::MLA);
    const ParamReport r = moe::count_model_params(c);
    EXPECT_LT(rel(r.total_params, 1.04e12), 0.02) << r.total_params;
    EXPECT_LT(rel(r.active_params, 32.6e9), 0.02) << r.active_params;
}

// Qwen blog "Qwen1.5-MoE: Matching 7B Model Performance with 1/3 Activated Parameters" (2024):
// 14.3B total, 2.7B activated (one 4x-wide shared expert, 60 routed experts, top-4).
TEST(Params, Qwen15MoEMatchesQwenBlog) {
    const ParamReport r = count_file("qwen1.5-moe-a2.7b.json");
    EXPECT_LT(rel(r.total_params, 14.3e9), 0.02) << r.total_params;
    EXPECT_LT(rel(r.active_params, 2.7e9), 0.02) << r.active_params;
    EXPECT_GT(r.breakdown.shared.total, 0);
}

// [SECTION] Exact hand counts

// Llama-2-7B is the classic dense check: its checkpoint holds exactly 6,738,415,616 parameters.
TEST(Params, DenseLlama2_7BExact) {
    const ModelConfig c = moe::parse_model_config(
        R"({"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "num_hidden_layers": 32,
            "num_attention_heads": 32, "intermediate_size": 11008, "num_key_value_heads": 32})",
        "llama2.json");
    const ParamReport r = moe::count_model_params(c);
    EXPECT_EQ(r.total_params, 6738415616LL);
    EXPECT_EQ(r.active_params, r.total_params);  // dense: everything is active
    EXPECT_DOUBLE_EQ(r.active_fraction, 1.0);
    EXPECT_DOUBLE_EQ(r.flops_per_token, r.dense_same_total_flops_per_token);
}

TEST(Params, TinyMixtralByHand) {
    const ParamReport r = moe::count_model_params(moe::parse_model_config(kTinyMixtral, "tiny.json"), "f32", 10);
    const int64_t d = 16, v = 100, head_dim = 4;
    const int64_t attn = d * (4 * head_dim) + 2 * d * (2 * head_dim) + (4 * head_dim) * d;  // q, k, v, o
    const int64_t expert = 3 * d * 32;
    const int64_t router = 4 * d;
    const int64_t norms = 2 * d;
    EXPECT_EQ(r.breakdown.attention.total, 2 * attn);
    EXPECT_EQ(r.breakdown.experts.total, 2 * 4 * expert);
    EXPECT_EQ(r.breakdown.experts.active, 2 * 2 * expert);
    EXPECT_EQ(r.breakdown.router.total, 2 * router);
    EXPECT_EQ(r.breakdown.norms.total, 2 * norms + d);
    EXPECT_EQ(r.breakdown.embeddings.total, v * d);
    EXPECT_EQ(r.breakdown.head.total, v * d);
    EXPECT_EQ(r.total_params, 2 * (attn + 4 * expert + router + norms) + d + 2 * v * d);
    EXPECT_EQ(r.active_params, 2 * (attn + 2 * expert + router + norms) + d + 2 * v * d);
    // FLOPs: 2 per weight multiplied; the embedding lookup and norms cost none.
    EXPECT_DOUBLE_EQ(r.flops_per_token, 2.0 * (2 * (attn + 2 * expert + router) + v * d));
    EXPECT_DOUBLE_EQ(r.dense_same_total_flops_per_token, 2.0 * (2 * (attn + 4 * expert + router) + v * d));
    // Scores: per layer 2 * heads * (qk + v dims) * context.
    EXPECT_DOUBLE_EQ(r.attn_score_flops_per_token, 2.0 * 2 * 4 * (head_dim + head_dim) * 10);
    EXPECT_DOUBLE_EQ(r.resident_bytes, 4.0 * static_cast<double>(r.total_params));
}

TEST(Params, TiedEmbeddingsStoreTheTableOnceButStillMultiply) {
    std::string text = kTinyMixtral;
    text.insert(1, R"("tie_word_embeddings": true, )");
    const ParamReport tied = moe::count_model_params(moe::parse_model_config(text, "tied.json"));
    const ParamReport untied = moe::count_model_params(moe::parse_model_config(kTinyMixtral, "untied.json"));
    EXPECT_EQ(untied.total_params - tied.total_params, 100 * 16);
    EXPECT_EQ(tied.breakdown.head.total, 0);
    EXPECT_EQ(tied.breakdown.head.matmul_active, 100 * 16);
    EXPECT_DOUBLE_EQ(tied.flops_per_token, untied.flops_per_token);
}

TEST(Params, MixtralScoreFlopsAndSparsitySaving) {
    const ParamReport r = moe::count_model_params(moe::load_model_config(config_path("mixtral-8x7b.json")), "bf16", 4096);
    // 32 layers x 2 x 32 heads x (128 + 128) x 4096 positions.
    EXPECT_DOUBLE_EQ(r.attn_score_flops_per_token, 32.0 * 2 * 32 * 256 * 4096);
    // Weight FLOPs are about 2 x active (minus the embedding table, a lookup).
    EXPECT_NEAR(r.flops_per_token, 2.0 * static_cast<double>(r.active_params - 32000LL * 4096), 1e6);
    // A dense model of the same total size costs ~3.6x more per token.
    EXPECT_GT(r.dense_same_total_flops_per_token / r.flops_per_token, 3.4);
    EXPECT_LT(r.dense_same_total_flops_per_token / r.flops_per_token, 3.8);
    EXPECT_DOUBLE_EQ(r.resident_bytes, 2.0 * 46702792704.0);
}

TEST(Params, DeepSeekV3AttentionIsMLA) {
    const ModelConfig c = moe::load_model_config(config_path("deepseek-v3.json"));
    ASSERT_EQ(c.attention, moe::AttentionKind::MLA);
    const ParamReport r = moe::count_model_params(c);
    // Per layer: q_a 7168x1536, q_b 1536x(128x192), kv_a 7168x576, kv_b 512x(128x256), o (128x128)x7168.
    const int64_t per_layer = 7168LL * 1536 + 1536LL * 128 * 192 + 7168LL * 576 + 512LL * 128 * 256 + 128LL * 128 * 7168;
    EXPECT_EQ(r.breakdown.attention.total, 61 * per_layer);
    EXPECT_EQ(r.breakdown.shared.total, 58LL * 3 * 7168 * 2048);
    EXPECT_EQ(r.breakdown.dense_ffn.total, 3LL * 3 * 7168 * 18432);
}

TEST(Params, QwenLayerScheduleAndDeepSeekV2LiteStyle) {
    // decoder_sparse_step 2 and mlp_only_layers [1]: layers 1 and 3 would be MoE, 1 is forced dense.
    const ModelConfig q = moe::parse_model_config(
        R"({"model_type": "qwen2_moe", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 4,
            "num_attention_heads": 2, "intermediate_size": 16, "moe_intermediate_size": 4,
            "num_experts": 4, "num_experts_per_tok": 1, "decoder_sparse_step": 2, "mlp_only_layers": [1],
            "shared_expert_intermediate_size": 0})",
        "q.json");
    EXPECT_EQ(moe::count_model_params(q).n_moe_layers, 1);
    EXPECT_TRUE(q.qkv_bias);
    // q_lora_rank null (DeepSeek-V2-Lite): a plain q projection.
    const ModelConfig d = moe::parse_model_config(
        R"({"model_type": "deepseek_v2", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 16, "moe_intermediate_size": 4,
            "n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 2, "q_lora_rank": null,
            "kv_lora_rank": 4, "qk_nope_head_dim": 2, "qk_rope_head_dim": 2, "v_head_dim": 2,
            "first_k_dense_replace": 1})",
        "v2.json");
    const ParamReport r = moe::count_model_params(d);
    EXPECT_EQ(r.n_moe_layers, 1);
    const int64_t attn = 8 * (2 * 4) + 8 * (4 + 2) + 4 * (2 * (2 + 2)) + (2 * 2) * 8;
    EXPECT_EQ(r.breakdown.attention.total, 2 * attn);
    EXPECT_EQ(r.breakdown.shared.total, 2 * 3 * 8 * 4);
    EXPECT_FALSE(d.router_bias);
}

// granitemoe (IBM Granite 3.0 MoE) reads like Mixtral; its released configs tie the embeddings.
TEST(Params, GraniteMoeTiedByHand) {
    const ModelConfig c = moe::parse_model_config(
        R"({"model_type": "granitemoe", "vocab_size": 50, "hidden_size": 12, "num_hidden_layers": 3,
            "num_attention_heads": 3, "num_key_value_heads": 1, "intermediate_size": 8, "num_local_experts": 5,
            "num_experts_per_tok": 2, "tie_word_embeddings": true, "hidden_act": "silu"})",
        "granite.json");
    EXPECT_EQ(c.attention, moe::AttentionKind::GQA);
    const ParamReport r = moe::count_model_params(c);
    const int64_t attn = 12 * 12 + 2 * 12 * 4 + 12 * 12;
    const int64_t layer = attn + 5 * 3 * 12 * 8 + 5 * 12 + 2 * 12;
    EXPECT_EQ(r.total_params, 3 * layer + 12 + 50 * 12);
    EXPECT_EQ(r.active_params, 3 * (attn + 2 * 3 * 12 * 8 + 5 * 12 + 2 * 12) + 12 + 50 * 12);
}

TEST(Params, ReportJsonRoundTrips) {
    const ParamReport r = count_file("olmoe-1b-7b.json");
    const nlohmann::json j = nlohmann::json::parse(moe::report_to_json(r));
    EXPECT_EQ(j.at("total_params").get<int64_t>(), r.total_params);
    EXPECT_EQ(j.at("active_params").get<int64_t>(), r.active_params);
    EXPECT_EQ(j.at("breakdown").at("experts").at("active").get<int64_t>(), r.breakdown.experts.active);
    EXPECT_DOUBLE_EQ(j.at("flops_per_token").get<double>(), r.flops_per_token);
    EXPECT_EQ(j.at("dtype").get<std::string>(), "bf16");
}

TEST(Params, Dtypes) {
    EXPECT_EQ(moe::dtype_bytes("f32", "x"), 4);
    EXPECT_EQ(moe::dtype_bytes("BF16", "x"), 2);
    EXPECT_EQ(moe::dtype_bytes("fp8", "x"), 1);
    EXPECT_EQ(moe::dtype_bytes("int4", "x"), 0.5);
    EXPECT_THROW(moe::dtype_bytes("f13", "x"), moe::Error);
    const ModelConfig c = moe::parse_model_config(kTinyMixtral, "t.json");
    EXPECT_THROW(moe::count_model_params(c, "bf16", 0), moe::Error);
}

// [SECTION] Bad configs

TEST(ParamsErrors, InvalidJsonGivesLineAndColumn) {
    expect_error("{\n  \"model_type\": \"mixtral\",\n  \"hidden_size\": 12,,\n}", {"not valid JSON", "line 3"});
    expect_error("[1, 2]", {"not an object"});
}

TEST(ParamsErrors, MissingField) {
    expect_error(R"({"model_type": "mixtral", "vocab_size": 100, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "intermediate_size": 32, "num_local_experts": 4, "num_experts_per_tok": 2})",
                 {"hidden_size", "missing"});
    expect_error(R"({"hidden_size": 4})", {"model_type", "missing", "mixtral"});
}

TEST(ParamsErrors, WrongTypesNegativeAndAbsurd) {
    std::string t = kTinyMixtral;
    auto with = [&](const std::string& from, const std::string& to) {
        std::string s = t;
        s.replace(s.find(from), from.size(), to);
        return s;
    };
    expect_error(with("\"hidden_size\": 16", "\"hidden_size\": \"16\""), {"hidden_size", "string"});
    expect_error(with("\"hidden_size\": 16", "\"hidden_size\": 16.5"), {"hidden_size", "fraction"});
    expect_error(with("\"hidden_size\": 16", "\"hidden_size\": -16"), {"hidden_size: is -16 (expected an integer in 1..4194304)"});
    expect_error(with("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 99999999999"), {"num_hidden_layers: is 99999999999 (expected an integer in 1..10000)"});
    expect_error(with("\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 5"), {"num_experts_per_tok", "5"});
    expect_error(with("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"), {"num_key_value_heads", "divide"});
    expect_error(with("\"model_type\": \"mixtral\"", "\"model_type\": \"gpt_bigmoe\""),
                 {"gpt_bigmoe", "known model types", "deepseek_v3", "qwen3_moe"});
    expect_error(with("\"num_local_experts\": 4", "\"num_local_experts\": [4]"), {"num_local_experts", "array"});
}

// Issue 15, holes 1 and 2: "vocab_size": 1e999 escaped as nlohmann's out_of_range (406), and a
// 10,000-deep mlp_only_layers overflowed the stack in the dump() of the error message.
TEST(ParamsErrors, HostileNumbersAndNesting) {
    std::string t = kTinyMixtral;
    auto with = [&](const std::string& from, const std::string& to) {
        std::string s = t;
        s.replace(s.find(from), from.size(), to);
        return s;
    };
    expect_error(with("\"vocab_size\": 100", "\"vocab_size\": 1e999"), {"not valid JSON"});
    expect_error(with("\"vocab_size\": 100", "\"vocab_size\": 1e30"), {"vocab_size", "fraction"});
    const std::string deep = std::string(10000, '[') + std::string(10000, ']');
    expect_error(with("\"vocab_size\": 100", "\"mlp_only_layers\": " + deep + ", \"vocab_size\": 100"), {"more than 64 deep"});
    // Within the depth cap a nested entry is described, not dumped.
    expect_error(R"({"model_type": "qwen2_moe", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8,
                    "mlp_only_layers": [[[0]]]})",
                 {"mlp_only_layers", "an array of 1"});
}

TEST(ParamsErrors, MissingFileNamesThePath) {
    try {
        moe::load_model_config("/nonexistent/dir/config.json");
        FAIL() << "no error";
    } catch (const moe::Error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/config.json"), std::string::npos);
    }
}
