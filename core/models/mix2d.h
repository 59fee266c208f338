// The 2D mixture of local experts (Jacobs et al. 1991, in a plane), trained live.
//
// A toy regression task the app can draw: points p = (x, y) in [-1,1]^2 fall into one of six
// Voronoi cells of fixed centres, and each cell has its own target function (a plane, a sine,
// a constant, a saddle...). N small MLP experts (2 -> hidden -> 1, tanh) are mixed by a linear
// router (x, y, 1) -> N logits, routed through moe::route(), so the plane shows the very
// router code the language model uses:  y_hat = sum_{i in S} g_i E_i(p).
//
// A linear router can only draw straight borders (its regions are convex polygons), which is
// exactly what a Voronoi partition is: one expert per cell is learnable. Whether it is learned
// is the lesson: without balancing the router collapses onto a few experts (high load CV, most
// experts idle, a worse fit); the Switch loss or the aux-loss-free bias spread the load.
//
// [SECTION] Task
// [SECTION] Configuration
// [SECTION] Metrics and region maps
// [SECTION] Trainer
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine/routing.h"
#include "core/engine/tensor.h"

namespace moe {

// [SECTION] Task
inline constexpr int kMix2dRegions = 6;

// Which Voronoi cell (0..kMix2dRegions-1) the point lies in, and the target there.
int mix2d_region(float x, float y);
float mix2d_target(float x, float y);
const char* mix2d_region_label(int region);  // "plane", "sine", ... for the app's legend

// [SECTION] Configuration
// The balancing recipes the lessons compare; apply_balance() sets the knobs each one needs.
enum class Mix2dBalance : int {
    None = 0,  // Switch top-1, no balancing: the router collapses
    Switch,    // Switch top-1 + Switch load-balancing loss (alpha)
    Bias,      // DeepSeek-V3: SigmoidBias top-K with the aux-loss-free bias update, no aux loss
};
const char* mix2d_balance_name(Mix2dBalance b);  // "none" | "switch" | "bias"
std::optional<Mix2dBalance> mix2d_balance_from_name(std::string_view name);

struct Mix2dConfig {
    // Structure (changing these needs reset()).
    int n_experts = 8;
    int hidden = 4;               // tanh units per expert: small, so one expert cannot fit all six cells
    int batch = 128;              // points per step, drawn fresh from the seed every step
    int n_eval = 1024;            // fixed evaluation points (drawn once from the seed)
    float lr = 0.05f;             // Adam (a toy: a high rate keeps a lesson within ~1000 steps)
    float router_init_std = 0.1f; // std of the router weights at init
    uint64_t seed = 3;            // the lessons' run; the outcome holds for most seeds (see tests)

    // Live toggles (take effect at the next step).
    Scheme scheme = Scheme::Switch;
    int k = 1;                    // ignored by Switch (1), GShardTop2 (2), Soft (N)
    bool switch_loss = false;     // add alpha * L_aux (MOE_REFERENCE §4)
    float alpha = 0.1f;           // Switch uses 0.01 on huge batches; 128 points need a firmer push
    bool z_loss = false;          // add beta * L_z
    float beta = 0.001f;
    bool expert_bias = false;     // aux-loss-free bias update after each step (needs SigmoidBias)
    float bias_rate = 0.005f;     // gamma of the bias update
    float jitter_eps = 0.0f;      // router input multiplied by U(1-eps, 1+eps) while training
};

// Throws moe::Error("Mix2dConfig", knob, value, expected) for every bad knob.
void validate(const Mix2dConfig& cfg);

// Sets scheme, k and the balancing toggles for one recipe; keeps everything else.
Mix2dConfig apply_balance(Mix2dConfig cfg, Mix2dBalance balance);

// The schemes a mix2d router can use: those whose gates have a gradient and which route a
// point independently of a grid's shape (not Hash, NoisyTopK, ExpertChoice, Base).
bool mix2d_supports(Scheme s);

// [SECTION] Metrics and region maps
struct Mix2dMetrics {
    int step = 0;                 // steps done after this one
    float loss = 0;               // mean squared error on this batch
    float aux_loss = 0;           // Switch L_aux of this batch WITHOUT alpha (1 = uniform)
    float z_loss = 0;             // router z-loss of this batch WITHOUT beta
    float total_loss = 0;         // what was minimised: loss + alpha*aux (if on) + beta*z (if on)
    std::vector<int> load;        // (n_experts) kept (point, expert) pairs in this batch
    float load_cv = 0;            // std / mean of load
    int n_idle = 0;               // experts with load < 10% of the mean load
};

struct Mix2dEval {
    float loss = 0;               // mean squared error on the fixed evaluation points
    std::vector<int> load;        // (n_experts) kept pairs over the evaluation points
    float load_cv = 0;
    int n_idle = 0;               // experts with load < 10% of the mean load
};

// A w x h picture of the plane. Cell (row r, col c) has its centre at
// x = -1 + (c + 0.5) * 2 / w,  y = 1 - (r + 0.5) * 2 / h  (row 0 at the top, as an image).
struct Mix2dRegions {
    int width = 0, height = 0;
    std::vector<int> expert;       // (height * width) row-major: the cell's top-1 expert (largest gate)
    std::vector<float> gate;       // (height * width) that expert's gate weight
    std::vector<float> prediction; // (height * width) the model's output y_hat
    std::vector<float> target;     // (height * width) the true function there
};

// [SECTION] Trainer
class Mix2dTrainer {
public:
    explicit Mix2dTrainer(const Mix2dConfig& cfg = {});  // validates, initialises from cfg.seed

