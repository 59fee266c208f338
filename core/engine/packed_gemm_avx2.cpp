// The packed kernels for AVX2+FMA (core/engine/packed_gemm_tile.h), compiled with -mavx2 -mfma
// for this file alone (core/CMakeLists.txt) and only called where cpuid reports both.
#include "core/engine/packed_gemm_tile.h"

namespace moe::kernels {

#if defined(__AVX2__) && defined(__FMA__)
namespace {
// 16 ymm: 6 rows x 2 vectors of accumulators + 2 of B + 1 broadcast A = 15; two passes of 16
// columns per 32-wide panel.
constexpr int kL = 8, kNv = 2, kMr = 6;
}  // namespace

const KernelSet& avx2_kernels() {
    static const KernelSet k{gemm_tiles<kMr, kL, kNv, false>, gemm_tiles<kMr, kL, kNv, true>, kL, 12,
                             fma_loop<kL, 12>, read_stream<kL>};
    return k;
}
#else
// Not an x86-64 build: cpu_features never reports AVX2 here, so this is never called.
const KernelSet& avx2_kernels() { return portable_kernels(); }
#endif

}  // namespace moe::kernels
