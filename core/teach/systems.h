// Systems views of an MoE layer (MOE_REFERENCE.md §6), computed by the real engine:
//   - expert parallelism: N experts placed on G simulated devices; for a routing trace, which
//     (token, expert) pairs cross devices, the all-to-all bytes of one layer (dispatch + combine)
//     and the reference formula 2*T*K*d*bytes*(G-1)/G to compare with;
//   - memory vs compute: measured time of the MoE layer vs a dense FFN with the same TOTAL
//     parameters and one with the same ACTIVE parameters, as the batch grows.
//
// [SECTION] Expert placement and all-to-all traffic
// [SECTION] Memory vs compute sweep
// [SECTION] Charts
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/teach/export.h"
#include "core/engine/moe_layer.h"
#include "core/engine/routing.h"

namespace moe {

// [SECTION] Expert placement and all-to-all traffic
enum class Placement : int {
    Contiguous = 0,  // device g holds experts [g*N/G, (g+1)*N/G): how most frameworks shard
    RoundRobin,      // expert e on device e % G
};
const char* placement_name(Placement p);

struct ExpertPlacement {
    int n_devices = 1;
    std::vector<int> device_of_expert;  // (n_experts)
};

// Throws moe::Error("expert placement", ...) unless 1 <= n_devices <= n_experts.
ExpertPlacement place_experts(int n_experts, int n_devices, Placement placement);

// Tokens live on devices in equal contiguous slices of the batch: token t on device
// floor(t * G / T), so with T a multiple of G each device holds T/G tokens.
int device_of_token(int token, int n_tokens, int n_devices);

struct AllToAllTraffic {
    int n_devices = 0;
    int n_pairs = 0;                        // kept (token, expert) pairs: each is sent once and comes back once
    int n_pairs_crossing = 0;               // kept pairs whose expert lives on another device than the token
    int n_tokens_crossing = 0;              // tokens with at least one crossing pair
    std::vector<std::vector<int>> pairs;    // (n_devices) x (n_devices) kept pairs from token device to expert device
    double dispatch_bytes = 0;              // crossing pairs * d_model * bytes_per_value
    double combine_bytes = 0;               // the same rows coming back
    double total_bytes = 0;                 // dispatch + combine: one MoE layer
    double formula_bytes = 0;               // 2*T*K*d*bytes*(G-1)/G (MOE_REFERENCE §6), K = effective K
};

// Counts the traffic of one layer's trace. Dropped pairs move nothing. One row is sent per pair
// (no deduplication of a token going to two experts on the same device), as the formula assumes.
// For Expert Choice (K varies) the formula uses K = kept pairs / T. Throws moe::Error when the
// placement's expert count differs from the trace's or d_model/bytes_per_value < 1.
AllToAllTraffic all_to_all_traffic(const RoutingTrace& trace, const ExpertPlacement& placement, int d_model,
                                   int bytes_per_value);

// 2*T*K*d*bytes*(G-1)/G.
double all_to_all_formula_bytes(double n_tokens, double k, double d_model, double bytes_per_value, int n_devices);

// [SECTION] Memory vs compute sweep
struct ComputeSweepConfig {
    MoeLayerConfig layer = [] { MoeLayerConfig c; c.d_model = 128; c.d_ff = 128; c.n_experts = 8; return c; }();  // SwiGLU experts
    int k = 2;
    std::vector<int> batch_sizes = {1, 4, 16, 64, 256, 1024};
    int reps = 3;                // best of reps per point (the machine may be busy)
    uint64_t seed = 7;
};

struct ComputeSweepPoint {
    int n_tokens = 0;
    double moe_ms = 0;           // MoE layer forward on T tokens (route + dispatch + experts + combine)
    double dense_total_ms = 0;   // dense SwiGLU FFN with d_ff = N * d_ff: same TOTAL parameters
    double dense_active_ms = 0;  // dense SwiGLU FFN with d_ff = K * d_ff: same ACTIVE parameters
};

struct ComputeSweep {
    ComputeSweepConfig config;
    int64_t moe_total_params = 0;    // routed experts + router
    int64_t moe_active_params = 0;   // K experts + router
    int dense_total_d_ff = 0;
    int dense_active_d_ff = 0;
    std::vector<ComputeSweepPoint> points;  // (n_batch_sizes)
    double wall_ms = 0;                     // the whole measurement
};

// Runs the sweep on this machine (real MoeLayer, real dense FFN, random weights and inputs from
// the seed). Throws moe::Error on bad config (batch sizes < 1, reps < 1, a bad layer or K).
ComputeSweep measure_compute_sweep(const ComputeSweepConfig& cfg);

// The smallest batch size from which the MoE layer is faster per token than the dense FFN of the
// same total size; -1 if none in the sweep.
int sparsity_pays_from(const ComputeSweep& sweep);

// [SECTION] Charts
// Time per token (microseconds) of the three layers over T.
LineChart compute_sweep_chart(const ComputeSweep& sweep);
// Measured vs formula all-to-all bytes (one bar each), and pairs per device pair as a bar group.
BarChart traffic_chart(const AllToAllTraffic& traffic, const std::string& title);

}  // namespace moe
