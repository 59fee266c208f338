// Systems views: expert-parallel traffic and the memory-vs-compute sweep (see systems.h).
//
// [SECTION] Expert placement and all-to-all traffic
// [SECTION] Memory vs compute sweep
// [SECTION] Charts
#include "core/teach/systems.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/models/lm.h"

namespace moe {

// [SECTION] Expert placement and all-to-all traffic
const char* placement_name(Placement p) {
    switch (p) {
        case Placement::Contiguous: return "contiguous";
        case Placement::RoundRobin: return "round-robin";
    }
    return "?";
}

ExpertPlacement place_experts(int n_experts, int n_devices, Placement placement) {
    if (n_experts < 1) throw Error("expert placement", "n_experts", "is " + num(n_experts), "expected >= 1");
    if (n_devices < 1 || n_devices > n_experts)
        throw Error("expert placement", "devices", "is " + num(n_devices),
                    "expected 1.." + num(n_experts) + " (at least one expert per device)");
    ExpertPlacement out;
    out.n_devices = n_devices;
    out.device_of_expert.resize(static_cast<size_t>(n_experts));
    for (int e = 0; e < n_experts; ++e) {
        // Contiguous: floor(e * G / N) gives blocks whose sizes differ by at most one.
        out.device_of_expert[static_cast<size_t>(e)] =
            placement == Placement::Contiguous
                ? static_cast<int>(int64_t{e} * n_devices / n_experts)
                : e % n_devices;
    }
    return out;
}

int device_of_token(int token, int n_tokens, int n_devices) {
    MOE_ASSERT(n_tokens > 0 && token >= 0 && token < n_tokens && n_devices > 0, "token outside the batch");
    return static_cast<int>(int64_t{token} * n_devices / n_tokens);
}

double all_to_all_formula_bytes(double n_tokens, double k, double d_model, double bytes_per_value, int n_devices) {
    if (n_devices < 1) return 0;
    return 2.0 * n_tokens * k * d_model * bytes_per_value * (n_devices - 1) / n_devices;
}

AllToAllTraffic all_to_all_traffic(const RoutingTrace& trace, const ExpertPlacement& placement, int d_model,
                                   int bytes_per_value) {
    if (static_cast<int>(placement.device_of_expert.size()) != trace.n_experts)
        throw Error("all-to-all traffic", "placement",
                    "places " + num(static_cast<long long>(placement.device_of_expert.size())) + " experts",
                    "the trace routes to " + num(trace.n_experts));
    if (d_model < 1) throw Error("all-to-all traffic", "d_model", "is " + num(d_model), "expected >= 1");
    if (bytes_per_value < 1)
        throw Error("all-to-all traffic", "bytes_per_value", "is " + num(bytes_per_value), "expected >= 1");
    const int g = placement.n_devices;
    AllToAllTraffic out;
    out.n_devices = g;
    out.pairs.assign(static_cast<size_t>(g), std::vector<int>(static_cast<size_t>(g), 0));
    for (int t = 0; t < trace.n_tokens; ++t) {
        const int src = device_of_token(t, trace.n_tokens, g);
        bool crossed = false;
        for (const RoutedPair& p : trace.token_pairs(t)) {
            if (p.dropped) continue;
            const int dst = placement.device_of_expert[static_cast<size_t>(p.expert)];
            ++out.pairs[static_cast<size_t>(src)][static_cast<size_t>(dst)];
            ++out.n_pairs;
            if (dst != src) {
                ++out.n_pairs_crossing;
                crossed = true;
            }
        }
        if (crossed) ++out.n_tokens_crossing;
    }
    const double row_bytes = static_cast<double>(d_model) * bytes_per_value;
    out.dispatch_bytes = out.n_pairs_crossing * row_bytes;
    out.combine_bytes = out.dispatch_bytes;
    out.total_bytes = out.dispatch_bytes + out.combine_bytes;
    const double k = trace.k > 0 ? trace.k
                                 : (trace.n_tokens > 0 ? static_cast<double>(out.n_pairs) / trace.n_tokens : 0.0);
    out.formula_bytes = all_to_all_formula_bytes(trace.n_tokens, k, d_model, bytes_per_value, g);
    return out;
}

// [SECTION] Memory vs compute sweep
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

Mat random_mat(int rows, int cols, float scale, std::mt19937_64& rng) {
    std::normal_distribution<float> nd(0.0f, scale);
    Mat m(rows, cols);  // (rows, cols)
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
    return m;
}

struct DenseFfn {
    Mat w1, w3;  // (d_ff, d_model)
    Mat w2;      // (d_model, d_ff)
};

DenseFfn make_dense(int d_model, int d_ff, std::mt19937_64& rng) {
    DenseFfn f;
    f.w1 = random_mat(d_ff, d_model, 1.0f / std::sqrt(static_cast<float>(d_model)), rng);
    f.w3 = random_mat(d_ff, d_model, 1.0f / std::sqrt(static_cast<float>(d_model)), rng);
    f.w2 = random_mat(d_model, d_ff, 1.0f / std::sqrt(static_cast<float>(d_ff)), rng);
    return f;
}

}  // namespace

