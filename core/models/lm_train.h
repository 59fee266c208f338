// Training the tiny byte-level MoE language model (core/models/lm.h) on the CPU, by hand-written
// backward passes, AdamW, warmup + cosine schedule, checkpoints and resume.
//
// For the app's live fine-tune panel the whole API is:
//     moe::TrainConfig tc;  tc.steps = 200;  tc.lr = 1e-3f;     // knobs, see below
//     moe::Trainer trainer(model, train_text, tc);              // model is borrowed, not copied
//     while (trainer.step_index() < tc.steps) {
//         moe::TrainMetrics m = trainer.step();                 // one optimizer step, ~0.1-1 s
//         plot(m.step, m.loss, m.bpb, m.load_cv);
//     }
// step() changes the model's weights in place; run it on the thread that owns the model.
//
// [SECTION] Gradients (one container per model, same order as lm_tensor_infos)
// [SECTION] Backward building blocks (tested one by one against finite differences)
// [SECTION] Whole-model loss and gradients
// [SECTION] Optimizer and schedule
// [SECTION] Trainer
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/models/lm.h"
#include "core/engine/moe_layer.h"
#include "core/engine/routing.h"
#include "core/engine/tensor.h"

namespace moe {

// [SECTION] Gradients
// One gradient tensor per model tensor, shaped like it, in lm_tensor_infos(cfg) order.
struct LmGrads {
    std::vector<Mat> g;  // (n_tensors) each (rows, cols) of its tensor; vectors as (n, 1)
    static LmGrads zeros_like(const LmConfig& cfg);
    void set_zero();
    double squared_norm() const;
};

// [SECTION] Backward building blocks
// Every function ADDS to its output gradients (+=), so callers can accumulate.
namespace lm_grad {
// RMSNorm y = x / rms(x) * gain: x, dy, dx (n_tokens, d_model); inv_rms (n_tokens) from forward.
void rmsnorm_backward(ConstMatRef x, const Vec& gain, const Vec& inv_rms, ConstMatRef dy,
                      MatRef dx, Eigen::Ref<Vec> dgain);
// Causal attention of one sequence starting at position 0. q, k, v (n, d_model) after RoPE;
// probs (n_heads) each (n, n) from lm_ops::attention; dout (n, d_model). Adds dq, dk, dv.
void attention_backward(ConstMatRef q, ConstMatRef k, ConstMatRef v, const std::vector<Mat>& probs,
                        ConstMatRef dout, int n_heads, MatRef dq, MatRef dk, MatRef dv);
// SwiGLU FFN y = w2 (silu(w1 x) * w3 x). x, dx (n, d_model); h_* (n, d_ff) from lm_ops::swiglu.
void swiglu_backward(ConstMatRef x, const Mat& w1, const Mat& w3, const Mat& w2, ConstMatRef h_pre,
                     ConstMatRef h_lin, ConstMatRef h_act, ConstMatRef dy, MatRef dx, MatRef dw1,
                     MatRef dw3, MatRef dw2);
// The MoE layer (experts, shared experts, router through the gates, balancing losses).
// x (n_tokens, d_model) the layer input; trace and cache from MoeLayer::forward with that x;
// dy (n_tokens, d_model). aux_scale / z_scale multiply the trace's aux and z losses (0 = off).
// dw has the layer's weight shapes (w_router, experts, shared); dx (n_tokens, d_model).
void moe_backward(const MoeLayer& layer, const RouterConfig& rc, ConstMatRef x,
                  const RoutingTrace& trace, const MoeForwardCache& cache, ConstMatRef dy,
                  float aux_scale, float z_scale, MatRef dx, MoeLayerWeights& dw);
// Cross-entropy of logits = h W^T against targets, mean over rows. h (n, d_model), w (vocab,
// d_model). Returns the mean loss; adds dh (n, d_model) and dw (vocab, d_model) when not null.
double head_cross_entropy(ConstMatRef h, const Mat& w, std::span<const uint8_t> targets, Mat* dh,
                          Mat* dw);
}  // namespace lm_grad

// [SECTION] Whole-model loss and gradients
enum class Balance : int {
    Switch = 0,  // Switch load-balancing loss (alpha) + router z-loss (beta), top-K softmax router
    None,        // no balancing at all: watch experts collapse
    Bias,        // DeepSeek-V3 aux-loss-free: sigmoid router, per-expert selection bias updated each step
};
const char* balance_name(Balance b);
bool balance_from_name(const std::string& name, Balance& out);

struct LossOptions {
    float aux_alpha = 0.01f;  // Switch aux loss weight (0 = off)
    float z_beta = 0.001f;    // router z-loss weight (0 = off)
};

struct LossParts {
    double ce = 0;        // mean next-byte cross-entropy (nats)
    double aux = 0;       // mean over MoE layers of the aux loss, without alpha (1 = uniform)
    double z = 0;         // mean over MoE layers of the z loss, without beta
    double load_cv = 0;   // mean over MoE layers of the expert-load coefficient of variation
    double total = 0;     // ce + alpha * sum aux + beta * sum z: what the gradient is of
    std::vector<RoutingTrace> traces;  // (n_moe_layers) of this batch, for bias updates and display
};

// tokens: batch rows of seq + 1 bytes each (inputs = first seq, targets = last seq).
// Returns the total loss; fills grads (zeroed first) when not null, parts when not null.
double lm_loss_and_grads(const LmModel& model, const RouterConfig& rc, const LossOptions& lo,
                         std::span<const uint8_t> tokens, int batch, int seq, LmGrads* grads,
                         LossParts* parts = nullptr);

// [SECTION] Optimizer and schedule
struct TrainConfig {
    int steps = 3000;
    int batch = 16;
    int seq = 128;            // bytes per training window (<= model max_seq)
    float lr = 3e-3f;         // peak learning rate
    float min_lr_ratio = 0.1f;// cosine decays to lr * min_lr_ratio
    int warmup = 100;         // linear warmup steps
    float weight_decay = 0.1f;
    float beta1 = 0.9f, beta2 = 0.95f, adam_eps = 1e-8f;
    float grad_clip = 1.0f;   // global gradient-norm clip (0 = off)
    Balance balance = Balance::Switch;
    LossOptions loss;
    uint64_t seed = 1;        // batches are drawn from (seed, step): a resumed run sees the same data
    int threads = 1;
};
void validate(const TrainConfig& tc, const LmConfig& model, const char* where);

// Learning rate at step (0-based): linear warmup to lr, then cosine to lr * min_lr_ratio.
float lr_at(const TrainConfig& tc, int step);

// AdamW with decoupled weight decay (applied only where LmTensorInfo::decay) and bias correction.
class AdamW {
public:
    AdamW() = default;
    explicit AdamW(const LmConfig& cfg);
    // One update of every trainable tensor; t is the 1-based step count for bias correction.
    void step(std::span<float* const> params, const LmGrads& grads, float lr, const TrainConfig& tc);
    int t() const { return t_; }
    std::vector<Mat>& m() { return m_; }
    std::vector<Mat>& v() { return v_; }

private:
    std::vector<LmTensorInfo> infos_;
    std::vector<Mat> m_, v_;  // first and second moments, shaped like LmGrads::g
    int t_ = 0;
    friend class Trainer;
};

// [SECTION] Trainer
struct TrainMetrics {
    int step = 0;           // 1-based count of optimizer steps done
    double loss = 0;        // cross-entropy of this batch (nats per byte)
    double bpb = 0;         // the same in bits per byte
    double aux = 0;         // mean aux loss over MoE layers (1 = perfectly balanced)
    double z = 0;           // mean router z-loss over MoE layers
    double load_cv = 0;     // mean expert-load coefficient of variation (0 = balanced)
    double grad_norm = 0;   // global gradient norm before clipping
    double lr = 0;
    double tokens_per_s = 0;
};

class Trainer {
public:
    // model is borrowed and must outlive the trainer. train_text: the bytes to learn from
    // (at least seq + 1 bytes, else moe::Error).
    Trainer(LmModel& model, std::string train_text, TrainConfig tc);

    TrainMetrics step();
    int step_index() const { return step_; }
    const TrainConfig& config() const { return tc_; }

    // Bits per byte over consecutive windows of text (at most max_bytes of it), no gradients.
    static double evaluate_bpb(const LmModel& model, const std::string& text, int seq, int64_t max_bytes);

    // path.safetensors + path.json (the model), path.train.json (step, config), path.optim
    // (AdamW moments). Resume reproduces the uninterrupted run bit for bit (same threads).
    void save_checkpoint(const std::string& path) const;
    // Loads the optimizer state and step of a checkpoint whose model was loaded into `model`.
    void load_checkpoint(const std::string& path);

private:
    LmModel& model_;
    std::string text_;
    TrainConfig tc_;
    AdamW opt_;
    LmGrads grads_;
    int step_ = 0;
};

}  // namespace moe
