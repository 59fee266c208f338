// Real MoE checkpoints' speed at their real sizes, with random BF16 weights made in memory (no
// files), built by the Hugging Face loader itself (core/models/hf/ random_hf_model): the same
// attention, MoE layers, packed BF16 panels and KV cache a downloaded checkpoint runs with.
//
//   Granite-3.0-1B-A400M  granitemoe, 32 experts top-8, d_model 1024, expert d_ff 512, 24 layers,
//                         vocab 49155, 16 heads / 8 kv heads, tied embeddings
//   OLMoE-1B-7B           olmoe, 64 experts top-8, d_model 2048, expert d_ff 1024, 16 layers,
//                         vocab 50304, 16 heads, whole-projection q/k norms
//
// Per decoder layer (attention + MoE): each model is built twice, with its first 2 layers and
// with none (embedding, final norm and head only), and every iteration times both on the same
// tokens: per layer = (t(2 layers) - t(0 layers)) / 2, so the head's GEMM (vocab x d_model)
// is not charged to the layers.
//
//   Hf/<model>/prefill/T64, T256   a causal forward of T tokens from position 0
//   Hf/<model>/decode              one KV-cache step at positions 64..191
//
// Counters (per layer): layer_ms; GFLOPs (projections, causal attention, router, the K experts
// per token) and vs_peak (/ the FMA peak at this thread count, bench_baselines.h); expert_GBs
// (bytes of the expert weights the tokens touch, distinct experts only, per second) and vs_bw
// (/ the read-bandwidth loop); vs_peak_cpu (the same from process CPU time, robust on a busy
// machine: what n dedicated cores would do); for decode, weight_GBs (attention + router + the K experts read
// per step) and vs_bw, the bandwidth bound. Targets: prefill vs_peak >= 0.5 at T256, decode
// vs_bw >= 0.6. Printed at exit: the whole model extrapolated (a 64-token re-route through all
// layers = t(0 layers) + n_layers x per layer, seconds) and its resident weight bytes (the
// 0-layer model + n_layers x a layer's, from resident_weight_bytes()).
//
// Filter: moelab-bench --benchmark_filter='^Hf/' (OLMoE's two layers take ~2 GB and ~10 s to build).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench_baselines.h"
#include "core/engine/cpu_features.h"
#include "core/engine/rng.h"
#include "core/models/hf/hf_model.h"
#include "core/models/model.h"

namespace {

using namespace moe::bench;
using moe::Model;

struct HfCase {
    const char* name;
    const char* config;  // config.json as published, less the keys the loader does not read
    int n_layers, d_model, n_heads, n_kv, head_dim, n_experts, k, d_ff;
};

const HfCase kCases[] = {
    {"granite_1b_a400m",
     R"({"model_type": "granitemoe", "vocab_size": 49155, "hidden_size": 1024, "intermediate_size": 512,
         "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 8, "num_local_experts": 32,
         "num_experts_per_tok": 8, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
         "hidden_act": "silu", "tie_word_embeddings": true, "embedding_multiplier": 12.0,
         "attention_multiplier": 0.015625, "residual_multiplier": 0.22, "logits_scaling": 6.0})",
     24, 1024, 16, 8, 64, 32, 8, 512},
    {"olmoe_1b_7b",
     R"({"model_type": "olmoe", "vocab_size": 50304, "hidden_size": 2048, "intermediate_size": 1024,
         "num_hidden_layers": 16, "num_attention_heads": 16, "num_key_value_heads": 16, "num_experts": 64,
         "num_experts_per_tok": 8, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
         "hidden_act": "silu", "tie_word_embeddings": false, "norm_topk_prob": false})",
     16, 2048, 16, 16, 128, 64, 8, 1024},
};
constexpr int kLayersBuilt = 2;

struct Built {
    std::unique_ptr<Model> layers, head_only;  // kLayersBuilt layers; 0 layers
};

Built& built(const HfCase& c) {
    static std::map<std::string, Built> cache;
    Built& b = cache[c.name];
    if (!b.layers) {
        b.layers = moe::hf::random_hf_model(c.config, kLayersBuilt, moe::WeightType::BF16, 11);
        b.head_only = moe::hf::random_hf_model(c.config, 0, moe::WeightType::BF16, 11);
    }
    return b;
}

std::vector<moe::TokenId> random_tokens(int n, int vocab, uint64_t seed) {
    moe::Rng rng(seed);
    std::vector<moe::TokenId> ids(static_cast<size_t>(n));
    for (moe::TokenId& id : ids) id = static_cast<moe::TokenId>(rng.next() % static_cast<uint64_t>(vocab));
    return ids;
}

