// Routing trace export (core/io/trace_io.h).
#include "core/io/trace_io.h"

#include <cstdio>

#include "core/error.h"
#include "core/io/file_io.h"

namespace moe {

using nlohmann::json;

namespace {

std::string num(float x) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(x));
    return buf;
}

json matrix_json(const Mat& m) {  // (rows, cols) -> [[...], ...]
    json rows = json::array();
    for (Eigen::Index r = 0; r < m.rows(); ++r) {
        json row = json::array();
        for (Eigen::Index c = 0; c < m.cols(); ++c) row.push_back(m(r, c));
        rows.push_back(std::move(row));
    }
    return rows;
}

// One line per record: control bytes become escapes; commas and quotes force RFC 4180 quoting.
std::string csv_text(const std::string& s) {
    std::string out;
    bool quote = false;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02X", c);
            out += buf;
        } else if (c == '"') {
            out += "\"\"";
            quote = true;
        } else {
            if (c == ',') quote = true;
            out += ch;
        }
    }
    return quote ? "\"" + out + "\"" : out;
}

void check_context(const RoutingTrace& t, const TraceContext& ctx) {
    if (!ctx.token_ids.empty() && static_cast<int>(ctx.token_ids.size()) != t.n_tokens)
        throw Error("trace export", "token_ids", "has " + std::to_string(ctx.token_ids.size()) + " entries for " + std::to_string(t.n_tokens) + " tokens");
    if (!ctx.token_text.empty() && static_cast<int>(ctx.token_text.size()) != t.n_tokens)
        throw Error("trace export", "token_text", "has " + std::to_string(ctx.token_text.size()) + " entries for " + std::to_string(t.n_tokens) + " tokens");
}

json trace_body(const RoutingTrace& t, bool include_matrices) {
    json pairs = json::array();
    for (const RoutedPair& p : t.pairs)
        pairs.push_back({{"token", p.token}, {"expert", p.expert}, {"rank", p.rank}, {"gate", p.gate}, {"score", p.score}, {"dropped", p.dropped}});
    json j = {
        {"scheme", scheme_name(t.scheme)},
        {"n_tokens", t.n_tokens},
        {"n_experts", t.n_experts},
        {"k", t.k},
        {"capacity", t.capacity},
        {"stats", batch_stats_to_json(t.stats)},
        {"expert_load", t.expert_load},
        {"expert_wanted", t.expert_wanted},
        {"expert_dropped", t.expert_dropped},
        {"token_begin", t.token_begin},
        {"pairs", std::move(pairs)},
    };
    if (include_matrices) {
        j["logits"] = matrix_json(t.logits);
        j["probs"] = matrix_json(t.probs);
    }
    return j;
}

// Token text from a byte-level model may cut a UTF-8 character in half; JSON strings must be
// valid UTF-8, so each invalid byte becomes U+FFFD and the json value is always dumpable.
std::string valid_utf8(const std::string& s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        int len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len > 0 && i + static_cast<size_t>(len) <= s.size();
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 0x07u);
        for (int k = 1; ok && k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
            ok = (cc & 0xc0) == 0x80;
            cp = (cp << 6) | (cc & 0x3fu);
        }
        static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
        ok = ok && cp >= kMin[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
        if (ok) {
            out.append(s, i, static_cast<size_t>(len));
            i += static_cast<size_t>(len);
        } else {
            out += "\xef\xbf\xbd";
            ++i;
        }
    }
    return out;
}

json context_json(const TraceContext& ctx) {
    json c = ctx.extra.is_object() ? ctx.extra : json::object();
    if (!ctx.token_ids.empty()) c["token_ids"] = ctx.token_ids;
    if (!ctx.token_text.empty()) {
        json text = json::array();
        for (const std::string& s : ctx.token_text) text.push_back(valid_utf8(s));
        c["token_text"] = std::move(text);
    }
    return c;
}

