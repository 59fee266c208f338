// The raw CUDA layer under the CUDA backend: device buffers, cuBLAS GEMMs and the kernels, on
// plain pointers so this header (and the .cpp files that use it) stay free of CUDA headers and
// the .cu file stays free of Eigen. Every CUDA/cuBLAS failure throws moe::Error naming the call
// and the runtime's message; nothing here aborts, also with no GPU or no driver.
//
// [SECTION] Device   [SECTION] Buffers   [SECTION] Ops   [SECTION] Routing kernels
// Row-major everywhere, row = token, weights (out, in), as core/engine/tensor.h.
#pragma once

#include <cstddef>
#include <string>

namespace moe::cuda {

// [SECTION] Device
// Number of usable devices; 0 when the driver or the device is missing (never throws).
int device_count() noexcept;
// "NVIDIA H100 80GB HBM3 (sm_90)"; throws moe::Error without a device.
std::string device_description();
void synchronize();  // waits for the backend's stream; throws on a sticky kernel error

// [SECTION] Buffers
// Owns device memory; grows on demand, never shrinks; move-only.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes) { reserve(bytes); }
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; o.bytes_ = 0; }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void reserve(size_t bytes);                       // at least bytes, old content lost
    void upload(const void* host, size_t bytes);      // reserve + host -> device
    void download(void* host, size_t bytes) const;    // device -> host, bytes <= size
    void zero(size_t bytes);
    float* f() const { return static_cast<float*>(ptr_); }
    int* i() const { return static_cast<int*>(ptr_); }
    size_t bytes() const { return bytes_; }

private:
    void* ptr_ = nullptr;
    size_t bytes_ = 0;
};

// [SECTION] Ops (all pointers are device pointers; asynchronous on the backend's stream)
// y (m, n) = x (m, k) w^T, w (n, k); accumulate: y += instead of y =. cuBLAS SGEMM, FP32 math
// (no TF32), so results match the CPU within FP32 rounding.
void gemm_xwT(const float* x, const float* w, float* y, int m, int n, int k, bool accumulate = false);
void add_row_bias(float* y, const float* b, int m, int n);  // y (m, n) row += b (n)
// xs row r = x row row_token[r]; x (n_tokens, d), xs (n_rows, d).
void gather_rows(const float* x, const int* row_token, float* xs, int n_rows, int d);
// act (m, n) = gelu_tanh(pre) or silu(pre) * lin; act may alias pre.
void gelu(const float* pre, float* act, size_t count);
void swiglu(const float* pre, const float* lin, float* act, size_t count);
// y row t += sum over i in [token_begin[t], token_begin[t+1]) of gate[rows[i]] * out row rows[i],
// summed in i order (deterministic). out (n_rows, d), y (n_tokens, d).
void combine(const float* out, const int* rows, const int* token_begin, const float* gate, float* y,
             int n_tokens, int d);

// [SECTION] Routing kernels
// Token-choice selection on the GPU (MOE_REFERENCE.md §2). kind: 0 TopKMixtral (rank h, gate
// softmax over the chosen h), 1 TopKGShard (rank p, gate p, renormalised if renorm), 2 Switch
// (rank p, gate p), 3 SigmoidBias (s = sigmoid h, rank s + bias, gate s / sum chosen s).
// Gates are multiplied by scale. Ties go to the lower expert index, as route().
// logits (n_tokens, n_experts), bias (n_experts) or null, out_expert/out_gate/out_score
// (n_tokens, k), best first.
void topk_select(const float* logits, const float* bias, int n_tokens, int n_experts, int k, int kind,
                 bool renorm, float scale, int* out_expert, float* out_gate, float* out_score);
// Stable counting sort of pairs by expert: pair_expert (n_pairs), expert < 0 = skipped (dropped).
// expert_begin (n_experts + 1); order (kept pairs): pair indices grouped by expert, pair order
// kept inside each expert.
void sort_by_expert(const int* pair_expert, int n_pairs, int n_experts, int* expert_begin, int* order);

}  // namespace moe::cuda
