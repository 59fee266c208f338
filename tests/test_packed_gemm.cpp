// core/engine/packed_gemm.h, every kernel variant this CPU can run (core/engine/cpu_features.h),
// against an FP64 reference: every shape class of the kernels (row tails of every tile height,
// column tails, depth over several depth blocks, odd depth for the BF16 pairs), FP32 and BF16
// panels, the same bits whatever the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "core/engine/cpu_features.h"
#include "core/engine/packed_gemm.h"
#include "core/error.h"
#include "tests/test_util.h"

using namespace moe;
using moe::test::random_mat;

namespace {

// Restores the process's variant after a test switched it.
struct IsaScope {
    Isa saved = active_isa();
    ~IsaScope() { set_isa(saved); }
};

Mat round_to_bf16(const Mat& w) {
    Mat r(w.rows(), w.cols());
    for (int64_t i = 0; i < w.size(); ++i) r.data()[i] = bf16_to_float(float_to_bf16(w.data()[i]));
    return r;
}

// max |y - x w^T| / bound, with the reference in FP64 and bound = eps * sum_k |x_k| |w_k| per
// element (the forward error bound of a length-n_in FP32 dot product, with room). Plain loops:
// the reference should not share code with what it checks.
double worst_error(const Mat& x, const Mat& w, const Mat& y, double eps) {
    double worst = 0;
    for (int i = 0; i < x.rows(); ++i)
        for (int j = 0; j < w.rows(); ++j) {
            double want = 0, scale = 0;
            for (int k = 0; k < x.cols(); ++k) {
                want += static_cast<double>(x(i, k)) * w(j, k);
                scale += std::abs(static_cast<double>(x(i, k)) * w(j, k));
            }
            worst = std::max(worst, std::abs(y(i, j) - want) / (eps * scale + 1e-30));
        }
    return worst;
}

std::vector<Isa> supported_isas() {
    std::vector<Isa> all;
    for (Isa isa : kAllIsas)
        if (isa_supported(isa)) all.push_back(isa);
    return all;
}

}  // namespace

TEST(PackedGemm, EveryVariantMatchesFp64OnEveryTailShape) {
    IsaScope scope;
    for (Isa isa : supported_isas()) {
        set_isa(isa);
        // Rows: one (decode), tails of the 6- and 12-row tiles, one full tile, several row
        // blocks' worth; columns: under, over and several 32-wide panels; depth: one, odd,
        // over one and over two 128-deep blocks.
        for (int n : {1, 5, 12, 13, 33, 97})
            for (int n_out : {1, 17, 33, 130})
                for (int n_in : {1, 7, 129, 300}) {
                    const Mat x = random_mat(n, n_in, 1000 + n), w = random_mat(n_out, n_in, 2000 + n_out);
                    PackedMatrix p;
                    p.pack(w);
                    Mat y;
                    matmul_packed(x, p, y);
                    ASSERT_EQ(y.rows(), n);
                    ASSERT_EQ(y.cols(), n_out);
                    // FP32 rounding: n_in * 2^-24 per element, well inside 4 n_in 2^-24.
                    EXPECT_LT(worst_error(x, w, y, 4.0 * n_in * std::ldexp(1.0, -24)), 1.0)
                        << isa_name(isa) << " n " << n << " n_out " << n_out << " n_in " << n_in;
                }
    }
}

