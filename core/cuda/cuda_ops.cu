// The CUDA kernels and cuBLAS calls behind core/cuda/cuda_ops.h. No Eigen here (nvcc stays fast
// and warning-free); the backend class that speaks Eigen is core/cuda/backend_cuda.cpp.
//
// [SECTION] Errors and context   [SECTION] Buffers   [SECTION] GEMM and elementwise kernels
// [SECTION] Combine   [SECTION] Top-K   [SECTION] Sort by expert
#include "core/cuda/cuda_ops.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "core/error.h"

namespace moe::cuda {

// [SECTION] Errors and context
namespace {

void check(cudaError_t err, const char* call) {
    if (err == cudaSuccess) return;
    cudaGetLastError();  // clear a non-sticky error so the next call starts clean
    throw Error("CUDA backend", call, cudaGetErrorString(err),
                "a CUDA GPU and driver are needed; use --device cpu");
}

void check(cublasStatus_t st, const char* call) {
    if (st == CUBLAS_STATUS_SUCCESS) return;
    throw Error("CUDA backend", call, std::string("cuBLAS status ") + cublasGetStatusString(st),
                "check the GPU and the driver");
}

// One cuBLAS handle and one stream for the process, made on first use (never at start-up, so
// a build with CUDA runs fine on a machine without a GPU). Ops run in order on this stream.
struct Context {
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
};

Context& context() {
    static std::mutex mu;
    static Context ctx;
    static bool ready = false;
    std::lock_guard<std::mutex> lock(mu);
    if (!ready) {
        int n = 0;
        check(cudaGetDeviceCount(&n), "cudaGetDeviceCount");
        if (n == 0) check(cudaErrorNoDevice, "cudaGetDeviceCount");
        check(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking), "cudaStreamCreate");
        check(cublasCreate(&ctx.blas), "cublasCreate");
        check(cublasSetStream(ctx.blas, ctx.stream), "cublasSetStream");
        // Plain FP32, no TF32 tensor cores (TF32 would round inputs to 10 mantissa bits; the
        // backend is checked against the CPU at 1e-4). DEFAULT, unlike PEDANTIC, keeps split-K.
        check(cublasSetMathMode(ctx.blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
        ready = true;
    }
    return ctx;
}

cudaStream_t stream() { return context().stream; }

void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

unsigned blocks_for(size_t count, unsigned threads) {
    return static_cast<unsigned>((count + threads - 1) / threads);
}

}  // namespace

int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

std::string device_description() {
    context();
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
    return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

void synchronize() { check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize"); }

// [SECTION] Buffers
DeviceBuffer::~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);  // no throw from a destructor; a failed free only leaks
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
        if (ptr_) cudaFree(ptr_);
        ptr_ = o.ptr_;
        bytes_ = o.bytes_;
        o.ptr_ = nullptr;
        o.bytes_ = 0;
    }
    return *this;
}

void DeviceBuffer::reserve(size_t bytes) {
    if (bytes <= bytes_ && ptr_) return;
    context();
    if (ptr_) {
        // Work queued on the stream may still read the old block.
        check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
        cudaFree(ptr_);
        ptr_ = nullptr;
        bytes_ = 0;
    }
    check(cudaMalloc(&ptr_, bytes > 0 ? bytes : 4), "cudaMalloc");
    bytes_ = bytes;
}

void DeviceBuffer::upload(const void* host, size_t bytes) {
    reserve(bytes);
    if (bytes == 0) return;
    // Synchronous from the host's view: the host buffer may go away right after.
    check(cudaMemcpyAsync(ptr_, host, bytes, cudaMemcpyHostToDevice, stream()), "cudaMemcpy (to device)");
    check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
}

void DeviceBuffer::download(void* host, size_t bytes) const {
    if (bytes == 0) return;
    if (bytes > bytes_) throw Error("CUDA backend", "download", "asked for more bytes than the buffer holds");
    check(cudaMemcpyAsync(host, ptr_, bytes, cudaMemcpyDeviceToHost, stream()), "cudaMemcpy (to host)");
    check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
}

void DeviceBuffer::zero(size_t bytes) {
    reserve(bytes);
    if (bytes > 0) check(cudaMemsetAsync(ptr_, 0, bytes, stream()), "cudaMemset");
}

// [SECTION] GEMM and elementwise kernels
void gemm_xwT(const float* x, const float* w, float* y, int m, int n, int k, bool accumulate) {
    if (m == 0 || n == 0) return;
    const float alpha = 1.0f;
    const float beta = accumulate ? 1.0f : 0.0f;
    // Row-major y (m, n) is column-major y^T (n, m) = w (n, k) x^T (k, m); row-major w (n, k)
    // is column-major (k, n), hence OP_T; row-major x (m, k) is column-major x^T (k, m).
    check(cublasSgemm(context().blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, k, x, k, &beta, y, n),
          "cublasSgemm");
}

namespace {

__global__ void add_row_bias_kernel(float* y, const float* b, size_t count, int n) {
    const size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x;
    if (i < count) y[i] += b[i % n];
}

__global__ void gather_rows_kernel(const float* x, const int* row_token, float* xs, int n_rows, int d) {
    const int r = blockIdx.x;
    const float* src = x + static_cast<size_t>(row_token[r]) * d;
    float* dst = xs + static_cast<size_t>(r) * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) dst[j] = src[j];
}

__device__ float gelu_tanh(float v) {
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
}

__global__ void gelu_kernel(const float* pre, float* act, size_t count) {
    const size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x;
    if (i < count) act[i] = gelu_tanh(pre[i]);
}

__global__ void swiglu_kernel(const float* pre, const float* lin, float* act, size_t count) {
    const size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x;
    if (i < count) {
        const float v = pre[i];
        act[i] = v / (1.0f + expf(-v)) * lin[i];
    }
}

}  // namespace

