// The tiny byte-level MoE language model (the app's default model).
//
// Decoder-only: byte embedding -> n_layers x [RMSNorm -> causal multi-head attention (RoPE) ->
// residual -> RMSNorm -> FFN (MoE layer, or dense in alternate layers when moe_every = 2) ->
// residual] -> final RMSNorm -> output head (tied to the embedding by default).
// Vocabulary = the 256 byte values: any UTF-8 text, any language, no tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/moe_layer.h"
#include "core/routing.h"
#include "core/tensor.h"

namespace moe {

struct LmConfig {
    int vocab = 256;          // bytes
    int d_model = 128;
    int n_layers = 4;
    int n_heads = 4;          // head_dim = d_model / n_heads
    int max_seq = 256;        // context length in bytes
    int moe_every = 1;        // 1: every FFN is MoE; 2: layers 1, 3, ... MoE, 0, 2, ... dense
    int d_ff_dense = 512;     // dense FFN width (dense layers only)
    MoeLayerConfig moe;       // moe.d_model == d_model
    RouterConfig router;      // the routing the model was trained with; inference default
    float norm_eps = 1e-5f;
    float rope_theta = 10000.0f;
    bool tie_embeddings = true;
};
void validate(const LmConfig& cfg);             // throws moe::Error naming the field
bool is_moe_layer(const LmConfig& cfg, int layer);
int n_moe_layers(const LmConfig& cfg);

// Everything one full-sequence forward produces that the app, the CLI and the tests read.
struct LmForward {
    Mat logits;                         // (n_tokens, vocab) next-byte logits at every position
    std::vector<RoutingTrace> traces;   // (n_moe_layers) one per MoE layer, in layer order
    std::vector<int> trace_layer;       // (n_moe_layers) transformer layer index of each trace
    std::vector<Mat> moe_inputs;        // (n_moe_layers) each (n_tokens, d_model): the normed FFN input the router saw
};

// Options of one forward: the routing knobs the app turns live. `router` replaces the trained
// routing for every MoE layer (its n_experts must equal the model's).
struct LmRunOptions {
    RouterConfig router;
    bool keep_moe_inputs = false;  // fill LmForward::moe_inputs
};

class LmModel {
public:
    static LmModel init(const LmConfig& cfg, uint64_t seed);   // random weights
    // Loads `path` (.safetensors; the JSON config is stored beside it as the same path with
    // extension .json). Throws moe::Error naming the file, tensor or field on anything wrong.
    static LmModel load(const std::string& path);
    void save(const std::string& path) const;                  // writes .safetensors + .json atomically

    LmModel(LmModel&&) noexcept;
    LmModel& operator=(LmModel&&) noexcept;
    ~LmModel();

    const LmConfig& config() const;
    int64_t n_params() const;

    // Full-sequence causal forward over bytes (n_tokens <= max_seq, else moe::Error).
    void forward(std::span<const uint8_t> bytes, const LmRunOptions& opt, LmForward& out) const;

    // Incremental decoding with a KV cache, for stepping and generation.
    struct State;
    std::unique_ptr<State> new_state() const;
    // Appends one byte; returns its next-byte logits (vocab) and the traces of this token.
    void step(State& st, uint8_t byte, const LmRunOptions& opt, Vec& logits,
              std::vector<RoutingTrace>* traces = nullptr) const;

    struct Impl;              // weights and layers; the trainer (core/lm_train.h) reaches in
    Impl& impl();
    const Impl& impl() const;

private:
    explicit LmModel(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The n most likely next bytes from one row of logits, as (byte, probability), most likely first.
std::vector<std::pair<int, float>> top_next_bytes(const Eigen::Ref<const RowVec>& logits, int n);

// Where the shipped model lives (assets/), and whether it is there.
std::string builtin_model_path();

}  // namespace moe