TEST(PackedGemm, Bf16PanelsGiveTheProductsOfTheBf16Weights) {
    IsaScope scope;
    for (Isa isa : supported_isas()) {
        set_isa(isa);
        for (int n : {1, 3, 13, 40})
            for (int n_out : {1, 17, 70})
                for (int n_in : {1, 2, 7, 33, 127, 300}) {
                    const Mat x = random_mat(n, n_in, 3000 + n), w = random_mat(n_out, n_in, 4000 + n_out);
                    PackedMatrix p;
                    p.pack_bf16(w);
                    ASSERT_EQ(p.type, WeightType::BF16);
                    Mat y;
                    matmul_packed(x, p, y);
                    // Exactly the rounded weights (and, for vdpbf16ps, the rounded activations),
                    // accumulated in FP32: the FP32 tolerance.
                    const bool dp = isa == Isa::Avx512Bf16;
                    EXPECT_LT(worst_error(dp ? round_to_bf16(x) : x, round_to_bf16(w), y, 4.0 * n_in * std::ldexp(1.0, -24)), 1.0)
                        << isa_name(isa) << " n " << n << " n_out " << n_out << " n_in " << n_in;
                    // Against FP32: BF16's unit roundoff (2^-8, 8 significant bits) per rounded factor.
                    EXPECT_LT(worst_error(x, w, y, (dp ? 2 : 1) * std::ldexp(1.0, -8) + 4.0 * n_in * std::ldexp(1.0, -24)), 1.0)
                        << isa_name(isa) << " n " << n << " n_out " << n_out << " n_in " << n_in;
                }
    }
}

TEST(PackedGemm, Bf16FromRawBitsWithAStrideEqualsBf16FromFloats) {
    // A safetensors BF16 tensor as stored: raw bits, here a column block of a wider one.
    const Mat w = random_mat(45, 70, 5);
    std::vector<uint16_t> bits(45 * 80, 0xFFFF);  // (45, 80), columns 70.. are not the matrix
    for (int r = 0; r < 45; ++r)
        for (int c = 0; c < 70; ++c) bits[r * 80 + c] = float_to_bf16(w(r, c));
    PackedMatrix from_bits, from_floats;
    from_bits.pack_bf16(bits.data(), 45, 70, 80);
    from_floats.pack_bf16(w);
    EXPECT_EQ(from_bits.n_out, 45);
    EXPECT_EQ(from_bits.n_in, 70);
    EXPECT_TRUE(from_bits.bf16 == from_floats.bf16);
    EXPECT_EQ(from_bits.weight_bytes() * 2, size_t{2} * 35 * 32 * 4 * 2);  // 2 panels x 35 pairs x 32 words
    EXPECT_TRUE(from_bits.data.empty());
}

TEST(PackedGemm, Bf16RoundsToNearestEvenLikeTorch) {
    EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(float_to_bf16(-2.0f), 0xC000);
    EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);   // tie, to even (down)
    EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie, to even (up)
    EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3F81);
    EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // overflows to inf
    EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
    EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    EXPECT_EQ(bf16_to_float(0x3FC0), 1.5f);
}

TEST(PackedGemm, ReadsABlockWithItsStride) {
    // A column block of a wider matrix (the language model multiplies q | k | v blocks).
    const Mat wide = random_mat(40, 96, 6), w = random_mat(20, 32, 7);
    for (bool bf16 : {false, true}) {
        PackedMatrix p;
        bf16 ? p.pack_bf16(w) : p.pack(w);
        Mat y;
        matmul_packed(wide.middleCols(32, 32), p, y);
        const Mat block = wide.middleCols(32, 32);
        const bool dp = bf16 && active_isa() == Isa::Avx512Bf16;  // vdpbf16ps rounds x too
        EXPECT_LT(worst_error(dp ? round_to_bf16(block) : block, bf16 ? round_to_bf16(w) : w, y,
                              4.0 * 32 * std::ldexp(1.0, -24)), 1.0)
            << (bf16 ? "bf16" : "f32");
    }
}

TEST(PackedGemm, PackTransposedMultipliesByTheMatrixItself) {
    // y = x w with w (n_in, n_out): the backward pass's dx = dy W.
    const Mat x = random_mat(19, 45, 13), w = random_mat(45, 37, 14);
    PackedMatrix p;
    p.pack_transposed(w);
    EXPECT_EQ(p.n_out, 37);
    EXPECT_EQ(p.n_in, 45);
    Mat y;
    matmul_packed(x, p, y);
    EXPECT_LT(worst_error(x, w.transpose(), y, 4.0 * 45 * std::ldexp(1.0, -24)), 1.0);
}