double bytes_bf16(int64_t n_out, int64_t n_in) { return 2.0 * static_cast<double>(n_out) * static_cast<double>(n_in); }
double expert_bytes(const HfCase& c) { return 3.0 * bytes_bf16(c.d_ff, c.d_model); }
double attention_weight_bytes(const HfCase& c) {
    const int64_t q = int64_t{c.n_heads} * c.head_dim, kv = int64_t{c.n_kv} * c.head_dim;
    return bytes_bf16(q, c.d_model) + 2 * bytes_bf16(kv, c.d_model) + bytes_bf16(c.d_model, q);
}

// One layer's useful FLOPs for n tokens at positions pos0..pos0+n-1 (causal: each reads pos+1 keys).
double layer_flops(const HfCase& c, int n, int pos0) {
    const double q = double(c.n_heads) * c.head_dim, kv = double(c.n_kv) * c.head_dim;
    const double proj = 2.0 * n * c.d_model * (q + 2 * kv) + 2.0 * n * q * c.d_model;
    double keys = 0;
    for (int r = 0; r < n; ++r) keys += pos0 + r + 1;
    const double attn = 4.0 * keys * c.n_heads * c.head_dim;  // q.k and a.v
    const double router = 2.0 * n * c.n_experts * c.d_model;
    const double experts = 2.0 * n * c.k * 3.0 * c.d_model * c.d_ff;
    return proj + attn + router + experts;
}

