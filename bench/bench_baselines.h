// The baselines the benchmarks' ratios are taken against, measured in the same run: the FMA
// peak and the read bandwidth per thread count, at the packed kernels' vector width
// (core/engine/packed_gemm.h: fma_chains, read_stream). Shared by bench_moe.cpp (which
// registers Peak/ and Bandwidth/) and bench_hf.cpp; a benchmark whose baseline was filtered out
// measures it quickly with ensure_peak / ensure_bandwidth.
//
// Wall time and process CPU time both: on a shared, busy machine threads wait for a core, so
// "GFLOP per CPU-second * threads" says what n dedicated cores would do.
#pragma once

#include <benchmark/benchmark.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>

#include "core/engine/packed_gemm.h"

namespace moe::bench {

struct Timing {
    double wall_s = 0, cpu_s = 0;  // per run; cpu_s summed over threads
};
inline std::map<int, double> g_peak_gflops;      // thread count -> GFLOP/s (wall)
inline std::map<int, double> g_peak_gflops_cpu;  // thread count -> GFLOP per CPU-second * threads
inline std::map<int, double> g_bw_gbs;           // thread count -> GB/s

inline double process_cpu_s() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Independent FMA chains per thread, at the packed kernels' vector width (core/engine/packed_gemm.h).
inline Timing fma_peak_run(int n_threads, int64_t iters, double* flops) {
    double sink = 0, done = 0;
    const double c0 = process_cpu_s();
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(n_threads) reduction(+ : sink, done)
    sink += moe::fma_chains(iters, &done);
    benchmark::DoNotOptimize(sink);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    *flops = done;
    return {s, process_cpu_s() - c0};
}

inline void measure_peak(int n_threads, int64_t iters, int reps) {
    double best = 0, best_cpu = 0;
    for (int rep = 0; rep < reps; ++rep) {
        double flops = 0;
        const Timing t = fma_peak_run(n_threads, iters, &flops);
        best = std::max(best, flops / t.wall_s / 1e9);
        best_cpu = std::max(best_cpu, flops / t.cpu_s * n_threads / 1e9);
    }
    g_peak_gflops[n_threads] = best;
    g_peak_gflops_cpu[n_threads] = best_cpu;
}

// Read bandwidth: a read-only stream over 256 MiB (8x this machine's L3), split between the
// threads, best of a few passes. The buffer is first touched by the threads that read it.
inline void measure_bandwidth(int n_threads, int reps) {
    static moe::AlignedFloats buf;
    constexpr size_t kFloats = size_t{64} << 20;
    if (buf.empty()) {
        buf.resize(kFloats);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < static_cast<int64_t>(kFloats); ++i) buf[static_cast<size_t>(i)] = 1e-3f * static_cast<float>(i & 1023);
    }
    double best = 0, sink = 0;
    for (int rep = 0; rep < reps; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(n_threads) reduction(+ : sink)
        {
            const size_t per = kFloats / static_cast<size_t>(omp_get_num_threads());
            sink += moe::read_stream(buf.data() + per * static_cast<size_t>(omp_get_thread_num()), per);
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, static_cast<double>(kFloats * sizeof(float)) / s / 1e9);
    }
    benchmark::DoNotOptimize(sink);
    g_bw_gbs[n_threads] = best;
}

inline void ensure_bandwidth(int n_threads) {
    if (!g_bw_gbs.count(n_threads)) measure_bandwidth(n_threads, 3);
}

inline void bm_bandwidth(benchmark::State& state, int n_threads) {
    for (auto _ : state) measure_bandwidth(n_threads, 1);
    measure_bandwidth(n_threads, 3);
    state.counters["GBs"] = g_bw_gbs[n_threads];
}

inline void ensure_peak(int n_threads) {  // the Peak benchmark was filtered out: measure it quickly
    if (!g_peak_gflops.count(n_threads)) measure_peak(n_threads, 2'000'000, 5);
}

inline void bm_fma_peak(benchmark::State& state, int n_threads) {
    for (auto _ : state) measure_peak(n_threads, 2'000'000, 1);
    measure_peak(n_threads, 2'000'000, 3);
    state.counters["GFLOPs"] = g_peak_gflops[n_threads];
    state.counters["GFLOPs_cpu"] = g_peak_gflops_cpu[n_threads];
}

}  // namespace moe::bench
