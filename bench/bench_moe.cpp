// MoE layer speed, as ratios to baselines measured in the same run (core/engine/bench_cases.h shapes).
//
// [SECTION] Baselines   dense Eigen FFN with the same active FLOPs (FMA peak and read
//                       bandwidth: bench_baselines.h, shared with bench_hf.cpp)
// [SECTION] MoE layer   forward, FP32 or BF16 expert weights, with the dispatch stages timed apart
// [SECTION] Summary     one table at the end; main()
//
// The packed kernels' instruction set is chosen by cpuid (core/engine/cpu_features.h) and
// printed first; MOE_ISA=portable|avx2|avx512 forces one, so variants can be compared.
//
// Names are filter friendly:  Peak/th2, Bandwidth/th1, Dense/T256_d512_N8_K2_swiglu/th2,
// Moe/T256_d512_N8_K2_swiglu/th2, MoeBf16/T1_d512_N8_K2_swiglu/th1. A quick subset:
//     moelab-bench --benchmark_filter='/T(1|256)_d512_N8_K2_sw|Peak|Bandwidth'
// Counters per MoE shape: GFLOPs (expert FLOPs, T*K rows), vs_dense (dense time / MoE time for
// the same FLOPs), vs_peak (GFLOP/s / FMA peak at that thread count), dispatch (router + route
// + sort + gather + combine, fraction of the layer time), GBs (expert weight bytes read per
// second: the bound at T = 1, where every weight is used once) and vs_bw (GBs / the read
// bandwidth loop). At T = 1 the token changes every iteration (a pool of 64), so the experts
// read change too and, where all experts outgrow the caches, come from memory as in decoding.
//
// A shared, busy machine stretches wall time unpredictably (threads wait for a core), so every
// ratio is also given from PROCESS CPU time (all threads): *_cpu counters, "what n dedicated
// cores would do". On an idle machine the two agree; where they differ, trust *_cpu for the
// kernels and wall for the thread speedup.
#include <benchmark/benchmark.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/engine/backend.h"
#include "core/engine/bench_cases.h"
#include "core/engine/cpu_baseline.h"
#include "core/engine/cpu_features.h"
#include "core/engine/packed_gemm.h"
#include "core/engine/moe_layer.h"
#include "core/engine/routing.h"
#include "bench_baselines.h"

namespace {

using namespace moe::bench;  // Timing, the peak and bandwidth baselines
using moe::Activation;
using moe::Mat;
using moe::MoeCase;

constexpr int kThreadCounts[] = {1, 2};

std::string thread_tag(int n_threads) { return std::string("th").append(std::to_string(n_threads)); }

// What the summary table needs, keyed by "<shape>/th<n>" (the last run of a benchmark wins,
// which is the measured one).
struct Result {
    double moe_s = 0, dense_s = 0, gflops = 0, vs_dense = 0, vs_peak = 0, dispatch = 0;
    double moe_cpu_s = 0, vs_dense_cpu = 0, vs_peak_cpu = 0;
    double gbs = 0, vs_bw = 0;  // expert weight bytes read per second, and / the bandwidth loop
};
std::map<std::string, Timing> g_dense;       // "<shape>/th<n>" -> one dense FFN
std::map<std::string, Result> g_results;     // "<shape>/th<n>"
std::vector<std::string> g_result_order;

double expert_flops(const MoeCase& c, int64_t n_rows) {
    const int n_mats = c.activation == Activation::SwiGLU ? 3 : 2;
    return 2.0 * static_cast<double>(n_rows) * c.d_model * c.d_ff * n_mats;
}

// [SECTION] Baselines
// The dense FFN: T*K rows through one expert's weights, plain Eigen (it parallelises its GEMMs
// over omp_get_max_threads()).
struct DenseFfn {
    const moe::ExpertWeights* e;
    Activation act;
    Mat h, lin, y;
    void run(const Mat& x) {
        h.noalias() = x * e->w1.transpose();
        if (act == Activation::GELU) {
            if (e->b1.size() > 0) h.rowwise() += e->b1.transpose();
            h.array() = 0.5f * h.array() *
                        (1.0f + (0.7978845608f * (h.array() + 0.044715f * h.array().cube())).tanh());
        } else {
            lin.noalias() = x * e->w3.transpose();
            h.array() = h.array() / (1.0f + (-h.array()).exp()) * lin.array();
        }
        y.noalias() = h * e->w2.transpose();
        if (e->b2.size() > 0) y.rowwise() += e->b2.transpose();
    }
};

// One layer at a time: the grid is registered grouped by (activation, d_model, N), so
// consecutive benchmarks share it; the largest (d 1024, N 32 GELU) is about 1 GiB of weights.
struct LayerSlot {
    int d_model = 0, n_experts = 0;
    Activation act = Activation::GELU;
    std::unique_ptr<moe::MoeLayer> layer;
};
LayerSlot g_slot;

moe::MoeLayer& layer_for(const MoeCase& c) {
    if (!g_slot.layer || g_slot.d_model != c.d_model || g_slot.n_experts != c.n_experts ||
        g_slot.act != c.activation) {
        g_slot.layer.reset();
        const moe::MoeLayerConfig cfg = c.layer_config();  // the layer the tests check
        g_slot.layer = std::make_unique<moe::MoeLayer>(cfg, moe::init_moe_layer(cfg, 7));
        g_slot.d_model = c.d_model;
        g_slot.n_experts = c.n_experts;
        g_slot.act = c.activation;
    }
    return *g_slot.layer;
}

Mat bench_input(int n_rows, int d_model) {
    Mat x(n_rows, d_model);
    uint64_t s = 12345;
    for (int64_t i = 0; i < x.size(); ++i) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x.data()[i] = static_cast<float>(static_cast<int64_t>(s >> 40) % 2001) / 1000.0f - 1.0f;
    }
    return x;
}

