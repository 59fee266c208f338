// The packed kernels at the baseline vector width (core/engine/packed_gemm_tile.h): 4 floats, no
// FMA. The fallback for a CPU without AVX2+FMA, and the reference the wider variants are tested
// beside. Compiled with AVX switched off even in a -march=native build (core/CMakeLists.txt).
#include "core/engine/packed_gemm_tile.h"

namespace moe::kernels {

namespace {
// 16 registers (SSE): 6 rows x 2 vectors of accumulators, 2 of B, 1 of A; 4 passes per panel.
constexpr int kL = 4, kNv = 2, kMr = 6;
}  // namespace

const KernelSet& portable_kernels() {
    static const KernelSet k{gemm_tiles<kMr, kL, kNv, false>, gemm_tiles<kMr, kL, kNv, true>, kL, 12,
                             fma_loop<kL, 12>, read_stream<kL>};
    return k;
}

}  // namespace moe::kernels
