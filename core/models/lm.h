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

#include "core/engine/backend.h"
#include "core/engine/moe_layer.h"
#include "core/engine/routing.h"
#include "core/engine/tensor.h"
#include "core/models/model.h"

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

// One forward's results and options are the model interface's (core/models/model.h): the byte
// LM is one implementation of it (core/models/byte_lm_model.cpp).
using LmForward = ModelForward;
using LmRunOptions = ModelRunOptions;

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

    // Where the MoE layers run (core/engine/backend.h); attention, norms and the head stay on the CPU.
    // The model is tiny, so those are a small share of the work (see bench/bench_lm.cpp).
    void set_backend(const Backend& backend);

    // Full-sequence causal forward over bytes (n_tokens <= max_seq, else moe::Error).
    void forward(std::span<const uint8_t> bytes, const LmRunOptions& opt, LmForward& out) const;

    // Incremental decoding with a KV cache, for stepping and generation.
    struct State;
    std::unique_ptr<State> new_state() const;
    // Appends one byte; returns its next-byte logits (vocab) and the traces of this token.
    void step(State& st, uint8_t byte, const LmRunOptions& opt, Vec& logits,
              std::vector<RoutingTrace>* traces = nullptr) const;

    struct Impl;              // weights and layers; the trainer (core/models/lm_train.h) reaches in
    Impl& impl();
    const Impl& impl() const;

private:
    explicit LmModel(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The KV cache of incremental decoding (complete here so callers can own it by unique_ptr).
struct LmModel::State {
    int pos = 0;                        // bytes fed so far; step() throws once pos == max_seq
    std::vector<Mat> k_cache, v_cache;  // (n_layers) each (max_seq, d_model), rows < pos filled
};

// [SECTION] Internals, for the trainer (core/models/lm_train.h) and the tests
// The weights of one transformer block. The FFN is either `moe` (MoE layer) or the dense SwiGLU
// w1/w3/w2, as is_moe_layer() says.
struct LmBlock {
    Vec attn_norm;                  // (d_model) RMSNorm gain before attention
    Mat wq, wk, wv, wo;             // (d_model, d_model) each
    Vec ffn_norm;                   // (d_model) RMSNorm gain before the FFN
    std::unique_ptr<MoeLayer> moe;  // MoE FFN, or null for a dense layer
    Mat w1, w3;                     // (d_ff_dense, d_model) dense SwiGLU; empty in MoE layers
    Mat w2;                         // (d_model, d_ff_dense)
};

struct LmPackedWeights;  // lm.cpp: the projections and the head in core/engine/packed_gemm.h's layout

struct LmModel::Impl {
    LmConfig cfg;
    Mat tok_emb;                    // (vocab, d_model) byte embedding; also the head when tied
    Mat head;                       // (vocab, d_model) output head; empty when tie_embeddings
    Vec final_norm;                 // (d_model)
    std::vector<LmBlock> blocks;    // (n_layers)
    Mat rope_cos, rope_sin;         // (max_seq, head_dim / 2) rotary tables
    // Packed copies for inference, built by the first forward()/step() after a weight change;
    // lm_tensor_data() drops them (as MoeLayer::mutable_weights() drops the experts' packs).
    mutable std::shared_ptr<const LmPackedWeights> packed;
    int64_t n_params = 0;           // from cfg, once (the counters ask every frame; 49k tensors at 256x64)
    const Mat& head_weight() const { return cfg.tie_embeddings ? tok_emb : head; }
};

// The forward building blocks, shared by inference (lm.cpp) and training (lm_train.cpp).
namespace lm_ops {
// y = x / rms(x) * gain, per row. x, y (n_tokens, d_model); inv_rms (n_tokens) if not null.
void rmsnorm(ConstMatRef x, const Vec& gain, float eps, Mat& y, Vec* inv_rms = nullptr);
// Rotates each head's (i, i + head_dim/2) pairs of row r by angle pos0 + r (RoPE, "rotate half").
// sign = -1 applies the inverse rotation (the backward of RoPE). x (n_tokens, d_model).
void rope(MatRef x, int n_heads, int pos0, const Mat& cos, const Mat& sin, float sign = 1.0f);
// Causal attention of one sequence, all heads: q (n_q, d_model) at positions
// pos0 .. pos0 + n_q - 1, k and v (pos0 + n_q, d_model) from position 0. out (n_q, d_model).
// probs, if not null, gets n_heads matrices (n_q, pos0 + n_q) of attention weights.
void attention(ConstMatRef q, ConstMatRef k, ConstMatRef v, int n_heads, int pos0, MatRef out,
               std::vector<Mat>* probs = nullptr);
// Dense SwiGLU FFN y = w2 (silu(w1 x) * w3 x); x (n_tokens, d_model).
void swiglu(ConstMatRef x, const Mat& w1, const Mat& w3, const Mat& w2, Mat& y,
            Mat* h_pre = nullptr, Mat* h_lin = nullptr, Mat* h_act = nullptr);
}  // namespace lm_ops

// The names and shapes of every tensor of a model with this config, in file order (the
// safetensors names): "tok_emb", "blocks.0.wq", "blocks.1.moe.experts.3.w1", ...
struct LmTensorInfo {
    std::string name;
    int rows = 0, cols = 0;  // a vector is (n, 1)
    bool decay = true;       // AdamW weight decay applies (not to norms, biases, routing state)
    bool trainable = true;   // false for routing state (expert_bias) and the noise projection
};
std::vector<LmTensorInfo> lm_tensor_infos(const LmConfig& cfg);
// Pointers to the data of each tensor of lm_tensor_infos(), in the same order. Taking them from
// a non-const model invalidates the MoE layers' packed weights (they are rebuilt on next forward).
std::vector<float*> lm_tensor_data(LmModel::Impl& m);

LmConfig lm_config_from_json(const std::string& json_text, const std::string& where);
std::string lm_config_to_json(const LmConfig& cfg);

// The n most likely next bytes from one row of logits, as (byte, probability), most likely first.
std::vector<std::pair<int, float>> top_next_bytes(const Eigen::Ref<const RowVec>& logits, int n);

// Where the shipped model lives (assets/), and whether it is there.
std::string builtin_model_path();

}  // namespace moe
