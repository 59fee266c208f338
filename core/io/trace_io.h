// Routing trace export: JSON (the whole trace plus batch statistics and caller context) and CSV
// (one row per (token, expert) pair; one row per expert). The CLI, the app's export buttons and
// the tests all write traces through these functions, so every exporter agrees on the format.
//
// Numbers: JSON keeps floats exactly (shortest round-trip form); CSV prints them with 9
// significant digits, so a float read back is bit-identical to the one in the trace.
//
// Files are written atomically (core/io/file_io.h); failures throw moe::Error naming the path.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/engine/routing.h"

namespace moe {

// What the trace alone does not know: which tokens were routed, from which layer, and any
// settings the caller wants recorded beside it (router knobs, model path, seed, ...).
struct TraceContext {
    std::vector<int32_t> token_ids;       // (n_tokens) or empty
    std::vector<std::string> token_text;  // (n_tokens) or empty: how each token reads (a byte, a word)
    int layer = -1;                       // transformer layer of this trace; -1 = a lone MoE layer
    nlohmann::json extra = nlohmann::json::object();  // copied into the JSON "context" object
    bool include_matrices = true;         // JSON carries logits and probs (n_tokens x n_experts)
};

// [SECTION] JSON
nlohmann::json batch_stats_to_json(const BatchStats& s);
nlohmann::json trace_to_json(const RoutingTrace& trace, const TraceContext& ctx = {});
// Several traces (one per MoE layer of a model), with one shared context.
nlohmann::json traces_to_json(const std::vector<RoutingTrace>& traces, const std::vector<int>& layers,
                              const TraceContext& ctx = {});

// [SECTION] CSV
// token,token_id,token_text,expert,rank,gate,score,dropped   (layer column first if ctx.layer >= 0)
// token_id / token_text are empty when not given. token_text escapes control bytes (\n, \t,
// \xNN) so every record is one line, and is quoted (RFC 4180) when it holds a comma or quote.
std::string trace_pairs_csv(const RoutingTrace& trace, const TraceContext& ctx = {});
// expert,load,wanted,dropped,capacity,load_share   (capacity -1 = dropless; share of kept pairs)
// With layer >= 0 a first column "layer" holds it, so several layers' rows can share one file.
std::string trace_experts_csv(const RoutingTrace& trace, int layer = -1);

// [SECTION] Files
void write_trace_json(const std::string& path, const RoutingTrace& trace, const TraceContext& ctx = {});
// Writes <base>.pairs.csv and <base>.experts.csv.
void write_trace_csv(const std::string& base, const RoutingTrace& trace, const TraceContext& ctx = {});

}  // namespace moe