void add_row_bias(float* y, const float* b, int m, int n) {
    const size_t count = static_cast<size_t>(m) * n;
    if (count == 0) return;
    add_row_bias_kernel<<<blocks_for(count, 256), 256, 0, stream()>>>(y, b, count, n);
    check_launch("add_row_bias_kernel");
}

void gather_rows(const float* x, const int* row_token, float* xs, int n_rows, int d) {
    if (n_rows == 0 || d == 0) return;
    gather_rows_kernel<<<n_rows, 128, 0, stream()>>>(x, row_token, xs, n_rows, d);
    check_launch("gather_rows_kernel");
}

void gelu(const float* pre, float* act, size_t count) {
    if (count == 0) return;
    gelu_kernel<<<blocks_for(count, 256), 256, 0, stream()>>>(pre, act, count);
    check_launch("gelu_kernel");
}

void swiglu(const float* pre, const float* lin, float* act, size_t count) {
    if (count == 0) return;
    swiglu_kernel<<<blocks_for(count, 256), 256, 0, stream()>>>(pre, lin, act, count);
    check_launch("swiglu_kernel");
}

// [SECTION] Combine
namespace {

// One block per token, threads over columns; each column sums its token's rows in row order,
// so the result does not depend on the launch shape.
__global__ void combine_kernel(const float* out, const int* rows, const int* token_begin, const float* gate,
                               float* y, int d) {
    const int t = blockIdx.x;
    const int b = token_begin[t], e = token_begin[t + 1];
    if (b == e) return;
    float* yt = y + static_cast<size_t>(t) * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float acc = yt[j];
        for (int i = b; i < e; ++i) acc += gate[rows[i]] * out[static_cast<size_t>(rows[i]) * d + j];
        yt[j] = acc;
    }
}

}  // namespace

void combine(const float* out, const int* rows, const int* token_begin, const float* gate, float* y,
             int n_tokens, int d) {
    if (n_tokens == 0 || d == 0) return;
    combine_kernel<<<n_tokens, 128, 0, stream()>>>(out, rows, token_begin, gate, y, d);
    check_launch("combine_kernel");
}

// [SECTION] Top-K
namespace {

constexpr int kMaxK = 64;

// One thread per token: insertion into a K-long list, exactly route()'s top_k (ties to the
// lower index). N and K are small (N <= a few hundred), so a thread per token is plenty.
__global__ void topk_kernel(const float* logits, const float* bias, int n_tokens, int n, int k, int kind,
                            bool renorm, float scale, int* out_expert, float* out_gate, float* out_score) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n_tokens) return;
    const float* h = logits + static_cast<size_t>(t) * n;
    // Softmax statistics for the p-ranked schemes.
    float m = h[0];
    for (int i = 1; i < n; ++i) m = fmaxf(m, h[i]);
    float z = 0.0f;
    for (int i = 0; i < n; ++i) z += expf(h[i] - m);
    int pick[kMaxK];
    float val[kMaxK];
    int filled = 0;
    for (int i = 0; i < n; ++i) {
        float v;
        if (kind == 0) v = h[i];
        else if (kind == 3) v = 1.0f / (1.0f + expf(-h[i])) + (bias ? bias[i] : 0.0f);
        else v = expf(h[i] - m) / z;
        int pos;
        if (filled == k) {
            if (!(v > val[k - 1])) continue;
            pos = k - 1;
        } else {
            pos = filled++;
        }
        while (pos > 0 && v > val[pos - 1]) {
            pick[pos] = pick[pos - 1];
            val[pos] = val[pos - 1];
            --pos;
        }
        pick[pos] = i;
        val[pos] = v;
    }
    float w[kMaxK];
    float sum = 0.0f;
    for (int r = 0; r < k; ++r) {
        const float hv = h[pick[r]];
        if (kind == 0) w[r] = expf(hv - val[0]);
        else if (kind == 3) w[r] = 1.0f / (1.0f + expf(-hv));
        else w[r] = expf(hv - m) / z;
        sum += w[r];
    }
    const bool normalise = kind == 0 || kind == 3 || (kind == 1 && renorm);
    for (int r = 0; r < k; ++r) {
        const size_t o = static_cast<size_t>(t) * k + r;
        out_expert[o] = pick[r];
        out_gate[o] = scale * (normalise ? w[r] / sum : w[r]);
        out_score[o] = val[r];
    }
}

}  // namespace

