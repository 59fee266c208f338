// moelab-cli params: total vs active parameters, FLOPs per token and memory of a real model,
// read from its Hugging Face config.json (core/teach/params.h).
#include <cstdio>
#include <filesystem>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "core/teach/format.h"
#include "core/teach/params.h"

namespace moe::cli {

namespace {

void print_usage() {
    std::printf(
        "usage: moelab-cli params CONFIG.json|MODEL_DIR [--dtype bf16] [--context 4096] [--json]\n"
        "Counts a model's parameters from its Hugging Face config.json: total (what must stay in\n"
        "memory) and active per token (what one token computes with), FLOPs per token, and a dense\n"
        "model of the same total size for comparison. Configs of real models ship in assets/configs/.\n"
        "  --dtype    bytes per weight for the memory figure: f32, bf16, f16, fp8, int8, int4\n"
        "  --context  context length for attention's score FLOPs (QK^T and AV), stated separately\n"
        "  --json     print the report as JSON\n");
}

std::string human(double x, const char* unit) { return format_si(x, unit); }
std::string params(int64_t n) { return format_count(static_cast<double>(n)); }

void row(const char* name, const ParamGroup& g, int64_t total) {
    if (g.total == 0 && g.active == 0 && g.matmul_active == 0) return;
    std::printf("  %-12s %12s %6.1f%%   %12s\n", name, params(g.total).c_str(),
                total > 0 ? 100.0 * static_cast<double>(g.total) / static_cast<double>(total) : 0.0, params(g.active).c_str());
}

}  // namespace

int cmd_params(Args args) {
    ArgParser ap("params", args);
    if (ap.flag("--help") || ap.flag("-h")) {
        print_usage();
        return 0;
    }
    const bool as_json = ap.flag("--json");
    const std::string dtype = ap.value("--dtype", "bf16");
    const int context = ap.int_value("--context", 4096);
    ap.finish();
    const std::vector<std::string> pos = ap.positional();
    if (pos.size() != 1)
        throw Error("moelab-cli params", "CONFIG.json", pos.empty() ? "is missing" : "given " + std::to_string(pos.size()) + " times",
                    "for example: moelab-cli params assets/configs/mixtral-8x7b.json");
    if (context < 1) throw Error("moelab-cli params", "--context", "is " + std::to_string(context), "expected a positive context length");

    // A model folder counts from its config.json.
    std::error_code ec;
    const std::string config_path = std::filesystem::is_directory(pos[0], ec) ? pos[0] + "/config.json" : pos[0];
    const ModelConfig cfg = load_model_config(config_path);
    const ParamReport r = count_model_params(cfg, dtype, context);
    if (as_json) {
        std::printf("%s\n", report_to_json(r).c_str());
        return 0;
    }

    std::printf("%s (%s)\n", pos[0].c_str(), cfg.model_type.c_str());
    std::printf("  %lld layers (%lld MoE, %lld dense), d_model %lld, %s attention, vocab %lld\n",
                static_cast<long long>(cfg.n_layers), static_cast<long long>(r.n_moe_layers), static_cast<long long>(r.n_dense_layers),
                static_cast<long long>(cfg.d_model), attention_kind_name(cfg.attention), static_cast<long long>(cfg.vocab_size));
    if (cfg.n_experts > 0)
        std::printf("  %lld routed experts (d_ff %lld), top-%lld, %lld shared\n", static_cast<long long>(cfg.n_experts),
                    static_cast<long long>(cfg.d_ff_expert), static_cast<long long>(cfg.k), static_cast<long long>(cfg.n_shared));
    std::printf("\n");
    std::printf("  total parameters        %12s   all stay resident: %s at %s\n", params(r.total_params).c_str(),
                human(r.resident_bytes, "B").c_str(), r.dtype.c_str());
    std::printf("  active per token        %12s   %.1f%% of total\n", params(r.active_params).c_str(), 100.0 * r.active_fraction);
    std::printf("  FLOPs per token         %12s   weights only (2 per multiply-add)\n", human(r.flops_per_token, "FLOP").c_str());
    std::printf("  + attention scores      %12s   QK^T and AV at context %lld\n", human(r.attn_score_flops_per_token, "FLOP").c_str(),
                static_cast<long long>(r.context));
    std::printf("  dense, same total size  %12s   %.1fx the MoE's weight FLOPs\n", human(r.dense_same_total_flops_per_token, "FLOP").c_str(),
                r.flops_per_token > 0 ? r.dense_same_total_flops_per_token / r.flops_per_token : 0.0);
    std::printf("\n  %-12s %12s %7s   %12s\n", "breakdown", "total", "share", "active");
    const ParamBreakdown& b = r.breakdown;
    row("embeddings", b.embeddings, r.total_params);
    row("attention", b.attention, r.total_params);
    row("router", b.router, r.total_params);
    row("experts", b.experts, r.total_params);
    row("shared", b.shared, r.total_params);
    row("dense FFN", b.dense_ffn, r.total_params);
    row("norms", b.norms, r.total_params);
    row("head", b.head, r.total_params);
    std::printf("\n");
    for (const std::string& n : r.notes) std::printf("  - %s\n", n.c_str());
    return 0;
}

}  // namespace moe::cli
