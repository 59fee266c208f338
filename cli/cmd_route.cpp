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
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/io/file_io.h"
#include "core/models/lm.h"
#include "core/models/model.h"
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
        "       moelab-cli route --model PATH|DIR|builtin (--text \"...\" | --token-ids 1,2,3) [--scheme S]\n"
        "                        [--k K] [--capacity C] [--drop D] [--seed S] [--out trace]\n"
        "                        [--logits logits.npy] [--device D]\n"
        "Routes random hidden states (seeded), the (n_tokens, d_model) matrix in --input, or the\n"
        "tokens of --text (or --token-ids) through a model's every MoE layer, and writes\n"
        "<out>.json (with token_ids and token_text), <out>.pairs.csv and <out>.experts.csv; with\n"
        "--logits the (n_tokens, vocab) FP32 logits as a NumPy .npy file. With a model it prints\n"
        "the text's loss (nats/token, perplexity) under these knobs and under the trained routing.\n"
        "Schemes:");
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
    validate(rc, n_tokens);  // a clear error before any work (K > N, capacity_factor out of range, ...)
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
// "1,2,3" -> ids; each must be a non-negative integer (the model checks them against its vocabulary).
std::vector<TokenId> parse_token_ids(const std::string& text) {
    std::vector<TokenId> ids;
    size_t i = 0;
    while (i <= text.size()) {
        const size_t comma = std::min(text.find(',', i), text.size());
        const std::string item = text.substr(i, comma - i);
        char* end = nullptr;
        const long long v = item.empty() ? -1 : std::strtoll(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 0 || v > 2147483647)
            throw Error(kWhere, "--token-ids", "item " + std::to_string(ids.size()) + " is '" + item + "'",
                        "expected comma-separated non-negative integers, e.g. --token-ids 1,2,3");
        ids.push_back(static_cast<TokenId>(v));
        if (ids.size() > 1000000) throw Error(kWhere, "--token-ids", "has over 1000000 ids", "shorten the input");
        i = comma + 1;
    }
    return ids;
}

// A (rows, cols) FP32 matrix as a NumPy .npy file (format version 1.0, little-endian, C order).
std::string npy_bytes(ConstMatRef m) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(m.rows()) + ", " +
                         std::to_string(m.cols()) + "), }";
    // magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in '\n'.
    const size_t unpadded = 10 + header.size() + 1;
    header += std::string((64 - unpadded % 64) % 64, ' ') + "\n";
    std::string out("\x93NUMPY\x01\x00", 8);
    out.push_back(static_cast<char>(header.size() & 0xff));
    out.push_back(static_cast<char>(header.size() >> 8));
    out += header;
    const size_t data_at = out.size();
    out.resize(data_at + static_cast<size_t>(m.size()) * sizeof(float));
    for (Eigen::Index r = 0; r < m.rows(); ++r)  // Eigen::Ref may carry an outer stride: copy row by row
        std::memcpy(out.data() + data_at + static_cast<size_t>(r * m.cols()) * sizeof(float), m.row(r).data(),
                    static_cast<size_t>(m.cols()) * sizeof(float));
    return out;
}

