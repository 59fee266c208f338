// A compute backend: the few COARSE operations an MoE layer is made of (STYLE.md §5-6, like
// ggml). MoeLayer::forward is written once against this interface; the CPU backend
// (backend_cpu.cpp) is the reference, a CUDA backend implements the same table later and is
// tested op by op against the CPU one with the shapes of core/engine/bench_cases.h.
//
// One forward pass of the layer, as backend calls:
//     router_logits(x_router, W_r, b_r)            -> logits      (n_tokens, n_experts)
//     route() (core/engine/routing.h, always on the CPU)   -> pairs, sorted by expert on the CPU
//     gather_rows(x, row_token)                     -> xs          (n_rows, d_model)
//     expert_ffn_grouped(packed, xs, expert_begin)  -> out         (n_rows, d_model)
//     combine(out, row_token, row_gate)             -> y          += (n_tokens, d_model)
// Row = token, as everywhere (core/engine/tensor.h); "rows" here are kept (token, expert) pairs.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/engine/moe_layer.h"
#include "core/engine/tensor.h"

namespace moe {

// [SECTION] Operations
enum class BackendOp : int { RouterLogits = 0, GatherRows, ExpertFfnGrouped, Combine };
inline constexpr int kNumBackendOps = 4;
const char* backend_op_name(BackendOp op);

// Expert weights in whatever layout makes this backend's matrix multiplies fastest, built once
// per weight change (MoeLayer packs at construction and after mutable_weights()).
struct PackedExperts {
    virtual ~PackedExperts() = default;
    int n_experts = 0;
    int d_model = 0;
    int d_ff = 0;
    Activation activation = Activation::SwiGLU;
};

// Where expert_ffn_grouped keeps its intermediates when a backward pass needs them; any
// pointer may be null. Rows follow the rows of xs.
struct ExpertIntermediates {
    Mat* h_pre = nullptr;  // (n_rows, d_ff) w1 x (+ b1)
    Mat* h_lin = nullptr;  // (n_rows, d_ff) w3 x, SwiGLU only
    Mat* h_act = nullptr;  // (n_rows, d_ff) the activation fed to w2
};

// [SECTION] Interface
class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;
    virtual bool supports(BackendOp op) const = 0;

    // logits = x w^T (+ b): x (n_tokens, d_model), w (n_experts, d_model), b (n_experts) or empty.
    virtual void router_logits(ConstMatRef x, ConstMatRef w, const Vec& b, Mat& logits) const = 0;

    // xs row r = x row row_token[r]: x (n_tokens, d_model), row_token (n_rows), xs (n_rows, d_model).
    virtual void gather_rows(ConstMatRef x, std::span<const int> row_token, Mat& xs) const = 0;

    virtual std::unique_ptr<PackedExperts> pack_experts(std::span<const ExpertWeights> experts,
                                                        Activation act) const = 0;

    // out rows [expert_begin[e], expert_begin[e+1]) = E_e(xs rows of the same range).
    // xs (n_rows, d_model), expert_begin (n_experts + 1), out (n_rows, d_model).
    virtual void expert_ffn_grouped(const PackedExperts& experts, ConstMatRef xs,
                                    std::span<const int> expert_begin, Mat& out,
                                    const ExpertIntermediates* keep = nullptr) const = 0;

    // y row row_token[r] += row_gate[r] * out row r, for every r; out (n_rows, d_model),
    // row_token and row_gate (n_rows), y (n_tokens, d_model). Deterministic: the sum for one
    // token runs in row order whatever the thread count.
    virtual void combine(ConstMatRef out, std::span<const int> row_token,
                         std::span<const float> row_gate, MatRef y) const = 0;
};

// The reference backend, always available.
const Backend& cpu_backend();
// The same with the experts' weights held in BF16 (half the bytes; FP32 activations and
// accumulation): what a BF16 checkpoint runs with, and the bench's BF16 rows.
const Backend& cpu_backend_bf16();
#ifdef MOE_HAVE_CUDA
const Backend& cuda_backend();  // core/cuda/, built with MOE_CUDA=ON
#endif
// Every backend this build has, CPU first.
std::vector<const Backend*> available_backends();

// [SECTION] Devices
// What the app and the CLI let a user pick. Cuda needs a build with MOE_CUDA=ON *and* a GPU
// with a working driver at run time; everything falls back to the CPU otherwise.
enum class Device : int { Cpu = 0, Cuda };
const char* device_name(Device d);                   // "CPU", "CUDA"
bool device_available(Device d);                     // never throws; CUDA is asked once per process
// Why `d` is not available ("this build has no CUDA backend (configure with -DMOE_CUDA=ON)",
// "no CUDA device or driver was found"); empty when it is.
std::string device_unavailable_reason(Device d);
// "cpu" or "cuda" (any case); throws moe::Error naming `where` and `field` otherwise.
Device parse_device(const std::string& text, const std::string& where, const std::string& field);
// The backend of an available device; throws moe::Error with the reason otherwise.
const Backend& backend_for(Device d);
// The device to run on when the user asked for `wanted`: `wanted` when available, else the
// CPU, with *why (if not null) set to a sentence saying so; *why is cleared otherwise.
Device usable_device(Device wanted, std::string* why);

}  // namespace moe
