// MoE layer speed, as ratios to baselines measured in the same run (core/engine/bench_cases.h shapes).
//
// [SECTION] Baselines   FMA peak per thread count; dense Eigen FFN with the same active FLOPs
// [SECTION] MoE layer   forward, with the dispatch stages timed apart
// [SECTION] Summary     one table at the end; main()
//
// Names are filter friendly:  Peak/th2, Dense/T256_d512_N8_K2_swiglu/th2,
// Moe/T256_d512_N8_K2_swiglu/th2. A quick subset:
//     moelab-bench --benchmark_filter='/T256_d512_N8_K2_|Peak'
// Counters per MoE shape: GFLOPs (expert FLOPs, T*K rows), vs_dense (dense time / MoE time for
// the same FLOPs), vs_peak (GFLOP/s / FMA peak at that thread count), dispatch (router + route
// + sort + gather + combine, fraction of the layer time).
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

#include "core/engine/bench_cases.h"
#include "core/engine/moe_layer.h"
#include "core/engine/routing.h"

namespace {

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
};
struct Timing {
    double wall_s = 0, cpu_s = 0;  // per run; cpu_s summed over threads
};
std::map<int, double> g_peak_gflops;         // thread count -> GFLOP/s (wall)
std::map<int, double> g_peak_gflops_cpu;     // thread count -> GFLOP per CPU-second * threads
std::map<std::string, Timing> g_dense;       // "<shape>/th<n>" -> one dense FFN

double process_cpu_s() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
std::map<std::string, Result> g_results;     // "<shape>/th<n>"
std::vector<std::string> g_result_order;

double expert_flops(const MoeCase& c, int64_t n_rows) {
    const int n_mats = c.activation == Activation::SwiGLU ? 3 : 2;
    return 2.0 * static_cast<double>(n_rows) * c.d_model * c.d_ff * n_mats;
}

// [SECTION] Baselines
typedef float V8 __attribute__((vector_size(32)));

// 12 independent FMA chains per thread: more than latency (4-5 cycles) x ports (2) needs.
Timing fma_peak_run(int n_threads, int64_t iters) {
    double sink = 0;
    const double c0 = process_cpu_s();
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(n_threads) reduction(+ : sink)
    {
        V8 acc[12];
        for (int j = 0; j < 12; ++j) acc[j] = V8{} + 0.001f * static_cast<float>(j + omp_get_thread_num());
        const V8 mul = V8{} + 0.999999f;
        const V8 add = V8{} + 1e-7f;
        // Float recurrences cannot be folded without -ffast-math, so the loop really runs.
        for (int64_t i = 0; i < iters; ++i)
            for (int j = 0; j < 12; ++j) acc[j] = acc[j] * mul + add;
        for (int j = 0; j < 12; ++j)
            for (int l = 0; l < 8; ++l) sink += acc[j][l];
    }
    benchmark::DoNotOptimize(sink);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return {s, process_cpu_s() - c0};
}

double fma_flops(int n_threads, int64_t iters) { return static_cast<double>(n_threads) * iters * 12 * 8 * 2; }

void measure_peak(int n_threads, int64_t iters, int reps) {
    double best = 0, best_cpu = 0;
    for (int rep = 0; rep < reps; ++rep) {
        const Timing t = fma_peak_run(n_threads, iters);
        best = std::max(best, fma_flops(n_threads, iters) / t.wall_s / 1e9);
        best_cpu = std::max(best_cpu, fma_flops(n_threads, iters) / t.cpu_s * n_threads / 1e9);
    }
    g_peak_gflops[n_threads] = best;
    g_peak_gflops_cpu[n_threads] = best_cpu;
}

void ensure_peak(int n_threads) {  // the Peak benchmark was filtered out: measure it quickly
    if (!g_peak_gflops.count(n_threads)) measure_peak(n_threads, 2'000'000, 5);
}

