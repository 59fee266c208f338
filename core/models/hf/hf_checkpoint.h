// The tensors of a Hugging Face model folder: model.safetensors, or the shards listed in
// model.safetensors.index.json, each read through the hardened safetensors reader
// (core/io/safetensors.h). Lookups check the shape and name the shard and tensor in errors.
//
// And the tensor-name table: every architecture's tensor names as data, one row per family.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/engine/tensor.h"
#include "core/io/safetensors.h"
#include "core/models/hf/hf_config.h"

namespace moe::hf {

// [SECTION] Tensor names
// Names inside "model.layers.{i}." ({j} = expert index). Empty = the architecture has none.
struct ArchTensorNames {
    Arch arch;
    const char* router;          // (n_experts, d_model)
    const char* router_bias;     // (n_experts) DeepSeek-V3 e_score_correction_bias
    const char* expert_gate;     // (d_ff_expert, d_model) per expert
    const char* expert_up;       // (d_ff_expert, d_model)
    const char* expert_down;     // (d_model, d_ff_expert)
    const char* fused_input;     // granitemoe: (n_experts, 2 d_ff_expert, d_model), gate rows first
    const char* fused_output;    // granitemoe: (n_experts, d_model, d_ff_expert)
    const char* shared_gate;     // (d_ff_shared, d_model)
    const char* shared_up;
    const char* shared_down;     // (d_model, d_ff_shared)
    const char* shared_expert_gate;  // qwen2_moe: (1, d_model)
    const char* dense_gate;      // dense layers' MLP
    const char* dense_up;
    const char* dense_down;
};
const ArchTensorNames& tensor_names(Arch arch);
// "model.layers.3." + pattern with {j} replaced by `expert`.
std::string layer_tensor(int layer, const char* pattern, int expert = -1);

// [SECTION] Checkpoint
struct CheckpointSummary {
    std::vector<std::string> files;  // the safetensors files, in index order
    uint64_t file_bytes = 0;         // their total size
    uint64_t f32_bytes = 0;          // what their tensors take converted to float32
    std::map<std::string, int> dtype_count;  // tensors per stored dtype
};
// Reads only the headers: what the folder holds and what loading it costs. Throws moe::Error
// naming the file when neither model.safetensors nor the index is there, or an index is bad.
CheckpointSummary summarize_checkpoint(const std::string& folder);

class Checkpoint {
public:
    // Progress: called with (bytes read so far, total bytes) after each file; returning false cancels
    // (moe::Error "cancelled").
    using Progress = bool (*)(void* user, uint64_t done, uint64_t total);
    static Checkpoint open(const std::string& folder, Progress progress = nullptr, void* user = nullptr);

    bool has(const std::string& name) const { return tensors_.count(name) > 0; }
    // The tensor as a (rows, cols) matrix (a 1-D tensor of rows*cols as one row when rows == 1);
    // throws moe::Error naming the shard and tensor when it is missing or misshapen.
    Mat take(const std::string& name, int64_t rows, int64_t cols);
    Vec take_vec(const std::string& name, int64_t n);
    // A 3-D tensor (n, rows, cols) as n matrices (granitemoe's fused experts).
    std::vector<Mat> take_stack(const std::string& name, int64_t n, int64_t rows, int64_t cols);
    // Tensors nobody took (other than ones a model is known to carry unused, e.g. rotary buffers).
    std::vector<std::string> untaken() const;
    const std::string& folder() const { return folder_; }
    std::string dtype() const;  // "BF16", "F32", "F16" or "mixed"

private:
    struct Entry {
        SafeTensor tensor;
        std::string file;
    };
    const Entry& entry(const std::string& name) const;
    std::string folder_;
    std::map<std::string, Entry> tensors_;
    std::map<std::string, int> dtypes_;
};

}  // namespace moe::hf
