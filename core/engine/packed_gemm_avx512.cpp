// The packed kernels for AVX-512 (core/engine/packed_gemm_tile.h), compiled with -mavx512f/bw/vl
// for this file alone (core/CMakeLists.txt) and only called where cpuid reports them.
#include "core/engine/packed_gemm_tile.h"

namespace moe::kernels {

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
namespace {
// 32 zmm: 12 rows x 2 vectors of accumulators + 2 of B = 26, A broadcast from memory; one pass
// covers the 32-wide panel. 24 FMA chains for the peak: two FMA ports x latency 4, with room.
constexpr int kL = 16, kNv = 2, kMr = 12;
}  // namespace

const KernelSet& avx512_kernels() {
    static const KernelSet k{gemm_tiles<kMr, kL, kNv, false>, gemm_tiles<kMr, kL, kNv, true>, kL, 24,
                             fma_loop<kL, 24>, read_stream<kL>};
    return k;
}
#else
// Not an x86-64 build: cpu_features never reports AVX-512 here, so this is never called.
const KernelSet& avx512_kernels() { return portable_kernels(); }
#endif

}  // namespace moe::kernels
