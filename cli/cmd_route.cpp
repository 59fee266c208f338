// moelab-cli route: route hidden states through one MoE layer (random or from a safetensors
// file) or text through the tiny MoE language model, print what the router did, and write the
// trace as JSON and CSV (core/io/trace_io.h).
//
// [SECTION] Options
// [SECTION] Summary printing
// [SECTION] Layer mode
// [SECTION] Model mode
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/io/file_io.h"
#include "core/models/lm.h"
#include "core/engine/moe_layer.h"
#include "core/engine/routing.h"
#include "core/io/safetensors.h"
#include "core/io/trace_io.h"

namespace moe::cli {

namespace {

const char* kWhere = "moelab-cli route";

void print_usage() {
    std::printf(
        "usage: moelab-cli route [--n-experts 8] [--k 2] [--scheme topk_mixtral] [--capacity 1.25]\n"
        "                        [--drop dropless|position|score] [--tokens 16] [--d-model 64]\n"
        "                        [--d-ff 128] [--seed 0] [--input hidden.safetensors]\n"
        "                        [--activation swiglu|gelu] [--shared 0] [--out trace] [--device D]\n"
        "       moelab-cli route --model PATH|builtin --text \"...\" [--scheme S] [--k K]\n"
        "                        [--capacity C] [--drop D] [--seed S] [--out trace] [--device D]\n"
        "Routes random hidden states (seeded), the (n_tokens, d_model) matrix in --input, or the\n"
        "bytes of --text through the language model's every MoE layer, and writes\n"
        "<out>.json, <out>.pairs.csv and <out>.experts.csv. Schemes:");
    for (int i = 0; i < kNumSchemes; ++i) std::printf(" %s", scheme_name(static_cast<Scheme>(i)));
    std::printf("\n%s", kDeviceHelp);
}

// [SECTION] Options
bool given(const ArgParser& ap, const char* name) { return std::find(ap.rest.begin(), ap.rest.end(), name) != ap.rest.end(); }

int ranged(ArgParser& ap, const char* name, int fallback, int lo, int hi) {
    const int v = ap.int_value(name, fallback);
    if (v < lo || v > hi)
        throw Error(kWhere, name, "is " + std::to_string(v), "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
}

std::string scheme_list() {
    std::string s;
    for (int i = 0; i < kNumSchemes; ++i) s += (i ? ", " : "") + std::string(scheme_name(static_cast<Scheme>(i)));
    return s;
}

// Router knobs shared by both modes; `base` is what an option left out keeps.
RouterConfig read_router(ArgParser& ap, RouterConfig base) {
    if (given(ap, "--scheme")) {
        const std::string s = ap.value("--scheme", "");
        const auto scheme = scheme_from_name(s);
        if (!scheme) throw Error(kWhere, "--scheme", "'" + s + "' is not a routing scheme", "one of: " + scheme_list());
        base.scheme = *scheme;
    }
    if (given(ap, "--k")) base.k = ranged(ap, "--k", base.k, 1, 1024);
    if (given(ap, "--capacity")) {
        base.capacity_factor = ap.float_value("--capacity", base.capacity_factor);
        if (!(base.capacity_factor > 0.0f) || base.capacity_factor > 1000.0f)
            throw Error(kWhere, "--capacity", "is " + std::to_string(base.capacity_factor), "expected a capacity factor in (0, 1000], e.g. 1.25");
    }
    if (given(ap, "--drop")) {
        const std::string d = ap.value("--drop", "");
        const auto policy = drop_policy_from_name(d);
        if (!policy) throw Error(kWhere, "--drop", "'" + d + "' is not a drop policy", "one of: dropless, position, score");
        base.drop_policy = *policy;
    }
    if (given(ap, "--seed")) base.seed = static_cast<uint64_t>(ranged(ap, "--seed", 0, 0, 2147483647));
    return base;
}

// [SECTION] Summary printing
void print_summary(const RoutingTrace& t, const char* title) {
    std::printf("%s: %s, %d tokens, %d experts, K=%d, capacity %s\n", title, scheme_name(t.scheme), t.n_tokens, t.n_experts, t.k,
                t.capacity < 0 ? "dropless" : std::to_string(t.capacity).c_str());
    const int max_wanted = std::max(1, *std::max_element(t.expert_wanted.begin(), t.expert_wanted.end()));
    const int width = 40;
    for (int e = 0; e < t.n_experts; ++e) {
        const auto i = static_cast<size_t>(e);
        // '#' kept, 'x' dropped over capacity, scaled so the busiest expert fills the width.
        const int kept = static_cast<int>(std::lround(static_cast<double>(t.expert_load[i]) * width / max_wanted));
        const int dropped = static_cast<int>(std::lround(static_cast<double>(t.expert_wanted[i]) * width / max_wanted)) - kept;
        std::string bar(static_cast<size_t>(kept), '#');
        bar += std::string(static_cast<size_t>(std::max(0, dropped)), 'x');
        std::printf("  E%-3d |%-*s| %4d", e, width, bar.c_str(), t.expert_load[i]);
        if (t.expert_dropped[i] > 0) std::printf("  (+%d dropped)", t.expert_dropped[i]);
        std::printf("\n");
    }
    std::printf("  load CV %.3f, max/mean %.2f, dropped %d of %d pairs (%.1f%%), %d tokens with no expert, aux loss %.3f (1 = balanced)\n",
                t.stats.load_cv, t.stats.max_over_mean, t.stats.n_dropped, t.stats.n_pairs, 100.0 * t.stats.frac_dropped,
                t.stats.n_tokens_unrouted, t.stats.aux_loss);
}

std::string byte_text(uint8_t b) { return std::string(1, static_cast<char>(b)); }

// [SECTION] Layer mode
int route_layer(ArgParser& ap, const std::string& out) {
    const int n_experts = ranged(ap, "--n-experts", 8, 1, 1024);
    RouterConfig rc;
    rc.n_experts = n_experts;
    rc.k = 2;
    rc = read_router(ap, rc);
    const int d_ff = ranged(ap, "--d-ff", 128, 1, 16384);
    const int n_shared = ranged(ap, "--shared", 0, 0, 16);
    const std::string act = ap.value("--activation", "swiglu");
    if (act != "swiglu" && act != "gelu") throw Error(kWhere, "--activation", "'" + act + "' is not an activation", "swiglu or gelu");
    const std::string input = ap.value("--input", "");
    const bool d_model_given = given(ap, "--d-model");
    int d_model = ranged(ap, "--d-model", 64, 1, 4096);
    int n_tokens = ranged(ap, "--tokens", 16, 1, 100000);
    const Device device = device_option(ap);
    ap.finish();
    if (!ap.positional().empty()) throw Error(kWhere, ap.positional()[0], "is not an option of route", "see moelab-cli route --help");

    Mat x;  // (n_tokens, d_model)
    if (!input.empty()) {
        const SafeTensorsFile f = read_safetensors(input);
        std::string name;
        if (f.tensors.size() == 1) name = f.tensors.begin()->first;
        else if (f.tensors.count("hidden")) name = "hidden";
        else {
            std::string names;
            for (const auto& kv : f.tensors) names += (names.empty() ? "" : ", ") + kv.first;
            throw Error(input, "tensor", "has " + std::to_string(f.tensors.size()) + " tensors and none named 'hidden' (" + names + ")",
                        "store the (n_tokens, d_model) hidden states as a single tensor or as 'hidden'");
        }
        x = tensor_to_mat(f.tensors.at(name), input, name);
        if (x.rows() < 1 || x.cols() < 1) throw Error(input, "tensor '" + name + "'", "is empty", "expected (n_tokens, d_model) with both > 0");
        if (d_model_given && x.cols() != d_model)
            throw Error(input, "tensor '" + name + "'", "has " + std::to_string(x.cols()) + " columns but --d-model is " + std::to_string(d_model));
        if (x.rows() > 100000) throw Error(input, "tensor '" + name + "'", "has " + std::to_string(x.rows()) + " rows", "at most 100000 tokens");
        for (Eigen::Index i = 0; i < x.size(); ++i)
            if (!std::isfinite(x.data()[i])) throw Error(input, "tensor '" + name + "'", "holds a non-finite value at element " + std::to_string(i));
        d_model = static_cast<int>(x.cols());
        n_tokens = static_cast<int>(x.rows());
    } else {
        std::mt19937_64 rng(rc.seed ^ 0x5eedULL);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        x.resize(n_tokens, d_model);
        for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
    }

    MoeLayerConfig lc;
    lc.d_model = d_model;
    lc.d_ff = d_ff;
    lc.n_experts = n_experts;
    lc.n_shared = n_shared;
    lc.activation = act == "gelu" ? Activation::GELU : Activation::SwiGLU;
    validate(rc, n_tokens);  // a clear error before any work (K > N, BASE with T not a multiple of N, ...)
    MoeLayer layer(lc, init_moe_layer(lc, rc.seed));
    layer.set_backend(device_backend(device, kWhere));

    std::vector<int32_t> ids(static_cast<size_t>(n_tokens));
    for (int t = 0; t < n_tokens; ++t) ids[static_cast<size_t>(t)] = t;  // Hash routing hashes the position
    Mat y;
    RoutingTrace trace;
    layer.forward(x, rc, ids, y, trace);

    TraceContext ctx;
    ctx.token_ids = ids;
    ctx.extra = {{"command", "route"}, {"source", input.empty() ? "random" : input}, {"seed", rc.seed}, {"d_model", d_model},
                 {"d_ff", d_ff},         {"n_shared", n_shared}, {"activation", activation_name(lc.activation)},
                 {"capacity_factor", rc.capacity_factor}, {"drop", drop_policy_name(rc.drop_policy)}};
    write_trace_json(out + ".json", trace, ctx);
    write_trace_csv(out, trace, ctx);
    print_summary(trace, input.empty() ? "random hidden states" : input.c_str());
    std::printf("wrote %s.json, %s.pairs.csv, %s.experts.csv\n", out.c_str(), out.c_str(), out.c_str());
    return 0;
}

// [SECTION] Model mode
int route_model(ArgParser& ap, const std::string& out) {
    for (const char* layer_only : {"--input", "--tokens", "--d-model", "--d-ff", "--activation", "--shared"})
        if (given(ap, layer_only)) throw Error(kWhere, layer_only, "does not apply with --model", "the model fixes its own sizes");
    std::string path = ap.value("--model", "");
    if (path == "builtin") path = builtin_model_path();
    const bool has_text = given(ap, "--text");
    const std::string text = ap.value("--text", "");
    if (!has_text || text.empty()) throw Error(kWhere, "--text", "is missing or empty", "--model needs --text \"some text\"");
    LmModel model = LmModel::load(path);
    const LmConfig& cfg = model.config();
    if (given(ap, "--n-experts")) {
        const int n = ap.int_value("--n-experts", cfg.moe.n_experts);
        if (n != cfg.moe.n_experts)
            throw Error(kWhere, "--n-experts", "is " + std::to_string(n) + " but the model has " + std::to_string(cfg.moe.n_experts) + " experts",
                        "leave it out with --model");
    }
    LmRunOptions opt;
    opt.router = read_router(ap, cfg.router);
    const Device device = device_option(ap);
    ap.finish();
    if (!ap.positional().empty()) throw Error(kWhere, ap.positional()[0], "is not an option of route", "see moelab-cli route --help");
    if (static_cast<int>(text.size()) > cfg.max_seq)
        throw Error(kWhere, "--text", "is " + std::to_string(text.size()) + " bytes, over the model's context of " + std::to_string(cfg.max_seq),
                    "shorten the text");
    validate(opt.router, static_cast<int>(text.size()));

    model.set_backend(device_backend(device, kWhere));
    const std::vector<uint8_t> bytes(text.begin(), text.end());
    LmForward fwd;
    model.forward(bytes, opt, fwd);

    TraceContext ctx;
    for (uint8_t b : bytes) {
        ctx.token_ids.push_back(b);
        ctx.token_text.push_back(byte_text(b));
    }
    ctx.extra = {{"command", "route"}, {"model", path}, {"text", text}, {"capacity_factor", opt.router.capacity_factor},
                 {"drop", drop_policy_name(opt.router.drop_policy)}, {"seed", opt.router.seed}};
    ctx.include_matrices = true;
    write_file_atomic(out + ".json", traces_to_json(fwd.traces, fwd.trace_layer, ctx).dump(1) + "\n");
    std::string pairs, experts;
    for (size_t i = 0; i < fwd.traces.size(); ++i) {
        TraceContext lctx = ctx;
        lctx.layer = fwd.trace_layer[i];
        std::string p = trace_pairs_csv(fwd.traces[i], lctx);
        std::string e = trace_experts_csv(fwd.traces[i], lctx.layer);
        if (i > 0) {  // one header per file
            p.erase(0, p.find('\n') + 1);
            e.erase(0, e.find('\n') + 1);
        }
        pairs += p;
        experts += e;
        print_summary(fwd.traces[i], ("layer " + std::to_string(lctx.layer)).c_str());
    }
    write_file_atomic(out + ".pairs.csv", pairs);
    write_file_atomic(out + ".experts.csv", experts);
    std::printf("wrote %s.json, %s.pairs.csv, %s.experts.csv (%zu MoE layers)\n", out.c_str(), out.c_str(), out.c_str(), fwd.traces.size());
    return 0;
}

}  // namespace

int cmd_route(Args args) {
    ArgParser ap("route", args);
    if (ap.flag("--help") || ap.flag("-h")) {
        print_usage();
        return 0;
    }
    const std::string out = ap.value("--out", "trace");
    if (out.empty()) throw Error(kWhere, "--out", "is empty", "give a file name prefix, e.g. --out trace");
    return given(ap, "--model") ? route_model(ap, out) : route_layer(ap, out);
}

}  // namespace moe::cli
