// The MoE layer on the GPU (CUDA backend) against two baselines measured in the same run:
//   - cuBLAS dense FFN GEMMs with the same active FLOPs (width K * d_ff, device-resident), the
//     ceiling for the experts' math: vs_dense = dense time / MoE time (1.0 = dispatch is free);
//   - the same layer on the CPU backend (shapes up to the app's sizes): vs_cpu = CPU / GPU time.
// Shapes: core/engine/bench_cases.h plus large ones (T 8192, d_model 4096, N 64, K 8).
// Only compiled with MOE_CUDA=ON; without a device every benchmark reports the reason and skips.
//
// [SECTION] Setup   [SECTION] Benchmarks   [SECTION] Registration
#ifdef MOE_HAVE_CUDA

#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/engine/backend.h"
#include "core/cuda/backend_cuda.h"
#include "core/engine/bench_cases.h"
#include "core/cuda/cuda_ops.h"
#include "core/error.h"
#include "core/engine/moe_layer.h"
#include "core/engine/routing.h"

namespace moe {
namespace {

// [SECTION] Setup
double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double expert_flops(const MoeCase& c) {  // active FLOPs of the routed experts
    const double mats = c.activation == Activation::SwiGLU ? 3.0 : 2.0;
    return 2.0 * mats * c.n_tokens * c.k * static_cast<double>(c.d_model) * c.d_ff;
}

// Weights whose values do not matter for timing: a cheap fill instead of init_moe_layer, which
// would take minutes (and twice the memory) at d_model 4096, N 64.
MoeLayerWeights timing_weights(const MoeCase& c) {
    MoeLayerWeights w;
    MoeLayerConfig cfg;
    cfg.d_model = c.d_model;
    cfg.d_ff = c.d_ff;
    cfg.n_experts = c.n_experts;
    w.w_router = Mat::Random(c.n_experts, c.d_model);  // (n_experts, d_model) real spread of choices
    w.experts.resize(c.n_experts);
    for (ExpertWeights& e : w.experts) {
        e.w1 = Mat::Constant(c.d_ff, c.d_model, 0.01f);
        if (c.activation == Activation::SwiGLU) e.w3 = Mat::Constant(c.d_ff, c.d_model, 0.01f);
        e.w2 = Mat::Constant(c.d_model, c.d_ff, 0.01f);
    }
    return w;
}

// One forward of the routed layer as MoeLayer::forward runs it, on the given backend: router,
// route() and the sort on the CPU, gather, grouped experts and combine on the backend.
void moe_forward(const Backend& be, const PackedExperts& packed, const MoeLayerWeights& w, const RouterConfig& rc,
                 const Mat& x, Mat& y) {
    Mat logits;  // (n_tokens, n_experts)
    be.router_logits(x, w.w_router, Vec(), logits);
    const RoutingTrace tr = route(rc, logits);
    std::vector<int> begin(rc.n_experts + 1, 0);  // (n_experts + 1)
    for (const RoutedPair& p : tr.pairs)
        if (!p.dropped) ++begin[p.expert + 1];
    for (int e = 0; e < rc.n_experts; ++e) begin[e + 1] += begin[e];
    std::vector<int> fill(begin.begin(), begin.end() - 1), row_token(begin.back());
    std::vector<float> row_gate(begin.back());
    for (const RoutedPair& p : tr.pairs) {
        if (p.dropped) continue;
        const int r = fill[p.expert]++;
        row_token[r] = p.token;
        row_gate[r] = p.gate;
    }
    Mat xs, out;  // (n_rows, d_model)
    be.gather_rows(x, row_token, xs);
    be.expert_ffn_grouped(packed, xs, begin, out);
    y.setZero(x.rows(), x.cols());
    be.combine(out, row_token, row_gate, y);
}

// Seconds per dense FFN of width K * d_ff on the device (data already there).
double dense_gpu_seconds(const MoeCase& c) {
    const int width = c.k * c.d_ff;
    const bool swiglu = c.activation == Activation::SwiGLU;
    cuda::DeviceBuffer x, w1, w3, w2, h, h3, y;
    x.zero(sizeof(float) * size_t(c.n_tokens) * c.d_model);
    w1.zero(sizeof(float) * size_t(width) * c.d_model);
    if (swiglu) w3.zero(sizeof(float) * size_t(width) * c.d_model);
    w2.zero(sizeof(float) * size_t(width) * c.d_model);
    h.zero(sizeof(float) * size_t(c.n_tokens) * width);
    if (swiglu) h3.zero(sizeof(float) * size_t(c.n_tokens) * width);
    y.zero(sizeof(float) * size_t(c.n_tokens) * c.d_model);
    auto once = [&] {
        cuda::gemm_xwT(x.f(), w1.f(), h.f(), c.n_tokens, width, c.d_model);
        if (swiglu) {
            cuda::gemm_xwT(x.f(), w3.f(), h3.f(), c.n_tokens, width, c.d_model);
            cuda::swiglu(h.f(), h3.f(), h.f(), size_t(c.n_tokens) * width);
        } else {
            cuda::gelu(h.f(), h.f(), size_t(c.n_tokens) * width);
        }
        cuda::gemm_xwT(h.f(), w2.f(), y.f(), c.n_tokens, c.d_model, width);
    };
    once();
    cuda::synchronize();
    int reps = 0;
    const double t0 = now_s();
    do {
        once();
        ++reps;
        cuda::synchronize();
    } while (now_s() - t0 < 0.2 && reps < 1000);
    return (now_s() - t0) / reps;
}

// [SECTION] Benchmarks
void bm_cuda_moe(benchmark::State& state, const MoeCase& c, bool with_cpu) {
    if (!cuda_device_usable()) {
        state.SkipWithError("no CUDA device or driver on this machine");
        return;
    }
    try {
        const MoeLayerWeights w = timing_weights(c);
        RouterConfig rc;
        rc.n_experts = c.n_experts;
        rc.k = c.k;
        const Mat x = Mat::Random(c.n_tokens, c.d_model);  // (n_tokens, d_model)
        const Backend& gpu = cuda_backend();
        const std::unique_ptr<PackedExperts> packed = gpu.pack_experts(w.experts, c.activation);
        Mat y;
        moe_forward(gpu, *packed, w, rc, x, y);  // warm-up: workspace allocation, cuBLAS heuristics
        double total = 0;
        for (auto _ : state) {
            const double t0 = now_s();
            moe_forward(gpu, *packed, w, rc, x, y);
            total += now_s() - t0;
            benchmark::DoNotOptimize(y.data());
        }
        const double moe_s = total / static_cast<double>(state.iterations());
        const double dense_s = dense_gpu_seconds(c);
        state.counters["GFLOPs"] = expert_flops(c) / moe_s / 1e9;
        state.counters["dense_GFLOPs"] = expert_flops(c) / dense_s / 1e9;
        state.counters["vs_dense"] = dense_s / moe_s;
        if (with_cpu) {
            const Backend& cpu = cpu_backend();
            const std::unique_ptr<PackedExperts> cpu_packed = cpu.pack_experts(w.experts, c.activation);
            moe_forward(cpu, *cpu_packed, w, rc, x, y);
            int reps = 0;
            const double t0 = now_s();
            do {
                moe_forward(cpu, *cpu_packed, w, rc, x, y);
                ++reps;
            } while (now_s() - t0 < 0.2 && reps < 100);
            state.counters["vs_cpu"] = (now_s() - t0) / reps / moe_s;
        }
        state.SetLabel(cuda_device_description());
    } catch (const Error& e) {
        state.SkipWithError(e.what());
    }
}

// [SECTION] Registration
struct Register {
    Register() {
        std::vector<MoeCase> cases = moe_bench_cases();
        const size_t n_grid = cases.size();
        for (Activation act : {Activation::GELU, Activation::SwiGLU})
            cases.push_back({8192, 4096, bench_d_ff(4096, act), 64, 8, act});
        for (size_t i = 0; i < cases.size(); ++i) {
            const MoeCase c = cases[i];
            const bool with_cpu = i < n_grid;  // the large shapes would take minutes per CPU pass
            benchmark::RegisterBenchmark(("CudaMoe/" + c.name()).c_str(),
                                         [c, with_cpu](benchmark::State& s) { bm_cuda_moe(s, c, with_cpu); })
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
        }
    }
};
const Register g_register;

}  // namespace
}  // namespace moe

#endif  // MOE_HAVE_CUDA