ComputeSweep measure_compute_sweep(const ComputeSweepConfig& cfg) {
    const char* where = "systems sweep";
    validate(cfg.layer);
    if (cfg.k < 1 || cfg.k > cfg.layer.n_experts)
        throw Error(where, "k", "is " + num(cfg.k), "expected 1.." + num(cfg.layer.n_experts));
    if (cfg.reps < 1 || cfg.reps > 100) throw Error(where, "reps", "is " + num(cfg.reps), "expected 1..100");
    if (cfg.batch_sizes.empty()) throw Error(where, "batch_sizes", "is empty", "give at least one T");
    for (int t : cfg.batch_sizes)
        if (t < 1 || t > 65536) throw Error(where, "batch_sizes", "has T = " + num(t), "expected 1..65536");

    const Clock::time_point start = Clock::now();
    ComputeSweep out;
    out.config = cfg;
    // The comparison is about the routed experts; shared experts would be the same in all three.
    MoeLayerConfig lc = cfg.layer;
    lc.n_shared = 0;
    out.config.layer = lc;
    out.moe_total_params = count_params(lc, false, cfg.k);
    out.moe_active_params = count_params(lc, true, cfg.k);
    out.dense_total_d_ff = lc.n_experts * lc.d_ff;
    out.dense_active_d_ff = cfg.k * lc.d_ff;

    const MoeLayer layer(lc, init_moe_layer(lc, cfg.seed));
    std::mt19937_64 rng(cfg.seed ^ 0x5157e45ull);
    const DenseFfn dense_total = make_dense(lc.d_model, out.dense_total_d_ff, rng);
    const DenseFfn dense_active = make_dense(lc.d_model, out.dense_active_d_ff, rng);
    RouterConfig rc;
    rc.scheme = Scheme::TopKMixtral;
    rc.n_experts = lc.n_experts;
    rc.k = cfg.k;
    rc.drop_policy = DropPolicy::Dropless;

    for (int t : cfg.batch_sizes) {
        const Mat x = random_mat(t, lc.d_model, 1.0f, rng);  // (t, d_model)
        Mat y;                                               // (t, d_model)
        RoutingTrace trace;
        ComputeSweepPoint p;
        p.n_tokens = t;
        p.moe_ms = p.dense_total_ms = p.dense_active_ms = std::numeric_limits<double>::infinity();
        for (int r = 0; r < cfg.reps; ++r) {
            Clock::time_point a = Clock::now();
            layer.forward(x, rc, {}, y, trace);
            Clock::time_point b = Clock::now();
            p.moe_ms = std::min(p.moe_ms, ms_between(a, b));
            a = Clock::now();
            lm_ops::swiglu(x, dense_total.w1, dense_total.w3, dense_total.w2, y);
            b = Clock::now();
            p.dense_total_ms = std::min(p.dense_total_ms, ms_between(a, b));
            a = Clock::now();
            lm_ops::swiglu(x, dense_active.w1, dense_active.w3, dense_active.w2, y);
            b = Clock::now();
            p.dense_active_ms = std::min(p.dense_active_ms, ms_between(a, b));
        }
        out.points.push_back(p);
    }
    out.wall_ms = ms_between(start, Clock::now());
    return out;
}

int sparsity_pays_from(const ComputeSweep& sweep) {
    for (const ComputeSweepPoint& p : sweep.points)
        if (p.moe_ms < p.dense_total_ms) return p.n_tokens;
    return -1;
}

// [SECTION] Charts
LineChart compute_sweep_chart(const ComputeSweep& sweep) {
    LineChart c;
    c.title = "Time per token vs batch size (measured on this machine)";
    c.x_label = "log2 T (tokens in the batch)";
    c.y_label = "microseconds per token (log scale)";
    c.y_log = true;  // the three lines span two orders of magnitude from T = 1 to T = 1024
    c.names = {"MoE (N=" + num(sweep.config.layer.n_experts) + ", K=" + num(sweep.config.k) + ")",
               "dense, same total params (d_ff=" + num(sweep.dense_total_d_ff) + ")",
               "dense, same active params (d_ff=" + num(sweep.dense_active_d_ff) + ")"};
    c.ys.assign(3, {});
    for (const ComputeSweepPoint& p : sweep.points) {
        c.xs.push_back(std::log2(static_cast<float>(p.n_tokens)));
        const double per = 1000.0 / p.n_tokens;  // ms per batch -> us per token
        c.ys[0].push_back(static_cast<float>(p.moe_ms * per));
        c.ys[1].push_back(static_cast<float>(p.dense_total_ms * per));
        c.ys[2].push_back(static_cast<float>(p.dense_active_ms * per));
    }
    return c;
}

BarChart traffic_chart(const AllToAllTraffic& traffic, const std::string& title) {
    BarChart c;
    c.title = title;
    c.y_label = "kept (token, expert) pairs";
    const int g = traffic.n_devices;
    for (int dst = 0; dst < g; ++dst) c.categories.push_back("to device " + num(dst));
    for (int src = 0; src < g; ++src) {
        c.names.push_back("from device " + num(src));
        std::vector<double> row;
        for (int dst = 0; dst < g; ++dst)
            row.push_back(traffic.pairs[static_cast<size_t>(src)][static_cast<size_t>(dst)]);
        c.values.push_back(std::move(row));
    }
    return c;
}

}  // namespace moe