Timing time_dense(DenseFfn& dense, const Mat& x, int reps) {
    const double c0 = process_cpu_s();
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) dense.run(x);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return {s / reps, (process_cpu_s() - c0) / reps};
}

void bm_dense(benchmark::State& state, MoeCase c, int n_threads) {
    omp_set_num_threads(n_threads);
    moe::MoeLayer& layer = layer_for(c);
    DenseFfn dense{&layer.weights().experts[0], c.activation, {}, {}, {}};
    const Mat x = bench_input(c.n_tokens * c.k, c.d_model);
    dense.run(x);  // warm: allocations, page faults
    const double c0 = process_cpu_s();
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
        dense.run(x);
        benchmark::DoNotOptimize(dense.y.data());
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double iters = static_cast<double>(state.iterations());
    const Timing t{s / iters, (process_cpu_s() - c0) / iters};
    g_dense[c.name() + "/" + thread_tag(n_threads)] = t;
    state.counters["GFLOPs"] = expert_flops(c, int64_t{c.n_tokens} * c.k) / t.wall_s / 1e9;
    state.counters["GFLOPs_cpu"] = expert_flops(c, int64_t{c.n_tokens} * c.k) / t.cpu_s * n_threads / 1e9;
}

// [SECTION] MoE layer
// Expert weight bytes of one expert: its matrices (biases are noise), at the packed type's size.
double expert_bytes(const MoeCase& c, bool bf16) {
    const int n_mats = c.activation == Activation::SwiGLU ? 3 : 2;
    return static_cast<double>(n_mats) * c.d_model * c.d_ff * (bf16 ? 2 : 4);
}

