// A Hugging Face MoE checkpoint as a Model (core/models/model.h): mixtral, qwen2_moe, qwen3_moe,
// olmoe, granitemoe, deepseek_v2, deepseek_v3 and kimi_k2, computed as transformers'
// modeling_<arch>.py computes them (FP32), with every MoE layer an engine MoeLayer so every
// routing knob applies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/engine/packed_gemm.h"  // WeightType

#include "core/models/model.h"
#include "core/models/model_open.h"

namespace moe::hf {

// Progress, cancel and the memory limit (0 = the machine's available memory, /proc/meminfo).
using OpenOptions = OpenModelOptions;

// Opens a model folder (config.json, model.safetensors or shards + index, tokenizer.json).
// Throws moe::Error naming the file, tensor or config key on anything wrong.
std::unique_ptr<Model> open_hf_model(const std::string& folder, const OpenOptions& opt = {});

// A model of config_json's architecture and sizes with random weights made in memory (no files,
// ids-only tokenizer), every matrix in `type` as a checkpoint of that dtype would hold it, only
// its first n_layers_built layers (0 = embedding, final norm and head alone): the benchmarks at
// real sizes (bench/bench_hf.cpp). Throws moe::Error on a bad config or layer count.
std::unique_ptr<Model> random_hf_model(std::string_view config_json, int n_layers_built, WeightType type, uint64_t seed);

// What the folder's weights need in memory once loaded (BF16 stays BF16: CheckpointSummary's
// resident_bytes), for the memory check and the app's "needs N GB" line. Reads only the
// safetensors headers.
uint64_t hf_model_memory_bytes(const std::string& folder);

// MemAvailable of /proc/meminfo in bytes (0 when unknown).
uint64_t available_memory_bytes();

}  // namespace moe::hf