std::string dump(const json& j) {
    // `extra` comes from the caller and may still hold bad UTF-8: replace rather than fail.
    return j.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

json batch_stats_to_json(const BatchStats& s) {
    return {
        {"load_cv", s.load_cv},
        {"max_over_mean", s.max_over_mean},
        {"router_entropy", s.router_entropy},
        {"aux_loss", s.aux_loss},
        {"z_loss", s.z_loss},
        {"seq_aux_loss", s.seq_aux_loss},
        {"frac_dropped", s.frac_dropped},
        {"n_pairs", s.n_pairs},
        {"n_dropped", s.n_dropped},
        {"n_tokens_unrouted", s.n_tokens_unrouted},
    };
}

json trace_to_json(const RoutingTrace& trace, const TraceContext& ctx) {
    check_context(trace, ctx);
    json j = trace_body(trace, ctx.include_matrices);
    if (ctx.layer >= 0) j["layer"] = ctx.layer;
    j["context"] = context_json(ctx);
    return j;
}

json traces_to_json(const std::vector<RoutingTrace>& traces, const std::vector<int>& layers, const TraceContext& ctx) {
    if (layers.size() != traces.size())
        throw Error("trace export", "layers", "has " + std::to_string(layers.size()) + " entries for " + std::to_string(traces.size()) + " traces");
    json arr = json::array();
    for (size_t i = 0; i < traces.size(); ++i) {
        check_context(traces[i], ctx);
        json t = trace_body(traces[i], ctx.include_matrices);
        t["layer"] = layers[i];
        arr.push_back(std::move(t));
    }
    return {{"context", context_json(ctx)}, {"traces", std::move(arr)}};
}

std::string trace_pairs_csv(const RoutingTrace& t, const TraceContext& ctx) {
    check_context(t, ctx);
    const bool with_layer = ctx.layer >= 0;
    std::string out = with_layer ? "layer," : "";
    out += "token,token_id,token_text,expert,rank,gate,score,dropped\n";
    for (const RoutedPair& p : t.pairs) {
        MOE_ASSERT(p.token >= 0 && p.token < t.n_tokens, "a routed pair names a token of the trace");
        if (with_layer) out += std::to_string(ctx.layer) + ",";
        out += std::to_string(p.token) + ",";
        if (!ctx.token_ids.empty()) out += std::to_string(ctx.token_ids[static_cast<size_t>(p.token)]);
        out += ",";
        if (!ctx.token_text.empty()) out += csv_text(ctx.token_text[static_cast<size_t>(p.token)]);
        // Appends only: GCC 12 warns (-Wrestrict, a false positive) on "," + std::string&&.
        for (const std::string& field : {std::to_string(p.expert), std::to_string(p.rank), num(p.gate), num(p.score)})
            out.append(",").append(field);
        out += p.dropped ? ",1\n" : ",0\n";
    }
    return out;
}

std::string trace_experts_csv(const RoutingTrace& t, int layer) {
    const std::string prefix = layer >= 0 ? std::to_string(layer) + "," : "";
    std::string out = (layer >= 0 ? "layer," : "") + std::string("expert,load,wanted,dropped,capacity,load_share\n");
    long long kept = 0;
    for (int l : t.expert_load) kept += l;
    for (int e = 0; e < t.n_experts; ++e) {
        const auto i = static_cast<size_t>(e);
        const int load = i < t.expert_load.size() ? t.expert_load[i] : 0;
        const int wanted = i < t.expert_wanted.size() ? t.expert_wanted[i] : 0;
        const int dropped = i < t.expert_dropped.size() ? t.expert_dropped[i] : 0;
        const float share = kept > 0 ? static_cast<float>(static_cast<double>(load) / static_cast<double>(kept)) : 0.0f;
        out += prefix + std::to_string(e) + "," + std::to_string(load) + "," + std::to_string(wanted) + "," + std::to_string(dropped) + "," +
               std::to_string(t.capacity) + "," + num(share) + "\n";
    }
    return out;
}

void write_trace_json(const std::string& path, const RoutingTrace& trace, const TraceContext& ctx) {
    write_file_atomic(path, dump(trace_to_json(trace, ctx)));
}

void write_trace_csv(const std::string& base, const RoutingTrace& trace, const TraceContext& ctx) {
    write_file_atomic(base + ".pairs.csv", trace_pairs_csv(trace, ctx));
    write_file_atomic(base + ".experts.csv", trace_experts_csv(trace, ctx.layer));
}

}  // namespace moe
