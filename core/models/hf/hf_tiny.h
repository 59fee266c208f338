// Tiny random checkpoints in each architecture's exact Hugging Face layout: config.json with the
// real keys, the tensors under their Hub names and shapes, F32 or BF16, one file or shards with
// model.safetensors.index.json, and a byte-level tokenizer.json. Used by the tests and by
// `moelab-cli hf-tiny` to try the loader without a download.
//
// The names here are written out per architecture on purpose, apart from the loader's table
// (hf_checkpoint.cpp), so a wrong name in either one fails the tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe::hf {

struct TinySpec {
    std::string model_type = "mixtral";  // any of hf_model_types()
    std::string dtype = "F32";           // F32 or BF16
    int n_shards = 1;                    // 1: model.safetensors; 2+: shards + index
    uint64_t seed = 1;
    bool mla_q_lora = true;              // deepseek: q through q_a/q_b (false: q_proj, q_lora_rank null)
    bool yarn = false;                   // deepseek: a YaRN rope_scaling block
};

// Writes the folder (created if needed). Throws moe::Error on a bad spec or a failed write.
void write_tiny_checkpoint(const std::string& folder, const TinySpec& spec);

// Every model_type the generator writes.
const std::vector<std::string>& tiny_model_types();

}  // namespace moe::hf
