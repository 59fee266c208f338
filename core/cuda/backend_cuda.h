// The CUDA backend's extras beyond core/engine/backend.h: is a GPU usable, and the routing steps the
// GPU can do itself (top-K selection for the token-choice schemes, sort-by-expert dispatch).
// Declared in every build; defined only when built with MOE_CUDA=ON (MOE_HAVE_CUDA), so call
// these under #ifdef MOE_HAVE_CUDA. cuda_backend() itself is declared in core/engine/backend.h.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/engine/routing.h"
#include "core/engine/tensor.h"

namespace moe {

// True only with a CUDA driver and at least one device; never throws. Use it before
// cuda_backend(): without a device every op of the CUDA backend throws moe::Error.
bool cuda_device_usable();
// "NVIDIA H100 80GB HBM3 (sm_90)"; throws moe::Error without a device.
std::string cuda_device_description();

// [SECTION] Routing on the GPU
// Top-K selection as route() does it for TopKMixtral, TopKGShard, Switch and SigmoidBias
// (n_groups = 1). Entries are (n_tokens, k) row-major, best first per token.
struct GpuTopK {
    int k = 0;
    std::vector<int> expert;   // (n_tokens * k)
    std::vector<float> gate;   // (n_tokens * k) routed_scaling included, as RoutedPair::gate
    std::vector<float> score;  // (n_tokens * k) the ranked value, as RoutedPair::score
};
// logits (n_tokens, n_experts); expert_bias (n_experts) for SigmoidBias, or null. Throws
// moe::Error for another scheme, group-limited routing, a bad K, or no device.
GpuTopK cuda_topk(const RouterConfig& cfg, ConstMatRef logits, const Vec* expert_bias = nullptr);

// The dispatch sort: pair_expert (n_pairs), -1 for a dropped pair. expert_begin (n_experts + 1)
// and order (kept pairs): pair indices grouped by expert, in pair order inside each expert
// (what MoeForwardCache::order and expert_begin hold for the same trace).
struct GpuDispatch {
    std::vector<int> expert_begin;  // (n_experts + 1)
    std::vector<int> order;         // (n_kept)
};
GpuDispatch cuda_sort_by_expert(std::span<const int> pair_expert, int n_experts);

}  // namespace moe
