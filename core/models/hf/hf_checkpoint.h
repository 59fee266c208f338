// The tensors of a Hugging Face model folder: model.safetensors, or the shards listed in
// model.safetensors.index.json, each memory-mapped (core/io/file_io.h MappedFile) and checked by
// the hardened safetensors reader (core/io/safetensors.h index_safetensors) before any tensor is
// used. A tensor's bytes are converted or packed only when the model takes it, straight from the
// mapping, and its pages are released right after; the shards are unmapped when the Checkpoint
// goes. Lookups check the shape and name the shard and tensor in errors.
//
// And the tensor-name table: every architecture's tensor names as data, one row per family.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/engine/packed_gemm.h"
#include "core/engine/tensor.h"
#include "core/io/file_io.h"
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
    // What they take resident once loaded: matrices as packed panels (padding counted), BF16
    // staying BF16, F32 and F16 as float32, vectors float32. Not counted: a BF16 checkpoint's
    // routers are held in float32, and the engine adds a zero noise projection per MoE layer
    // (under 1% at real sizes). The model's resident_weight_bytes() is the real figure.
    uint64_t resident_bytes = 0;
    std::map<std::string, int> dtype_count;  // tensors per stored dtype
};
// Reads only the headers: what the folder holds and what loading it costs. Throws moe::Error
// naming the file when neither model.safetensors nor the index is there, or an index is bad.
CheckpointSummary summarize_checkpoint(const std::string& folder);

// Where a model's weights come from, by tensor name and the shape config.json gives: a folder's
// Checkpoint, or random weights made in memory (hf_model.h random_hf_model, the benchmarks).
class WeightSource {
public:
    virtual ~WeightSource() = default;
    virtual bool has(const std::string& name) const = 0;
    // (rows, cols) in float32; a 1-D tensor of cols when rows == 1.
    virtual Mat take(const std::string& name, int64_t rows, int64_t cols) = 0;
    virtual Vec take_vec(const std::string& name, int64_t n) = 0;
    // A 3-D tensor (n, rows, cols) as n matrices (granitemoe's fused experts).
    virtual std::vector<Mat> take_stack(const std::string& name, int64_t n, int64_t rows, int64_t cols) = 0;
    // (rows, cols) packed for the packed GEMM, in the source's precision.
    virtual void take_packed(const std::string& name, int64_t rows, int64_t cols, PackedMatrix& w) = 0;
    // How the model holds its experts.
    virtual WeightType weight_type() const = 0;
};

class Checkpoint final : public WeightSource {
public:
    // Progress: called with (tensor bytes taken so far, total tensor bytes of the folder) once at
    // open and after every tensor the model takes; returning false cancels (moe::Error "loading
    // was cancelled"), so a cancel waits for one tensor, never for a whole multi-GB shard.
    using Progress = bool (*)(void* user, uint64_t done, uint64_t total);
    static Checkpoint open(const std::string& folder, Progress progress = nullptr, void* user = nullptr);

    bool has(const std::string& name) const override { return tensors_.count(name) > 0; }
    // The tensor as a (rows, cols) float32 matrix (a 1-D tensor of rows*cols as one row when rows == 1);
    // throws moe::Error naming the shard and tensor when it is missing or misshapen.
    Mat take(const std::string& name, int64_t rows, int64_t cols) override;
    Vec take_vec(const std::string& name, int64_t n) override;
    std::vector<Mat> take_stack(const std::string& name, int64_t n, int64_t rows, int64_t cols) override;
    // The (rows, cols) tensor packed for the packed GEMM: a BF16 tensor as BF16 panels straight
    // from the file's bytes (no float32 copy is made), F32 and F16 as F32 panels. F16 goes to
    // F32, not BF16: every F16 value is exact in F32, while BF16 has 3 mantissa bits fewer and
    // would round the weights the model was trained with; F16 MoE checkpoints are rare, so the
    // extra memory is rarely paid.
    void take_packed(const std::string& name, int64_t rows, int64_t cols, PackedMatrix& w) override;
    // Tensors nobody took (other than ones a model is known to carry unused, e.g. rotary buffers).
    std::vector<std::string> untaken() const;
    const std::string& folder() const { return folder_; }
    std::string dtype() const;  // "BF16", "F32", "F16" or "mixed"
    // How the model should hold its experts: BF16 when every matrix is stored BF16, else F32.
    WeightType weight_type() const override { return dtype() == "BF16" ? WeightType::BF16 : WeightType::F32; }

private:
    struct Entry {
        SafeTensorView tensor;  // bytes inside maps_[map]
        size_t map = 0;
    };
    const Entry& entry(const std::string& name) const;
    const std::string& file_of(const Entry& e) const { return maps_[e.map].path(); }
    const Entry& checked(const std::string& name, const std::vector<int64_t>& want) const;
    void converted(const Entry& e, float* out) const;
    void done_with(const std::string& name);  // releases its pages, reports progress, may cancel
    std::string folder_;
    std::vector<MappedFile> maps_;  // the shards, mapped while the model is built
    std::map<std::string, Entry> tensors_;
    std::map<std::string, int> dtypes_;
    Progress progress_ = nullptr;
    void* user_ = nullptr;
    uint64_t done_ = 0, total_ = 0;
};

}  // namespace moe::hf
