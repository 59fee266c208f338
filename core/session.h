// A session: the loaded model, the text, the knobs, and the latest result of running them.
//
// The engine runs off the UI thread. The UI calls set_knobs()/set_text() (never blocking) and
// reads latest(), an immutable snapshot shared by pointer: minimal state synchronisation. A
// knob change cancels nothing visible: the old snapshot stays on screen until the new one is
// ready. Invalid knobs do not throw into the UI: the snapshot carries the error text and the
// last good result stays.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/engine/backend.h"
#include "core/engine/routing.h"
#include "core/models/model.h"
#include "core/text/tokenizer.h"

namespace moe {

struct SessionKnobs {
    RouterConfig router;         // K, scheme, capacity, drop policy, noise, jitter, bias step, seed
    bool shared_experts = true;  // run the model's shared experts (if it has any); sets router.shared_experts
    Device device = Device::Cpu; // asked for; the run falls back to the CPU when it cannot use it
};

struct Snapshot {
    uint64_t generation = 0;         // increases with every finished run
    std::string text;                // the full text the user gave (any bytes)
    std::vector<TokenId> tokens;     // (n_tokens) the token ids actually routed (bytes for the byte LM)
    std::vector<std::string> token_text;  // (n_tokens) the bytes each token stands for (Tokenizer::token_bytes)
    size_t n_bytes_total = 0;        // text length in bytes
    size_t n_tokens_total = 0;       // tokens the text encodes to; tokens.size() < this when it was truncated
    SessionKnobs knobs;              // what this snapshot was computed with
    ModelForward forward;            // logits and one trace per MoE layer
    // The real effect of the knobs: mean next-token cross-entropy on the text (nats/token; NaN
    // under 2 tokens) under these knobs, and under the model's trained routing (knobs.router =
    // the model's trained_router, shared experts on, the current selection biases).
    double loss_nats = 0.0;
    double trained_loss_nats = 0.0;
    std::vector<std::vector<int>> cumulative_load;  // (n_moe_layers, n_experts) kept load summed over runs since reset
    std::vector<Vec> expert_bias;    // (n_moe_layers) each (n_experts): the selection bias SigmoidBias used
    double compute_ms = 0.0;         // engine time of this run
    Device device = Device::Cpu;     // where the MoE layers of this run really ran
    std::string device_note;         // non-empty: why that is not the device asked for
    std::string error;               // non-empty: the last request failed; this is the last good result
};

class Session {
public:
    // Opens the model (open_model(), core/models/model.h; throws moe::Error when it cannot). An
    // empty path means the built-in model; only that one falls back to random weights when missing.
    explicit Session(const std::string& model_path);
    // Runs a model opened elsewhere (the app opens models off the UI thread). `note` as model_note().
    Session(std::unique_ptr<Model> model, std::string path, std::string note = {});
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // The config is fixed; only the worker changes weights (the expert biases), so the UI
    // should read weights from snapshots, not from here, while the session runs.
    const Model& model() const;
    const std::string& model_path() const;

    // Empty when the model loaded from its file. When the built-in model file is missing the
    // session runs random_builtin_model(kFallbackSeed) and this says so plainly.
    const std::string& model_note() const;
    static constexpr uint64_t kFallbackSeed = 1;

    // Knobs matching the model: its trained routing (ModelInfo::trained_router).
    SessionKnobs default_knobs() const;

    void set_text(std::string text);          // non-blocking
    void set_knobs(const SessionKnobs& knobs); // non-blocking
    void reset_cumulative();
    // Aux-loss-free balancing by hand (DeepSeek-V3): one update_expert_bias step of every MoE
    // layer's selection bias from the latest good routing, with knobs.router.bias_update_rate,
    // then a rerun. Done by the worker, which alone touches the weights. Non-blocking.
    void step_expert_bias();
    void reset_expert_bias();   // back to the biases the model was loaded with; non-blocking
    std::shared_ptr<const Snapshot> latest() const;  // never null after construction returns
    bool busy() const;                               // a run is queued or in progress
    void wait_idle() const;                          // for tests, the CLI and --screenshot

    struct Impl;
private:
    struct Opened;
    static Opened open(const std::string& model_path);
    explicit Session(Opened opened);
    std::unique_ptr<Impl> impl_;
};

}  // namespace moe
