// A tiny byte LM saved once per test process, for the tests that need a model file on disk
// (header only: each test_*.cpp is its own executable).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/models/lm.h"

namespace moe::test {

// d_model 16, 2 layers of 2 heads, 4 experts of d_ff 16, top-2; with_shared adds one shared
// expert of d_ff 8.
inline LmConfig tiny_lm_config(int max_seq, bool with_shared) {
    LmConfig c;
    c.d_model = 16;
    c.n_layers = 2;
    c.n_heads = 2;
    c.max_seq = max_seq;
    c.moe.d_model = 16;
    c.moe.d_ff = 16;
    c.moe.n_experts = 4;
    if (with_shared) {
        c.moe.n_shared = 1;
        c.moe.d_ff_shared = 8;
    }
    c.router.n_experts = 4;
    c.router.k = 2;
    return c;
}

// Saves LmModel::init(cfg, seed) under a per-process temp folder named by tag; returns the path
// of its .safetensors. Call it from one function-local static per test file.
inline std::string save_tiny_lm(const std::string& tag, const LmConfig& cfg, uint64_t seed) {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("moelab_test_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string p = (dir / "tiny.safetensors").string();
    LmModel::init(cfg, seed).save(p);
    return p;
}

}  // namespace moe::test