void topk_select(const float* logits, const float* bias, int n_tokens, int n_experts, int k, int kind,
                 bool renorm, float scale, int* out_expert, float* out_gate, float* out_score) {
    if (k < 1 || k > kMaxK || k > n_experts)
        throw Error("CUDA top-K", "k", "k = " + std::to_string(k) + " with " + std::to_string(n_experts) + " experts",
                    "1 <= k <= min(n_experts, 64)");
    if (kind < 0 || kind > 3) throw Error("CUDA top-K", "scheme", "unsupported kind " + std::to_string(kind));
    if (n_tokens == 0) return;
    topk_kernel<<<blocks_for(n_tokens, 128), 128, 0, stream()>>>(logits, bias, n_tokens, n_experts, k, kind,
                                                                 renorm, scale, out_expert, out_gate, out_score);
    check_launch("topk_kernel");
}

// [SECTION] Sort by expert
namespace {

constexpr int kSortThreads = 256;  // a multiple of 32: the scatter scans warp by warp

// Block e counts the pairs of expert e into begin[e + 1].
__global__ void count_kernel(const int* pair_expert, int n_pairs, int* begin) {
    const int e = blockIdx.x;
    int local = 0;
    for (int base = 0; base < n_pairs; base += blockDim.x) {
        const int p = base + threadIdx.x;
        local += __syncthreads_count(p < n_pairs && pair_expert[p] == e);
    }
    if (threadIdx.x == 0) begin[e + 1] = local;
}

__global__ void scan_kernel(int* begin, int n_experts) {
    begin[0] = 0;
    for (int e = 0; e < n_experts; ++e) begin[e + 1] += begin[e];
}

// Block e writes the indices of expert e's pairs, in pair order, from begin[e]: each chunk of
// pairs is ranked with warp ballots plus a prefix over the warps' totals (a stable compaction).
__global__ void scatter_kernel(const int* pair_expert, int n_pairs, const int* begin, int* order) {
    __shared__ int warp_total[kSortThreads / 32];
    __shared__ int warp_offset[kSortThreads / 32];
    const int e = blockIdx.x;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    int next = begin[e];
    for (int base = 0; base < n_pairs; base += blockDim.x) {
        const int p = base + threadIdx.x;
        const bool mine = p < n_pairs && pair_expert[p] == e;
        const unsigned ballot = __ballot_sync(0xffffffffu, mine);
        if (lane == 0) warp_total[warp] = __popc(ballot);
        __syncthreads();
        if (threadIdx.x == 0) {
            int acc = 0;
            for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) {
                warp_offset[w] = acc;
                acc += warp_total[w];
            }
            warp_total[0] = acc;  // chunk total, read after the barrier
        }
        __syncthreads();
        if (mine) order[next + warp_offset[warp] + __popc(ballot & ((1u << lane) - 1u))] = p;
        next += warp_total[0];
        __syncthreads();  // warp_total is rewritten by the next chunk
    }
}

}  // namespace

void sort_by_expert(const int* pair_expert, int n_pairs, int n_experts, int* expert_begin, int* order) {
    if (n_experts <= 0) throw Error("CUDA sort", "n_experts", std::to_string(n_experts), "at least 1");
    count_kernel<<<n_experts, kSortThreads, 0, stream()>>>(pair_expert, n_pairs, expert_begin);
    check_launch("count_kernel");
    scan_kernel<<<1, 1, 0, stream()>>>(expert_begin, n_experts);
    check_launch("scan_kernel");
    scatter_kernel<<<n_experts, kSortThreads, 0, stream()>>>(pair_expert, n_pairs, expert_begin, order);
    check_launch("scatter_kernel");
}

}  // namespace moe::cuda
