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
#include "core/models/lm.h"
#include "core/engine/routing.h"

namespace moe {

struct SessionKnobs {
    RouterConfig router;         // K, scheme, capacity, drop policy, noise, jitter, bias step, seed
    bool shared_experts = true;  // run the model's shared experts (if it has any); sets router.shared_experts
    Device device = Device::Cpu; // asked for; the run falls back to the CPU when it cannot use it
};

struct Snapshot {
    uint64_t generation = 0;         // increases with every finished run
    std::string text;                // the full text the user gave (any bytes)
    std::vector<uint8_t> tokens;     // (n_tokens) the bytes actually routed
    size_t n_bytes_total = 0;        // text length; tokens.size() < this when it was truncated
    SessionKnobs knobs;              // what this snapshot was computed with
    LmForward forward;               // logits and one trace per MoE layer
    std::vector<std::vector<int>> cumulative_load;  // (n_moe_layers, n_experts) kept load summed over runs since reset
    std::vector<Vec> expert_bias;    // (n_moe_layers) each (n_experts): the selection bias SigmoidBias used
    double compute_ms = 0.0;         // engine time of this run
    Device device = Device::Cpu;     // where the MoE layers of this run really ran
    std::string device_note;         // non-empty: why that is not the device asked for
    std::string error;               // non-empty: the last request failed; this is the last good result
};

class Session {
public:
    // Loads the model (throws moe::Error when it cannot). An empty path means the built-in
    // model (builtin_model_path()); only that one falls back to random weights when missing.
    explicit Session(const std::string& model_path);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // The config is fixed; only the worker changes weights (the expert biases), so the UI
    // should read weights from snapshots, not from here, while the session runs.
    const LmModel& model() const;
    const std::string& model_path() const;

    // Empty when the model loaded from its file. When the built-in model file is missing the
    // session runs LmModel::init(LmConfig{}, kFallbackSeed) and this says so plainly.
    const std::string& model_note() const;
    static constexpr uint64_t kFallbackSeed = 1;

    // Knobs matching the model: its trained routing, n_experts fixed to the model's.
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
    std::unique_ptr<Impl> impl_;
};

}  // namespace moe