void bm_moe(benchmark::State& state, MoeCase c, int n_threads, bool bf16) {
    omp_set_num_threads(n_threads);
    moe::MoeLayer& layer = layer_for(c);
    layer.set_backend(bf16 ? moe::cpu_backend_bf16() : moe::cpu_backend());
    // Decoding (T = 1) sees a new token each step: cycle through a pool, so the experts read
    // change from one iteration to the next as they would.
    const int n_pool = c.n_tokens == 1 ? 64 : 1;
    const Mat pool = bench_input(c.n_tokens * n_pool, c.d_model);
    Mat x = pool.topRows(c.n_tokens);
    moe::RouterConfig rc;
    rc.scheme = moe::Scheme::TopKMixtral;
    rc.n_experts = c.n_experts;
    rc.k = c.k;
    Mat y;
    moe::RoutingTrace trace;
    layer.forward(x, rc, {}, y, trace);  // warm: packing, scratch buffers

    moe::MoeForwardProfile sum, one;
    double bytes = 0;
    int next = 0;
    std::vector<char> used(static_cast<size_t>(c.n_experts));
    const double c0 = process_cpu_s();
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
        if (n_pool > 1) x = pool.middleRows((next++ % n_pool) * c.n_tokens, c.n_tokens);
        layer.forward(x, rc, {}, y, trace, nullptr, &one);
        std::fill(used.begin(), used.end(), 0);
        for (const moe::RoutedPair& p : trace.pairs)
            if (!p.dropped) used[static_cast<size_t>(p.expert)] = 1;
        for (char u : used) bytes += u ? expert_bytes(c, bf16) : 0.0;
        benchmark::DoNotOptimize(y.data());
        sum.router_s += one.router_s;
        sum.route_s += one.route_s;
        sum.sort_s += one.sort_s;
        sum.gather_s += one.gather_s;
        sum.experts_s += one.experts_s;
        sum.combine_s += one.combine_s;
        sum.total_s += one.total_s;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double iters = static_cast<double>(state.iterations());
    const double per_iter = s / iters;
    const double cpu_per_iter = (process_cpu_s() - c0) / iters;

    const std::string dense_key = c.name() + "/" + thread_tag(n_threads);
    const std::string key = (bf16 ? "bf16:" : "f32:") + dense_key;
    if (!g_dense.count(dense_key)) {  // the Dense benchmark was filtered out: measure it here, untimed
        DenseFfn dense{&layer.weights().experts[0], c.activation, {}, {}, {}};
        const Mat xd = bench_input(c.n_tokens * c.k, c.d_model);
        dense.run(xd);
        g_dense[dense_key] = time_dense(dense, xd, std::max(3, static_cast<int>(0.05 / std::max(per_iter, 1e-6))));
    }
    const Timing dense = g_dense[dense_key];
    ensure_peak(n_threads);
    ensure_bandwidth(n_threads);
    int64_t n_kept = 0;
    for (const moe::RoutedPair& p : trace.pairs) n_kept += p.dropped ? 0 : 1;
    Result r;
    r.moe_s = per_iter;
    r.dense_s = dense.wall_s;
    r.gflops = expert_flops(c, n_kept) / per_iter / 1e9;
    r.vs_dense = dense.wall_s / per_iter;
    r.vs_peak = r.gflops / g_peak_gflops[n_threads];
    r.moe_cpu_s = cpu_per_iter;
    r.vs_dense_cpu = dense.cpu_s / cpu_per_iter;
    r.vs_peak_cpu = expert_flops(c, n_kept) / cpu_per_iter * n_threads / 1e9 / g_peak_gflops_cpu[n_threads];
    r.gbs = bytes / iters / per_iter / 1e9;
    r.vs_bw = r.gbs / g_bw_gbs[n_threads];
    r.dispatch = (sum.router_s + sum.route_s + sum.sort_s + sum.gather_s + sum.combine_s) / sum.total_s;
    if (!g_results.count(key)) g_result_order.push_back(key);
    g_results[key] = r;

    state.counters["GFLOPs"] = r.gflops;
    state.counters["vs_dense"] = r.vs_dense;
    state.counters["vs_peak"] = r.vs_peak;
    state.counters["vs_dense_cpu"] = r.vs_dense_cpu;
    state.counters["vs_peak_cpu"] = r.vs_peak_cpu;
    state.counters["dispatch"] = r.dispatch;
    state.counters["GBs"] = r.gbs;
    state.counters["vs_bw"] = r.vs_bw;
    state.counters["route_us"] = (sum.router_s + sum.route_s) / iters * 1e6;
    state.counters["sort_us"] = sum.sort_s / iters * 1e6;
    state.counters["gather_us"] = sum.gather_s / iters * 1e6;
    state.counters["combine_us"] = sum.combine_s / iters * 1e6;
    state.counters["experts_us"] = sum.experts_s / iters * 1e6;
}

