// The model interface: what the session, the CLI and lessons speak to, so that nothing outside
// core/models/ knows which kind of model runs (the built-in byte LM or a Hugging Face MoE
// checkpoint, core/models/hf/).
//
// A model takes token ids (core/text/tokenizer.h) and gives next-token logits at every position
// plus one RoutingTrace per MoE layer. Every MoE layer is an engine MoeLayer
// (core/engine/moe_layer.h), and the model's trained routing is expressed as a RouterConfig, so
// every knob of the engine (K, scheme, capacity, noise, shared experts, the aux-loss-free bias
// step) applies to every model alike.
//
// [SECTION] Forward
// [SECTION] Description
// [SECTION] Interface
// [SECTION] Opening and loss
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/engine/backend.h"
#include "core/engine/moe_layer.h"
#include "core/engine/routing.h"
#include "core/engine/tensor.h"
#include "core/teach/params.h"
#include "core/text/tokenizer.h"

namespace moe {

// [SECTION] Forward
// Everything one full-sequence forward produces that the app, the CLI and the tests read.
struct ModelForward {
    Mat logits;                         // (n_tokens, vocab) next-token logits at every position
    std::vector<RoutingTrace> traces;   // (n_moe_layers) one per MoE layer, in layer order
    std::vector<int> trace_layer;       // (n_moe_layers) transformer layer index of each trace
    std::vector<Mat> moe_inputs;        // (n_moe_layers) each (n_tokens, d_model): the normed FFN input the router saw
};

// Options of one forward: the routing knobs the app turns live. `router` replaces the trained
// routing for every MoE layer (its n_experts must equal the model's).
struct ModelRunOptions {
    RouterConfig router;
    bool keep_moe_inputs = false;  // fill ModelForward::moe_inputs
};

// [SECTION] Description
struct ModelInfo {
    std::string name;         // one line for people: "built-in byte MoE LM", "olmoe (folder name)"
    std::string source;       // the file or folder it was loaded from; empty for random weights
    int vocab = 0;
    int d_model = 0;
    int n_layers = 0;
    int max_seq = 0;          // tokens one forward takes at most
    MoeLayerConfig moe;       // the shape of every MoE layer (n_experts, n_shared, d_ff, ...)
    RouterConfig trained_router;   // the routing it was trained with, in the engine's terms
    std::vector<int> moe_layer_index;  // (n_moe_layers) transformer layer of each MoE layer
    ModelConfig counted;      // for the parameter counter (core/teach/params.h), trained K, shared on
    std::vector<std::string> routing_notes;  // how the trained routing maps onto the engine, for people
};

// [SECTION] Interface
// The KV cache of incremental decoding; each model keeps its own kind behind this.
struct ModelState {
    virtual ~ModelState() = default;
    int pos = 0;  // tokens fed so far
};

class Model {
public:
    virtual ~Model() = default;
    virtual const ModelInfo& info() const = 0;
    virtual const Tokenizer& tokenizer() const = 0;
    virtual int64_t n_params() const = 0;  // every stored weight
    // Bytes its weights take in memory as held (BF16 checkpoints stay BF16, packed panels
    // counted as allocated): what the app's "needs N GB" line and the README's RAM table mean.
    // The default is float32 once per stored weight.
    virtual uint64_t resident_weight_bytes() const { return static_cast<uint64_t>(n_params()) * sizeof(float); }

    // Where the MoE layers run; attention, norms and the head stay on the CPU.
    virtual void set_backend(const Backend& backend) = 0;

    // Full-sequence causal forward (1 <= tokens.size() <= max_seq and every id < vocab, else
    // moe::Error naming the value).
    virtual void forward(std::span<const TokenId> tokens, const ModelRunOptions& opt,
                         ModelForward& out) const = 0;

    virtual std::unique_ptr<ModelState> new_state() const = 0;
    // Appends one token; returns its next-token logits (vocab) and the traces of this token.
    virtual void step(ModelState& st, TokenId token, const ModelRunOptions& opt, Vec& logits,
                      std::vector<RoutingTrace>* traces = nullptr) const = 0;

    // The MoE layers in trace order. The session steps their selection biases through these;
    // only one thread may use the non-const form at a time, and never during a forward.
    virtual std::vector<MoeLayer*> moe_layers() = 0;
    std::vector<const MoeLayer*> moe_layers() const;
};

// [SECTION] Opening and loss
// "" or "builtin": the shipped byte LM. A folder (with config.json): a Hugging Face checkpoint.
// A file: a moelab byte LM (.safetensors + .json beside it). Throws moe::Error naming the file,
// tensor or field when it cannot.
std::unique_ptr<Model> open_model(const std::string& path);

// The built-in byte LM architecture with random weights (what runs when the shipped file is missing).
std::unique_ptr<Model> random_builtin_model(uint64_t seed);

// Mean next-token cross-entropy in nats over positions 0 .. n-2 (predicting tokens 1 .. n-1);
// NaN for fewer than 2 tokens. logits (n_tokens, vocab).
double next_token_loss(ConstMatRef logits, std::span<const TokenId> tokens);

// The checks every Model::forward makes on its input, with the same message.
void check_tokens(std::span<const TokenId> tokens, int vocab, int max_seq, const char* where);

}  // namespace moe