int route_model(ArgParser& ap, const std::string& out) {
    for (const char* layer_only : {"--input", "--tokens", "--d-model", "--d-ff", "--activation", "--shared"})
        if (given(ap, layer_only)) throw Error(kWhere, layer_only, "does not apply with --model", "the model fixes its own sizes");
    std::string path = ap.value("--model", "");
    if (path == "builtin") path = builtin_model_path();
    const bool has_text = given(ap, "--text");
    const bool has_ids = given(ap, "--token-ids");
    const std::string text = ap.value("--text", "");
    const std::string ids_text = ap.value("--token-ids", "");
    const std::string logits_path = ap.value("--logits", "");
    if (has_text == has_ids) throw Error(kWhere, has_text ? "--token-ids" : "--text", has_text ? "is given with --text" : "is missing",
                                         "--model needs exactly one of --text \"some text\" or --token-ids 1,2,3");
    if (has_text && text.empty()) throw Error(kWhere, "--text", "is empty", "--model needs --text \"some text\"");
    std::unique_ptr<Model> model = open_model(path);
    const ModelInfo& info = model->info();
    if (given(ap, "--n-experts")) {
        const int n = ap.int_value("--n-experts", info.moe.n_experts);
        if (n != info.moe.n_experts)
            throw Error(kWhere, "--n-experts", "is " + std::to_string(n) + " but the model has " + std::to_string(info.moe.n_experts) + " experts",
                        "leave it out with --model");
    }
    ModelRunOptions opt;
    opt.router = read_router(ap, info.trained_router);
    const Device device = device_option(ap);
    ap.finish();
    if (!ap.positional().empty()) throw Error(kWhere, ap.positional()[0], "is not an option of route", "see moelab-cli route --help");
    const Tokenizer& tok = model->tokenizer();
    const std::vector<TokenId> ids = has_text ? tok.encode(text, false) : parse_token_ids(ids_text);
    const char* input_flag = has_text ? "--text" : "--token-ids";
    if (ids.empty()) throw Error(kWhere, input_flag, "encodes to no tokens", "give some text");
    if (static_cast<int>(ids.size()) > info.max_seq)
        throw Error(kWhere, input_flag, "is " + std::to_string(ids.size()) + " tokens, over the model's context of " + std::to_string(info.max_seq),
                    "shorten the text");
    for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] >= info.vocab)
            throw Error(kWhere, input_flag, "token " + std::to_string(i) + " is id " + std::to_string(ids[i]),
                        "expected ids below the model's vocabulary of " + std::to_string(info.vocab));
    validate(opt.router, static_cast<int>(ids.size()));

    model->set_backend(device_backend(device, kWhere));
    ModelForward fwd;
    model->forward(ids, opt, fwd);
    // The real effect of the knobs: the text's loss under them, next to the trained routing's.
    const double loss = next_token_loss(fwd.logits, ids);
    ModelRunOptions trained;
    trained.router = info.trained_router;
    ModelForward ref;
    model->forward(ids, trained, ref);
    const double trained_loss = next_token_loss(ref.logits, ids);

    TraceContext ctx;
    for (TokenId id : ids) {
        ctx.token_ids.push_back(id);
        // A model's vocabulary is often padded past its tokenizer's: such ids have no text.
        ctx.token_text.push_back(id < tok.vocab_size() ? tok.token_bytes(id) : "<" + std::to_string(id) + ">");
    }
    ctx.extra = {{"command", "route"}, {"model", path}, {"capacity_factor", opt.router.capacity_factor},
                 {"drop", drop_policy_name(opt.router.drop_policy)}, {"seed", opt.router.seed}, {"k", opt.router.k},
                 {"trained_k", info.trained_router.k}, {"trained_scheme", scheme_name(info.trained_router.scheme)}};
    if (has_text) ctx.extra["text"] = text;
    if (std::isfinite(loss)) {
        ctx.extra["loss_nats_per_token"] = loss;
        ctx.extra["perplexity"] = std::exp(loss);
        ctx.extra["trained_loss_nats_per_token"] = trained_loss;
        ctx.extra["trained_perplexity"] = std::exp(trained_loss);
    }
    ctx.include_matrices = true;
    nlohmann::json doc = traces_to_json(fwd.traces, fwd.trace_layer, ctx);
    doc["token_ids"] = ctx.token_ids;
    nlohmann::json texts = nlohmann::json::array();
    // Token text is bytes; JSON wants UTF-8: a token holding part of a character is written with
    // its bytes replaced (nlohmann's replace handler), as the trace format does for token_text.
    for (const std::string& t : ctx.token_text) texts.push_back(t);
    doc["token_text"] = texts;
    write_file_atomic(out + ".json", doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
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
    if (!logits_path.empty()) write_file_atomic(logits_path, npy_bytes(fwd.logits));
    if (std::isfinite(loss))
        std::printf("loss %.4f nats/token (perplexity %.2f) with %s K = %d; trained routing (%s K = %d): %.4f nats/token (perplexity %.2f)\n",
                    loss, std::exp(loss), scheme_name(opt.router.scheme), effective_k(opt.router),
                    scheme_name(info.trained_router.scheme), info.trained_router.k, trained_loss, std::exp(trained_loss));
    std::printf("wrote %s.json, %s.pairs.csv, %s.experts.csv (%zu MoE layers)%s%s\n", out.c_str(), out.c_str(), out.c_str(),
                fwd.traces.size(), logits_path.empty() ? "" : ", ", logits_path.c_str());
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