double seconds_of(const std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Summary {
    double layer_s_t64 = 0, head_s_t64 = 0;  // for the whole-model extrapolation
    uint64_t resident = 0;
};
std::map<std::string, Summary> g_summary;

uint64_t whole_model_resident(const HfCase& c, Built& b) {
    const uint64_t per_layer = (b.layers->resident_weight_bytes() - b.head_only->resident_weight_bytes()) / kLayersBuilt;
    return b.head_only->resident_weight_bytes() + static_cast<uint64_t>(c.n_layers) * per_layer;
}

void bm_prefill(benchmark::State& state, const HfCase& c, int n_tokens) {
    Built& b = built(c);
    const int threads = omp_get_max_threads();
    ensure_peak(threads);
    ensure_bandwidth(threads);
    const std::vector<moe::TokenId> ids = random_tokens(n_tokens, b.layers->info().vocab, 5);
    moe::ModelRunOptions opt;
    opt.router = b.layers->info().trained_router;
    moe::ModelForward out;
    b.layers->forward(ids, opt, out);  // warm, and the experts the tokens touch
    double touched = 0;
    for (const moe::RoutingTrace& tr : out.traces) {
        std::set<int> used;
        for (const moe::RoutedPair& p : tr.pairs) used.insert(p.expert);
        touched += static_cast<double>(used.size()) * expert_bytes(c);
    }
    touched /= static_cast<double>(std::max<size_t>(out.traces.size(), 1));
    double sum_layer = 0, sum_head = 0, sum_layer_cpu = 0;
    int iters = 0;
    for (auto _ : state) {
        auto t0 = std::chrono::steady_clock::now();
        const double c0 = process_cpu_s();
        b.layers->forward(ids, opt, out);
        const double with_layers = seconds_of(t0), with_layers_cpu = process_cpu_s() - c0;
        t0 = std::chrono::steady_clock::now();
        const double c1 = process_cpu_s();
        b.head_only->forward(ids, opt, out);
        const double head = seconds_of(t0), head_cpu = process_cpu_s() - c1;
        const double per_layer = std::max(with_layers - head, 1e-9) / kLayersBuilt;
        state.SetIterationTime(per_layer);
        sum_layer += per_layer;
        sum_layer_cpu += std::max(with_layers_cpu - head_cpu, 1e-9) / kLayersBuilt;
        sum_head += head;
        ++iters;
    }
    const double layer_s = sum_layer / iters;
    const double gflops = layer_flops(c, n_tokens, 0) / layer_s / 1e9;
    state.counters["layer_ms"] = layer_s * 1e3;
    state.counters["GFLOPs"] = gflops;
    state.counters["vs_peak"] = gflops / g_peak_gflops[threads];
    // From process CPU time (all threads): what `threads` dedicated cores would do (bench_baselines.h).
    state.counters["vs_peak_cpu"] = layer_flops(c, n_tokens, 0) / (sum_layer_cpu / iters) * threads / 1e9 / g_peak_gflops_cpu[threads];
    state.counters["expert_GBs"] = touched / layer_s / 1e9;
    state.counters["vs_bw"] = touched / layer_s / 1e9 / g_bw_gbs[threads];
    if (n_tokens == 64) {
        Summary& s = g_summary[c.name];
        s.layer_s_t64 = layer_s;
        s.head_s_t64 = sum_head / iters;
        s.resident = whole_model_resident(c, b);
    }
}

void bm_decode(benchmark::State& state, const HfCase& c) {
    Built& b = built(c);
    const int threads = omp_get_max_threads();
    ensure_bandwidth(threads);
    constexpr int kContext = 64, kMaxPos = 192;
    const std::vector<moe::TokenId> ids = random_tokens(kMaxPos, b.layers->info().vocab, 6);
    moe::ModelRunOptions opt;
    opt.router = b.layers->info().trained_router;
    std::unique_ptr<moe::ModelState> s_layers, s_head;
    moe::Vec logits;
    auto refill = [&] {  // a fresh cache holding kContext tokens
        s_layers = b.layers->new_state();
        s_head = b.head_only->new_state();
        for (int i = 0; i < kContext; ++i) {
            b.layers->step(*s_layers, ids[static_cast<size_t>(i)], opt, logits);
            b.head_only->step(*s_head, ids[static_cast<size_t>(i)], opt, logits);
        }
    };
    refill();
    double sum_layer = 0, sum_layer_cpu = 0;
    int iters = 0;
    for (auto _ : state) {
        if (s_layers->pos >= kMaxPos) {
            state.PauseTiming();
            refill();
            state.ResumeTiming();
        }
        const moe::TokenId id = ids[static_cast<size_t>(s_layers->pos)];
        auto t0 = std::chrono::steady_clock::now();
        const double c0 = process_cpu_s();
        b.layers->step(*s_layers, id, opt, logits);
        const double with_layers = seconds_of(t0), with_layers_cpu = process_cpu_s() - c0;
        t0 = std::chrono::steady_clock::now();
        const double c1 = process_cpu_s();
        b.head_only->step(*s_head, id, opt, logits);
        const double per_layer = std::max(with_layers - seconds_of(t0), 1e-9) / kLayersBuilt;
        state.SetIterationTime(per_layer);
        sum_layer += per_layer;
        sum_layer_cpu += std::max(with_layers_cpu - (process_cpu_s() - c1), 1e-9) / kLayersBuilt;
        ++iters;
    }
    const double layer_s = sum_layer / iters;
    // What one step must read per layer: the attention projections, the router (float32) and
    // the K experts' weights (the KV cache, 64-192 positions, is a few hundred KB more).
    const double bytes = attention_weight_bytes(c) + 4.0 * c.n_experts * c.d_model + c.k * expert_bytes(c);
    state.counters["layer_ms"] = layer_s * 1e3;
    state.counters["weight_GBs"] = bytes / layer_s / 1e9;
    state.counters["vs_bw"] = bytes / layer_s / 1e9 / g_bw_gbs[threads];
    state.counters["layer_cpu_ms"] = sum_layer_cpu / iters * 1e3;
}

void print_summary() {
    if (g_summary.empty()) return;
    // isa_name, not isa_reason: this runs at exit, after function-local statics may be gone.
    std::printf("\nHugging Face models at real sizes, BF16 weights (kernels: %s, %d threads)\n", moe::isa_name(moe::active_isa()),
                omp_get_max_threads());
    for (const HfCase& c : kCases) {
        const auto it = g_summary.find(c.name);
        if (it == g_summary.end()) continue;
        const Summary& s = it->second;
        std::printf("%-18s 64-token re-route through all %d layers: %.3f s (%.1f ms per layer, %.1f ms embedding + head); "
                    "resident weights %.2f GB\n",
                    c.name, c.n_layers, s.head_s_t64 + c.n_layers * s.layer_s_t64, s.layer_s_t64 * 1e3, s.head_s_t64 * 1e3,
                    static_cast<double>(s.resident) / 1e9);
    }
}

[[maybe_unused]] const bool g_registered = [] {
    for (const HfCase& c : kCases) {
        for (int n : {64, 256})
            benchmark::RegisterBenchmark(("Hf/" + std::string(c.name) + "/prefill/T" + std::to_string(n)).c_str(),
                                         [&c, n](benchmark::State& s) { bm_prefill(s, c, n); })
                ->UseManualTime()
                ->Unit(benchmark::kMillisecond)
                ->MinTime(0.5);
        benchmark::RegisterBenchmark(("Hf/" + std::string(c.name) + "/decode").c_str(),
                                     [&c](benchmark::State& s) { bm_decode(s, c); })
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.5);
    }
    std::atexit(print_summary);
    return true;
}();

}  // namespace
