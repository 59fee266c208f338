// Opening a model with progress, cancel and a memory check (the app's File > Open model): the
// same dispatch as open_model() (core/models/model.h), with options.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/models/model.h"

namespace moe {

struct OpenModelOptions {
    // Called with (tensor bytes loaded so far, total tensor bytes) as loading starts and after
    // every tensor; returning false cancels the load (moe::Error "loading was cancelled") before
    // the next tensor, so a cancel never waits for a whole shard.
    bool (*progress)(void* user, uint64_t done, uint64_t total) = nullptr;
    void* user = nullptr;
    // Refuse when the weights as held (BF16 stays BF16) would need more than this (0 = the
    // machine's available memory): the error gives the number and a hint instead of swapping.
    uint64_t memory_limit = 0;
};

std::unique_ptr<Model> open_model(const std::string& path, const OpenModelOptions& opt);

// What the model at `path` needs in memory once loaded, from the file headers only.
uint64_t model_memory_bytes(const std::string& path);

}  // namespace moe
