// Router config + logits -> validate + route for every scheme (ids out of range included), then
// the trace's invariants and the backward passes a trainer would run on it.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/engine/routing.h"
#include "fuzz/fuzz_util.h"

namespace {

// Knob values: mostly ordinary, sometimes the extremes a typo or a hostile file gives.
float knob(FuzzedDataProvider& in, float lo, float hi) {
    switch (in.ConsumeIntegralInRange(0, 7)) {
        case 0: return std::numeric_limits<float>::infinity();
        case 1: return std::numeric_limits<float>::quiet_NaN();
        case 2: return in.ConsumeFloatingPoint<float>();  // any finite float, 3e38 included
        case 3: return -in.ConsumeFloatingPointInRange<float>(lo, hi);
        default: return in.ConsumeFloatingPointInRange<float>(lo, hi);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    moe::RouterConfig c;
    c.scheme = static_cast<moe::Scheme>(in.ConsumeIntegralInRange<int>(-1, moe::kNumSchemes));
    c.n_experts = in.ConsumeIntegralInRange(-1, 64);
    c.k = in.ConsumeIntegralInRange(-1, 66);
    c.capacity_factor = knob(in, 0.0f, 4.0f);
    c.drop_policy = static_cast<moe::DropPolicy>(in.ConsumeIntegralInRange(-1, 3));
    c.renormalize = in.ConsumeBool();
    c.add_noise = in.ConsumeBool();
    c.noise_scale = knob(in, 0.0f, 4.0f);
    c.jitter_eps = knob(in, 0.0f, 1.0f);
    c.n_groups = in.ConsumeIntegralInRange(-1, 16);
    c.topk_groups = in.ConsumeIntegralInRange(-1, 16);
    c.routed_scaling = knob(in, 0.0f, 4.0f);
    c.sinkhorn_iters = in.ConsumeIntegralInRange(-1, 40);
    c.bias_update_rate = knob(in, 0.0f, 0.1f);
    c.seed = in.ConsumeIntegral<uint64_t>();
    // BASE is O(T (T N + N^3)): T <= 96 keeps one input well under the timeout.
    const int n_tokens = in.ConsumeIntegralInRange(0, 96);
    const int cols = c.n_experts >= 1 && in.ConsumeIntegralInRange(0, 15) != 0 ? c.n_experts : in.ConsumeIntegralInRange(0, 65);
    const bool wild = in.ConsumeIntegralInRange(0, 15) == 0;  // any float, NaN and inf included
    moe::Mat logits(n_tokens, cols);  // (n_tokens, cols)
    moe::Mat noise(n_tokens, cols);   // (n_tokens, cols)
    for (int t = 0; t < n_tokens; ++t)
        for (int e = 0; e < cols; ++e) {
            logits(t, e) = wild ? knob(in, -30.0f, 30.0f) : in.ConsumeFloatingPointInRange<float>(-30.0f, 30.0f);
            noise(t, e) = in.ConsumeFloatingPointInRange<float>(-5.0f, 5.0f);
        }
    std::vector<int32_t> ids(static_cast<size_t>(in.ConsumeBool() ? n_tokens : in.ConsumeIntegralInRange(0, 8)));
    for (int32_t& id : ids) id = in.ConsumeIntegral<int32_t>();
    moe::Vec bias(cols > 0 ? cols : 0);  // (cols)
    for (int e = 0; e < bias.size(); ++e) bias[e] = in.ConsumeFloatingPointInRange<float>(-1.0f, 1.0f);
    moe::RouteExtras ex;
    if (in.ConsumeBool()) ex.noise_logits = &noise;
    if (in.ConsumeBool()) ex.expert_bias = &bias;
    ex.token_ids = ids;
    ex.seq_len = in.ConsumeIntegralInRange(-1, 32);

    return moe::fuzz::run_one([&] {
        moe::validate(c, n_tokens);
        const moe::RoutingTrace tr = moe::route(c, logits, ex);
        // Invariants of every trace.
        if (tr.n_tokens != n_tokens || static_cast<int>(tr.token_begin.size()) != n_tokens + 1) moe::fuzz::fail("trace size");
        if (tr.token_begin.back() != static_cast<int>(tr.pairs.size())) moe::fuzz::fail("token_begin does not end at the pairs");
        int kept = 0;
        for (const moe::RoutedPair& p : tr.pairs) {
            if (p.expert < 0 || p.expert >= c.n_experts || p.token < 0 || p.token >= n_tokens) moe::fuzz::fail("pair out of range");
            if (!std::isfinite(p.gate)) moe::fuzz::fail("non-finite gate");
            kept += p.dropped ? 0 : 1;
        }
        int load = 0;
        for (int e = 0; e < c.n_experts; ++e) {
            load += tr.expert_load[e];
            if (tr.capacity >= 0 && tr.expert_load[e] > tr.capacity) moe::fuzz::fail("load over capacity");
        }
        if (load != kept) moe::fuzz::fail("loads do not sum to the kept pairs");
        // What a training step does next.
        moe::Mat d_logits = moe::Mat::Zero(n_tokens, c.n_experts);  // (n_tokens, n_experts)
        if (c.scheme != moe::Scheme::Hash) {
            const std::vector<float> d_gate(tr.pairs.size(), 1.0f);
            moe::gate_backward(c, tr, d_gate, d_logits);
        }
        moe::aux_loss_backward(tr, 0.01f, d_logits);
        moe::z_loss_backward(tr, 0.001f, d_logits);
        moe::Vec b = moe::Vec::Zero(c.n_experts);  // (n_experts)
        moe::update_expert_bias(b, tr, 0.001f);
    });
}
