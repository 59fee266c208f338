// The built-in language model's speed: is a full forward "well under one frame on 2 cores"?
//
// Lm/forward/T<n>/th<t>   one full causal forward of n bytes through every layer (the app
//                          reruns this on every knob change)
// Lm/step/pos<p>/th<t>    one KV-cache step at context position p (stepping, generation)
// Lm/train/th<t>          one training step's loss and gradients (forward + backward) on the
//                          trainer's default batch (16 x 128 bytes): bytes_per_s of training
//
// Baseline, timed inside each forward benchmark: one Eigen GEMM, (n, d_model) x (d_model, F),
// with F chosen so that it does exactly the forward's FLOPs.
//
// Counters: GFLOPs (the forward's useful FLOPs: causal attention counted as half), vs_gemm
// (baseline time / forward time: 1.0 means the whole model runs as fast as a single large GEMM
// of the same work), frames (time / a 60 Hz frame, 16.7 ms: the number the app cares about).
// The model is the shipped one when present (same shapes either way: LmConfig defaults).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/models/lm.h"
#include "core/models/lm_train.h"

namespace {

using moe::LmConfig;
using moe::LmModel;
using moe::Mat;

constexpr double kFrameS = 1.0 / 60.0;
constexpr int kThreadCounts[] = {1, 2};
constexpr int kLengths[] = {32, 64, 128, 256};

const LmModel& model() {
    static const LmModel m = std::filesystem::exists(moe::builtin_model_path())
                                 ? LmModel::load(moe::builtin_model_path())
                                 : LmModel::init(LmConfig{}, 1);
    return m;
}

// The FLOPs of one forward of n bytes that does useful work (multiply-adds count 2).
double forward_flops(const LmConfig& c, int n) {
    const double d = c.d_model, t = n;
    double f = 0;
    for (int l = 0; l < c.n_layers; ++l) {
        f += 2 * t * d * 4 * d;                          // wq, wk, wv, wo
        f += 2 * 2 * (t * (t + 1) / 2) * d;              // QK^T and PV, causal
        if (moe::is_moe_layer(c, l)) {
            const double mats = c.moe.activation == moe::Activation::SwiGLU ? 3 : 2;
            f += 2 * t * d * c.moe.n_experts;            // router
            const double d_ff_shared = c.moe.d_ff_shared > 0 ? c.moe.d_ff_shared : c.moe.d_ff;
            f += 2 * t * mats * d * (c.router.k * c.moe.d_ff + c.moe.n_shared * d_ff_shared);
        } else {
            f += 2 * t * 3 * d * c.d_ff_dense;
        }
    }
    return f + 2 * t * d * c.vocab;                      // head
}

std::string text_of(int n) {
    std::string s;
    while (static_cast<int>(s.size()) < n) s += "The quick brown fox: 3 + 4 = 7. int main(void) { return 0; } Der Hund. ";
    s.resize(static_cast<size_t>(n));
    return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The baseline, timed in the same process right after the forward: best of 5 (after a warm-up)
// of one Eigen GEMM of the forward's FLOPs, at the same thread count.
double baseline_gemm_s(const LmConfig& c, int n) {
    const int cols = static_cast<int>(forward_flops(c, n) / (2.0 * n * c.d_model) + 0.5);
    const Mat a = Mat::Random(n, c.d_model), b = Mat::Random(c.d_model, cols);
    Mat y(n, cols);
    double best = 1e30;
    for (int rep = 0; rep < 6; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        y.noalias() = a * b;
        benchmark::DoNotOptimize(y.data());
        if (rep > 0) best = std::min(best, seconds_since(t0));
    }
    return best;
}

void bm_forward(benchmark::State& state, int n, int n_threads) {
    omp_set_num_threads(n_threads);
    const LmModel& m = model();
    const std::string text = text_of(n);
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    moe::LmRunOptions opt;
    opt.router = m.config().router;
    moe::LmForward out;
    m.forward(bytes, opt, out);  // packs weights, warms caches
    double forward_s = 0;
    for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        m.forward(bytes, opt, out);
        benchmark::DoNotOptimize(out.logits.data());
        forward_s += seconds_since(t0);
    }
    forward_s /= static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
    const double flops = forward_flops(m.config(), n);
    state.counters["vs_gemm"] = baseline_gemm_s(m.config(), n) / forward_s;
    state.counters["GFLOPs"] = benchmark::Counter(flops / 1e9 * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
    state.counters["frames"] = forward_s / kFrameS;
}

void bm_step(benchmark::State& state, int pos, int n_threads) {
    omp_set_num_threads(n_threads);
    const LmModel& m = model();
    moe::LmRunOptions opt;
    opt.router = m.config().router;
    const std::string text = text_of(pos + 1);
    std::unique_ptr<LmModel::State> st = m.new_state();
    moe::Vec logits;
    for (int i = 0; i < pos; ++i) m.step(*st, static_cast<uint8_t>(text[static_cast<size_t>(i)]), opt, logits);
    double step_s = 0;
    for (auto _ : state) {
        st->pos = pos;  // the same position every time: rewrite its cache row, keep the rest
        const auto t0 = std::chrono::steady_clock::now();
        m.step(*st, static_cast<uint8_t>(text.back()), opt, logits);
        benchmark::DoNotOptimize(logits.data());
        step_s += seconds_since(t0);
    }
    state.counters["frames"] = step_s / static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations())) / kFrameS;
}

// The optimizer step (AdamW over the parameters) is left out: it is the same few passes over
// the weights either way; forward + backward is where the products are.
void bm_train(benchmark::State& state, int n_threads) {
    omp_set_num_threads(n_threads);
    const LmModel& m = model();
    const moe::TrainConfig tc;
    const std::string text = text_of(tc.batch * (tc.seq + 1));
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    moe::LmGrads grads = moe::LmGrads::zeros_like(m.config());
    const moe::LossOptions lo;
    moe::lm_loss_and_grads(m, m.config().router, lo, bytes, tc.batch, tc.seq, &grads);  // warm
    for (auto _ : state) {
        const double loss = moe::lm_loss_and_grads(m, m.config().router, lo, bytes, tc.batch, tc.seq, &grads);
        benchmark::DoNotOptimize(loss);
    }
    state.counters["bytes_per_s"] = benchmark::Counter(static_cast<double>(tc.batch) * tc.seq * static_cast<double>(state.iterations()),
                                                       benchmark::Counter::kIsRate);
}

}  // namespace

// Registered from bench_moe.cpp's main(), so one binary runs every benchmark.
void register_lm_benchmarks() {
    for (int n_threads : kThreadCounts) {
        // Names built by appending: GCC 12 warns (-Wrestrict, a false positive) on "x" + string&&.
        const std::string th = std::string("/th").append(std::to_string(n_threads));
        for (int n : kLengths) {
            const std::string name = std::string("Lm/forward/T").append(std::to_string(n)).append(th);
            benchmark::RegisterBenchmark(name.c_str(),
                                         [n, n_threads](benchmark::State& s) { bm_forward(s, n, n_threads); })
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
        }
        benchmark::RegisterBenchmark(std::string("Lm/train").append(th).c_str(),
                                     [n_threads](benchmark::State& s) { bm_train(s, n_threads); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        for (int pos : {0, 255})
            benchmark::RegisterBenchmark(("Lm/step/pos" + std::to_string(pos) + th).c_str(),
                                         [pos, n_threads](benchmark::State& s) { bm_step(s, pos, n_threads); })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
    }
}