// [SECTION] Summary
void print_summary() {
    if (g_results.empty()) return;
    std::printf("\nkernels: %s; the rest (and the Eigen baseline) built for MOE_ARCH=%s\n", moe::isa_reason().c_str(),
                moe::built_for_arch());
    std::printf("\n%-30s %4s %3s %9s %9s %7s %8s %7s %8s %7s %6s %6s %7s %9s %7s %7s\n", "shape", "type", "thr",
                "moe_ms", "dense_ms", "GFLOP/s", "vs_dense", "vs_peak", "dispatch", "GB/s", "vs_bw", "2t/1t",
                "bf16/32", "moe_cpu_ms", "dense_c", "peak_c");
    for (const std::string& key : g_result_order) {
        const Result& r = g_results[key];
        const size_t colon = key.find(':'), slash = key.rfind('/');
        const std::string type = key.substr(0, colon), shape = key.substr(colon + 1, slash - colon - 1);
        const std::string tag = key.substr(slash + 1);
        auto ratio = [&](const std::string& other) {  // other's time / this one's
            auto it = g_results.find(other);
            if (it == g_results.end()) return std::string("");
            char buf[16];
            std::snprintf(buf, sizeof buf, "%.2f", it->second.moe_s / r.moe_s);
            return std::string(buf);
        };
        const std::string speedup = tag == "th2" ? ratio(type + ":" + shape + "/th1") : "";
        const std::string vs_f32 = type == "bf16" ? ratio("f32:" + shape + "/" + tag) : "";
        std::printf("%-30s %4s %3s %9.4f %9.4f %7.1f %8.2f %7.2f %7.1f%% %7.1f %6.2f %6s %7s %9.4f %7.2f %7.2f\n",
                    shape.c_str(), type.c_str(), tag.c_str() + 2, r.moe_s * 1e3, r.dense_s * 1e3, r.gflops,
                    r.vs_dense, r.vs_peak, 100.0 * r.dispatch, r.gbs, r.vs_bw, speedup.c_str(), vs_f32.c_str(),
                    r.moe_cpu_s * 1e3, r.vs_dense_cpu, r.vs_peak_cpu);
    }
    for (const auto& [n_threads, gflops] : g_peak_gflops)
        std::printf("FMA peak (%d-float vectors), %d thread(s): %.1f GFLOP/s wall, %.1f GFLOP/s from CPU time\n",
                    moe::isa_vector_floats(), n_threads, gflops, g_peak_gflops_cpu[n_threads]);
    for (const auto& [n_threads, gbs] : g_bw_gbs)
        std::printf("read bandwidth (256 MiB stream), %d thread(s): %.1f GB/s\n", n_threads, gbs);
    std::printf("dense_c, peak_c: vs_dense and vs_peak from process CPU time (robust on a busy machine)\n");
    std::printf("GB/s: expert weight bytes read per second; vs_bw: / the read bandwidth (the bound at T = 1)\n");
    std::printf("bf16/32: FP32 weights' time / BF16 weights' time, same shape and threads\n");
}

void register_all() {
    for (int n_threads : kThreadCounts)
        benchmark::RegisterBenchmark(("Peak/" + thread_tag(n_threads)).c_str(),
                                     [n_threads](benchmark::State& s) { bm_fma_peak(s, n_threads); })
            ->Iterations(5)
            ->UseRealTime();
    for (int n_threads : kThreadCounts)
        benchmark::RegisterBenchmark(("Bandwidth/" + thread_tag(n_threads)).c_str(),
                                     [n_threads](benchmark::State& s) { bm_bandwidth(s, n_threads); })
            ->Iterations(2)
            ->UseRealTime();
    for (const MoeCase& c : moe::moe_bench_cases())
        for (int n_threads : kThreadCounts) {
            const std::string suffix = c.name() + "/" + thread_tag(n_threads);
            benchmark::RegisterBenchmark(("Dense/" + suffix).c_str(),
                                         [c, n_threads](benchmark::State& s) { bm_dense(s, c, n_threads); })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
            for (bool bf16 : {false, true})
                benchmark::RegisterBenchmark((std::string(bf16 ? "MoeBf16/" : "Moe/") + suffix).c_str(),
                                             [c, n_threads, bf16](benchmark::State& s) { bm_moe(s, c, n_threads, bf16); })
                    ->UseRealTime()
                    ->Unit(benchmark::kMicrosecond);
        }
}

}  // namespace

void register_lm_benchmarks();  // bench_lm.cpp

int main(int argc, char** argv) {
    register_all();
    register_lm_benchmarks();
    std::printf("kernels: %s; the rest (and the Eigen baseline) built for MOE_ARCH=%s\n", moe::isa_reason().c_str(),
                moe::built_for_arch());
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    print_summary();
    return 0;
}