TEST(PackedGemm, SameBitsForOneAndTwoThreads) {
    const Mat x = random_mat(256, 128, 8), w = random_mat(384, 128, 9);
    for (bool bf16 : {false, true}) {
        PackedMatrix p;
        bf16 ? p.pack_bf16(w) : p.pack(w);
        Mat one, two;
        omp_set_num_threads(1);
        matmul_packed(x, p, one);
        omp_set_num_threads(2);
        matmul_packed(x, p, two);
        EXPECT_EQ((one - two).cwiseAbs().maxCoeff(), 0.0f) << (bf16 ? "bf16" : "f32");
    }
}

TEST(PackedGemm, EmptyShapesGiveEmptyResults) {
    PackedMatrix p;
    p.pack(random_mat(8, 4, 10));
    Mat y;
    matmul_packed(Mat(0, 4), p, y);
    EXPECT_EQ(y.rows(), 0);
    EXPECT_EQ(y.cols(), 8);
    PackedMatrix no_depth;  // n_in = 0: an empty sum is zero, not what was in y's memory
    no_depth.pack_bf16(Mat(5, 0));
    matmul_packed(Mat(3, 0), no_depth, y);
    EXPECT_EQ(y.rows(), 3);
    EXPECT_EQ(y.cwiseAbs().maxCoeff(), 0.0f);
}

TEST(IsaChoice, WidestSupportedUnlessTold) {
    ASSERT_TRUE(isa_supported(Isa::Portable));
    if (isa_supported(Isa::Avx512)) {
        EXPECT_TRUE(isa_supported(Isa::Avx2));
    }
    const char* env = std::getenv("MOE_ISA");
    if (env && *env) GTEST_SKIP() << "MOE_ISA=" << env << " is set; IsaChoice.FollowsMoeIsa checks that";
    Isa widest = Isa::Portable;
    for (Isa isa : kAllIsas)
        if (isa_supported(isa)) widest = isa;
    EXPECT_EQ(active_isa(), widest) << isa_reason();
    EXPECT_NE(isa_reason().find("cpuid"), std::string::npos) << isa_reason();
}

TEST(IsaChoice, SetIsaRefusesWhatTheCpuLacks) {
    IsaScope scope;
    for (Isa isa : kAllIsas) {
        if (isa_supported(isa)) {
            set_isa(isa);
            EXPECT_EQ(active_isa(), isa);
            EXPECT_EQ(isa_reason().rfind(isa_name(isa), 0), 0u) << isa_reason();
        } else {
            EXPECT_THROW(set_isa(isa), Error) << isa_name(isa);
        }
    }
}

// Run by CTest with MOE_ISA set (tests/CMakeLists.txt): MOE_ISA_EXPECT names what must be chosen,
// "widest" for the best the CPU has (an unknown name, or one the CPU lacks).
TEST(IsaChoice, FollowsMoeIsa) {
    const char* env = std::getenv("MOE_ISA");
    const char* expect = std::getenv("MOE_ISA_EXPECT");
    if (!env || !expect) GTEST_SKIP() << "run by CTest with MOE_ISA and MOE_ISA_EXPECT set";
    std::string want = expect;
    for (Isa isa : kAllIsas)
        if (want == isa_name(isa) && !isa_supported(isa)) want = "widest";  // the fallback must happen
    if (want == "widest") {
        Isa widest = Isa::Portable;
        for (Isa isa : kAllIsas)
            if (isa_supported(isa)) widest = isa;
        want = isa_name(widest);
    }
    EXPECT_EQ(isa_name(active_isa()), want) << isa_reason();
    EXPECT_NE(isa_reason().find("MOE_ISA"), std::string::npos) << isa_reason();
    // And the variant it chose computes the right thing.
    const Mat x = random_mat(13, 70, 11), w = random_mat(33, 70, 12);
    PackedMatrix p;
    p.pack(w);
    Mat y;
    matmul_packed(x, p, y);
    EXPECT_LT(worst_error(x, w, y, 4.0 * 70 * std::ldexp(1.0, -24)), 1.0);
}