    // One Adam step on a fresh minibatch. Deterministic: same config + seed = same run.
    Mix2dMetrics step();
    // Re-initialise weights, optimiser, bias and data stream from the config's seed.
    void reset();
    void reset(const Mix2dConfig& cfg);  // new config (validated first; on error nothing changes)

    // Loss and load on the fixed evaluation points (no jitter, no parameter change).
    Mix2dEval evaluate() const;
    // The plane as the app colours it: top-1 expert, its gate, prediction and target per cell.
    // The grid is routed as one batch, dropless, without jitter: for Sinkhorn (balanced over
    // the grid) and GShardTop2 (random second expert) the picture depends on that batch.
    Mix2dRegions sample_regions(int width, int height) const;

    // Live toggles: each validates (moe::Error, nothing changes on error) and applies from the
    // next step on, without resetting the weights, so a collapse can be watched being undone.
    void set_switch_loss(bool on, float alpha);
    void set_z_loss(bool on, float beta);
    void set_expert_bias(bool on, float rate);
    void set_jitter(float eps);
    void set_k(int k);
    void set_scheme(Scheme scheme);
    void set_balance(Mix2dBalance balance);
    void set_lr(float lr);

    const Mix2dConfig& config() const { return cfg_; }
    int steps_done() const { return step_; }
    const Vec& bias() const { return b_select_; }  // (n_experts) the aux-loss-free selection bias

    // The router's weights, for the app to draw its borders.
    const Mat& router_weight() const { return w_router_; }  // (n_experts, 2)
    const Vec& router_bias() const { return b_router_; }    // (n_experts)
    // The experts' weights, for the app's per-pixel picture of the plane (shaders/mix2d.frag).
    const std::vector<Mat>& expert_w1() const { return w1_; }  // (n_experts) x (hidden, 2)
    const std::vector<Vec>& expert_b1() const { return b1_; }  // (n_experts) x (hidden)
    const Mat& expert_w2() const { return w2_; }               // (n_experts, hidden)
    const Vec& expert_b2() const { return b2_; }               // (n_experts)

private:
    RouterConfig router_config(uint64_t step_seed) const;
    // Forward on points (n, 2); fills y_hat (n), the trace, and per kept pair the expert's
    // hidden activations (n_pairs_kept, hidden) and output when caches are given.
    void forward(ConstMatRef points, ConstMatRef router_in, const RouterConfig& rc,
                 Vec& y_hat, RoutingTrace& trace, Mat* hidden_act, Vec* expert_out) const;
    // Loss on one batch and, into the g_* members, its gradient w.r.t. every weight. Returns the
    // minimised total (mse + alpha*aux + beta*z where on); mse and the trace come back too.
    float loss_and_grad(ConstMatRef points, ConstMatRef router_in, const Vec& target, const RouterConfig& rc,
                        RoutingTrace& trace, float& mse);
    void adam_update();
    friend struct Mix2dTestPeer;  // tests/test_mix2d.cpp: finite-difference gradient check
    void set_checked(const Mix2dConfig& next);

    Mix2dConfig cfg_;
    int step_ = 0;
    std::mt19937_64 rng_;

    // Weights, row = output unit (as everywhere in moelab: y = x W^T).
    Mat w_router_;             // (n_experts, 2)
    Vec b_router_;             // (n_experts)
    std::vector<Mat> w1_;      // (n_experts) x (hidden, 2)
    std::vector<Vec> b1_;      // (n_experts) x (hidden)
    Mat w2_;                   // (n_experts, hidden) each expert's output row
    Vec b2_;                   // (n_experts)
    Vec b_select_;             // (n_experts) aux-loss-free selection bias (not a gradient parameter)

    // Gradients and Adam moments, same shapes as the weights above.
    Mat g_w_router_, m_w_router_, v_w_router_;  // (n_experts, 2)
    Vec g_b_router_, m_b_router_, v_b_router_;  // (n_experts)
    std::vector<Mat> g_w1_, m_w1_, v_w1_;       // (n_experts) x (hidden, 2)
    std::vector<Vec> g_b1_, m_b1_, v_b1_;       // (n_experts) x (hidden)
    Mat g_w2_, m_w2_, v_w2_;                    // (n_experts, hidden)
    Vec g_b2_, m_b2_, v_b2_;                    // (n_experts)

    Mat eval_points_;          // (n_eval, 2)
    Vec eval_targets_;         // (n_eval)
};

}  // namespace moe
