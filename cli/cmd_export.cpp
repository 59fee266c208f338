// moelab-cli export: routes a text through the built-in model and writes what the load bars or
// the heatmap would show, as PNG, SVG or CSV (chosen by the --out extension), without a display.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/teach/export.h"
#include "core/models/lm.h"
#include "core/engine/routing.h"

namespace moe::cli {

static void print_export_help() {
    std::printf(
        "usage: moelab-cli export load|heatmap --text TEXT --out FILE.png|.svg|.csv\n"
        "                         [--k K] [--scheme S] [--capacity-factor F] [--drop-policy P]\n"
        "                         [--seed S] [--layer L] [--model PATH]\n\n"
        "Routes TEXT through the built-in MoE language model with the given knobs and exports\n"
        "one MoE layer's expert load (bars, capacity line, overflow in red) or its tokens x\n"
        "experts router probabilities (chosen and dropped marked).\n");
}

int cmd_export(Args args) {
    ArgParser ap("export", args);
    if (ap.flag("--help") || ap.flag("-h")) {
        print_export_help();
        return 0;
    }
    const std::string where = "moelab-cli export";
    const std::string text = ap.value("--text", "");
    const std::string out = ap.value("--out", "");
    const std::string scheme = ap.value("--scheme", "");
    const std::string drop = ap.value("--drop-policy", "");
    const std::string model_path = ap.value("--model", builtin_model_path());
    const int k = ap.int_value("--k", -1);
    const int layer = ap.int_value("--layer", 0);
    const float cf = ap.float_value("--capacity-factor", -1.0f);
    const int seed = ap.int_value("--seed", -1);
    ap.finish();
    const std::vector<std::string> pos = ap.positional();
    if (pos.size() != 1 || (pos[0] != "load" && pos[0] != "heatmap")) {
        print_export_help();
        throw Error(where, "WHAT", pos.empty() ? "is missing" : "'" + pos[0] + "' is not a plot moelab exports", "load or heatmap");
    }
    if (text.empty()) throw Error(where, "--text", "is missing or empty", "--text \"The quick brown fox\"");
    if (out.empty()) throw Error(where, "--out", "is missing", "--out load.png (or .svg, .csv)");
    export_format_for(out, where);  // a bad extension fails before the model is loaded

    const LmModel model = LmModel::load(model_path);
    const LmConfig& cfg = model.config();
    RouterConfig rc = cfg.router;
    if (!scheme.empty()) {
        const std::optional<Scheme> s = scheme_from_name(scheme);
        if (!s) {
            std::string names;
            for (int i = 0; i < kNumSchemes; ++i) {
                if (i) names += ", ";
                names += scheme_name(static_cast<Scheme>(i));
            }
            throw Error(where, "--scheme", "unknown scheme '" + scheme + "'", "one of: " + names);
        }
        rc.scheme = *s;
    }
    if (!drop.empty()) {
        const std::optional<DropPolicy> d = drop_policy_from_name(drop);
        if (!d) throw Error(where, "--drop-policy", "unknown drop policy '" + drop + "'", "dropless, position or score");
        rc.drop_policy = *d;
    }
    if (k != -1) rc.k = k;
    if (cf != -1.0f) rc.capacity_factor = cf;
    if (seed != -1) {
        if (seed < 0) throw Error(where, "--seed", std::to_string(seed) + " is negative", "0 or more");
        rc.seed = static_cast<uint64_t>(seed);
    }
    const int n_layers = n_moe_layers(cfg);
    if (layer < 0 || layer >= n_layers)
        throw Error(where, "--layer", std::to_string(layer) + " is not a MoE layer of this model", "0.." + std::to_string(n_layers - 1));
    const size_t n = std::min(text.size(), static_cast<size_t>(cfg.max_seq));
    if (n < text.size())
        std::fprintf(stderr, "moelab-cli export: note: text cut to the model's context of %d bytes\n", cfg.max_seq);
    const std::vector<uint8_t> bytes(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(n));
    validate(rc, static_cast<int>(n));  // names the knob (moe::Error) before any work

    LmRunOptions run;
    run.router = rc;
    LmForward fwd;
    model.forward(bytes, run, fwd);
    const RoutingTrace& tr = fwd.traces[layer];
    const std::string title_where = "layer " + std::to_string(layer) + ", " + scheme_name(rc.scheme);
    if (pos[0] == "load") export_file(load_plot(tr, "Expert load, " + title_where), load_csv(tr), out);
    else {
        const std::vector<TokenId> ids(bytes.begin(), bytes.end());  // the byte model: a token is its byte
        const TokenRows rows = token_rows(*make_byte_tokenizer(), ids);
        export_file(heatmap_plot(tr, rows, "Router probabilities, " + title_where), heatmap_csv(tr, rows), out);
    }
    std::printf("wrote %s (%zu tokens, load CV %.3f, max/mean %.2f, %d of %d pairs dropped)\n", out.c_str(), n,
                tr.stats.load_cv, tr.stats.max_over_mean, tr.stats.n_dropped, tr.stats.n_pairs);
    return 0;
}

}  // namespace moe::cli
