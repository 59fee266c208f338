// --random-model SPEC: a demo and testing aid. The built-in byte LM's own code (LmModel::init)
// with random weights at the shapes of real MoE models (up to 384 experts, 61+ layers, K = 8),
// so every view can be looked at and tested at real sizes before real checkpoints are loaded.
// The weights mean nothing; the routing they produce is real routing by the real engine.
#pragma once

#include <cstdint>
#include <string>

#include "core/models/lm.h"

namespace moe::app {

// SPEC is "key=value,...": experts (8), layers (4), k (2, or 8 from 64 experts on), seq (context,
// 1024), seed (1), d (d_model, 32), ff (d_ff per expert, 16), shared (0). Throws moe::Error naming
// the key and the accepted range.
struct RandomModelSpec {
    LmConfig cfg;
    uint64_t seed = 1;  // of LmModel::init
};
RandomModelSpec parse_random_model(const std::string& spec);

// Writes LmModel::init(spec.cfg, spec.seed) to a file in the temp folder and returns its path (the session
// opens models by path, as it opens real ones); remove_random_model() deletes it at exit.
std::string write_random_model(const std::string& spec);
void remove_random_model(const std::string& path);

}  // namespace moe::app
