// The 2D mixture trainer's speed: steps per second at the default size (8 experts, 4 tanh units,
// 128 points), one thread, for each balancing recipe and for the dense soft mixture.
// The app trains live at a frame's pace, so the target is >= 50 steps/s. The baseline in the
// same run is one evaluation pass (1024 points, forward only): a step (128 points, forward,
// backward, Adam) should cost about as much, whatever the machine's speed.
//     moelab-bench --benchmark_filter=Mix2d
// (main() lives in bench_moe.cpp.)
#include <benchmark/benchmark.h>
#include <omp.h>

#include "core/models/mix2d.h"

namespace {

moe::Mix2dConfig bench_config(int recipe) {
    moe::Mix2dConfig cfg;
    if (recipe < 3) return moe::apply_balance(cfg, static_cast<moe::Mix2dBalance>(recipe));
    cfg.scheme = moe::Scheme::Soft;  // every point through all 8 experts
    return cfg;
}

const char* recipe_name(int recipe) {
    static const char* names[] = {"none", "switch", "bias", "soft"};
    return names[recipe];
}

void BM_Mix2dEval(benchmark::State& state) {
    omp_set_num_threads(1);
    moe::Mix2dTrainer t(bench_config(0));
    for (int i = 0; i < 50; ++i) t.step();
    for (auto _ : state) {
        const moe::Mix2dEval ev = t.evaluate();
        benchmark::DoNotOptimize(ev.loss);
    }
    state.counters["evals_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Mix2dEval)->Name("Mix2d/eval_1024")->Unit(benchmark::kMicrosecond);

void BM_Mix2dStep(benchmark::State& state) {
    omp_set_num_threads(1);
    const int recipe = static_cast<int>(state.range(0));
    moe::Mix2dTrainer t(bench_config(recipe));
    state.SetLabel(recipe_name(recipe));
    for (auto _ : state) {
        const moe::Mix2dMetrics m = t.step();
        benchmark::DoNotOptimize(m.loss);
        // Keep the run in the regime the app sees (a few thousand steps), not an endless one.
        if (t.steps_done() >= 5000) {
            state.PauseTiming();
            t.reset();
            state.ResumeTiming();
        }
    }
    state.counters["steps_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Mix2dStep)->Name("Mix2d/step")->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

}  // namespace