void bm_fma_peak(benchmark::State& state, int n_threads) {
    for (auto _ : state) measure_peak(n_threads, 4'000'000, 1);
    measure_peak(n_threads, 4'000'000, 3);
    state.counters["GFLOPs"] = g_peak_gflops[n_threads];
    state.counters["GFLOPs_cpu"] = g_peak_gflops_cpu[n_threads];
}

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
        moe::MoeLayerConfig cfg;
        cfg.d_model = c.d_model;
        cfg.d_ff = c.d_ff;
        cfg.n_experts = c.n_experts;
        cfg.activation = c.activation;
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
void bm_moe(benchmark::State& state, MoeCase c, int n_threads) {
    omp_set_num_threads(n_threads);
    moe::MoeLayer& layer = layer_for(c);
    const Mat x = bench_input(c.n_tokens, c.d_model);
    moe::RouterConfig rc;
    rc.scheme = moe::Scheme::TopKMixtral;
    rc.n_experts = c.n_experts;
    rc.k = c.k;
    Mat y;
    moe::RoutingTrace trace;
    layer.forward(x, rc, {}, y, trace);  // warm: packing, scratch buffers

    moe::MoeForwardProfile sum, one;
    const double c0 = process_cpu_s();
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
        layer.forward(x, rc, {}, y, trace, nullptr, &one);
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

    const std::string key = c.name() + "/" + thread_tag(n_threads);
    if (!g_dense.count(key)) {  // the Dense benchmark was filtered out: measure it here, untimed
        DenseFfn dense{&layer.weights().experts[0], c.activation, {}, {}, {}};
        const Mat xd = bench_input(c.n_tokens * c.k, c.d_model);
        dense.run(xd);
        g_dense[key] = time_dense(dense, xd, std::max(3, static_cast<int>(0.05 / std::max(per_iter, 1e-6))));
    }
    const Timing dense = g_dense[key];
    ensure_peak(n_threads);
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
    r.dispatch = (sum.router_s + sum.route_s + sum.sort_s + sum.gather_s + sum.combine_s) / sum.total_s;
    if (!g_results.count(key)) g_result_order.push_back(key);
    g_results[key] = r;

    state.counters["GFLOPs"] = r.gflops;
    state.counters["vs_dense"] = r.vs_dense;
    state.counters["vs_peak"] = r.vs_peak;
    state.counters["vs_dense_cpu"] = r.vs_dense_cpu;
    state.counters["vs_peak_cpu"] = r.vs_peak_cpu;
    state.counters["dispatch"] = r.dispatch;
    state.counters["route_us"] = (sum.router_s + sum.route_s) / iters * 1e6;
    state.counters["sort_us"] = sum.sort_s / iters * 1e6;
    state.counters["gather_us"] = sum.gather_s / iters * 1e6;
    state.counters["combine_us"] = sum.combine_s / iters * 1e6;
    state.counters["experts_us"] = sum.experts_s / iters * 1e6;
}

// [SECTION] Summary
void print_summary() {
    if (g_results.empty()) return;
    std::printf("\n%-32s %3s %10s %10s %8s %8s %8s %9s %7s %10s %8s %8s\n", "shape", "thr", "moe_ms",
                "dense_ms", "GFLOP/s", "vs_dense", "vs_peak", "dispatch", "2t/1t", "moe_cpu_ms",
                "dense_c", "peak_c");
    for (const std::string& key : g_result_order) {
        const Result& r = g_results[key];
        const size_t slash = key.rfind('/');
        const std::string shape = key.substr(0, slash), tag = key.substr(slash + 1);
        std::string speedup = "";
        if (tag == "th2") {
            auto one = g_results.find(shape + "/th1");
            if (one != g_results.end()) speedup = std::to_string(one->second.moe_s / r.moe_s).substr(0, 4);
        }
        std::printf("%-32s %3s %10.4f %10.4f %8.1f %8.2f %8.2f %8.1f%% %7s %10.4f %8.2f %8.2f\n",
                    shape.c_str(), tag.c_str() + 2, r.moe_s * 1e3, r.dense_s * 1e3, r.gflops, r.vs_dense,
                    r.vs_peak, 100.0 * r.dispatch, speedup.c_str(), r.moe_cpu_s * 1e3, r.vs_dense_cpu,
                    r.vs_peak_cpu);
    }
    for (const auto& [n_threads, gflops] : g_peak_gflops)
        std::printf("FMA peak, %d thread(s): %.1f GFLOP/s wall, %.1f GFLOP/s from CPU time\n", n_threads,
                    gflops, g_peak_gflops_cpu[n_threads]);
    std::printf("dense_c, peak_c: vs_dense and vs_peak from process CPU time (robust on a busy machine)\n");
}

void register_all() {
    for (int n_threads : kThreadCounts)
        benchmark::RegisterBenchmark(("Peak/" + thread_tag(n_threads)).c_str(),
                                     [n_threads](benchmark::State& s) { bm_fma_peak(s, n_threads); })
            ->Iterations(5)
            ->UseRealTime();
    for (const MoeCase& c : moe::moe_bench_cases())
        for (int n_threads : kThreadCounts) {
            const std::string suffix = c.name() + "/" + thread_tag(n_threads);
            benchmark::RegisterBenchmark(("Dense/" + suffix).c_str(),
                                         [c, n_threads](benchmark::State& s) { bm_dense(s, c, n_threads); })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
            benchmark::RegisterBenchmark(("Moe/" + suffix).c_str(),
                                         [c, n_threads](benchmark::State& s) { bm_moe(s, c, n_threads); })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
        }
}

}  // namespace

void register_lm_benchmarks();  // bench_lm.cpp

int main(int argc, char** argv) {
    register_all();
    register_lm_benchmarks();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    print_summary();
    return 0;
}
