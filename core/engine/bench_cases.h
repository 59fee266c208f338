// The shapes the MoE benchmark measures (bench/bench_moe.cpp) and the backend-op tests check
// (tests/test_moe_layer.cpp, and every backend against the CPU one): one table, so a fast path
// is never timed on a shape it was not tested on.
#pragma once

#include <string>
#include <vector>

#include "core/engine/moe_layer.h"

namespace moe {

struct MoeCase {
    int n_tokens = 0;
    int d_model = 0;
    int d_ff = 0;  // per expert
    int n_experts = 0;
    int k = 0;
    Activation activation = Activation::SwiGLU;

    // The layer of this case: GELU experts with biases (GPT style), SwiGLU without (LLaMA
    // style). Router bias and shared experts are the caller's.
    MoeLayerConfig layer_config() const {
        MoeLayerConfig cfg;
        cfg.d_model = d_model;
        cfg.d_ff = d_ff;
        cfg.n_experts = n_experts;
        cfg.activation = activation;
        cfg.expert_biases = activation == Activation::GELU;
        return cfg;
    }

    // "T256_d512_N8_K2_swiglu": filter-friendly for --benchmark_filter and gtest traces.
    // Appends, not "T" + std::to_string(...): GCC 12 gives a false -Wrestrict on the latter.
    std::string name() const {
        std::string s = "T";
        s += std::to_string(n_tokens);
        s += "_d";
        s += std::to_string(d_model);
        s += "_N";
        s += std::to_string(n_experts);
        s += "_K";
        s += std::to_string(k);
        s += "_";
        s += activation_name(activation);
        return s;
    }
};

// d_ff = 4 d_model for GELU; SwiGLU has three matrices, so 8/3 d_model (same parameters),
// rounded to a multiple of 64 as LLaMA-style configs do.
inline int bench_d_ff(int d_model, Activation act) {
    if (act == Activation::GELU) return 4 * d_model;
    return (8 * d_model / 3 + 32) / 64 * 64;
}

// The full grid: T x d_model x N x K x activation.
inline std::vector<MoeCase> moe_bench_cases() {
    std::vector<MoeCase> cases;
    for (Activation act : {Activation::GELU, Activation::SwiGLU})
        for (int d_model : {128, 512, 1024})
            for (int n_experts : {8, 32})
                for (int k : {1, 2, 4})
                    for (int n_tokens : {1, 8, 64, 256, 1024})
                        cases.push_back({n_tokens, d_model, bench_d_ff(d_model, act), n_experts, k, act});
    return cases;
}

// The part of the grid small enough for a unit test under sanitizers.
inline std::vector<MoeCase> moe_test_cases() {
    std::vector<MoeCase> cases;
    for (const MoeCase& c : moe_bench_cases())
        if (c.d_model == 128 && c.n_tokens <= 64 && c.n_experts == 8) cases.push_back(c);
    return cases;
}

}  // namespace moe
