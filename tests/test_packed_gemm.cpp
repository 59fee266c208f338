// core/engine/packed_gemm.h against Eigen: every shape class of the kernel (row tails of 1-5, column
// tails, depth over one 256-deep block), and the same bits whatever the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include "core/engine/packed_gemm.h"

using namespace moe;

TEST(PackedGemm, MatchesEigenOnEveryTailShape) {
    for (int n : {1, 2, 5, 6, 7, 31, 32, 33, 97})
        for (int n_out : {1, 15, 16, 17, 48, 130})
            for (int n_in : {1, 7, 128, 300}) {
                const Mat x = Mat::Random(n, n_in), w = Mat::Random(n_out, n_in);
                PackedMatrix p;
                p.pack(w);
                Mat y;
                matmul_packed(x, p, y);
                ASSERT_EQ(y.rows(), n);
                ASSERT_EQ(y.cols(), n_out);
                const Mat want = x * w.transpose();
                EXPECT_LT((y - want).cwiseAbs().maxCoeff(), 1e-4f * n_in)
                    << "n " << n << " n_out " << n_out << " n_in " << n_in;
            }
}

TEST(PackedGemm, ReadsABlockWithItsStride) {
    // A column block of a wider matrix (the language model multiplies q | k | v blocks).
    const Mat wide = Mat::Random(40, 96), w = Mat::Random(20, 32);
    PackedMatrix p;
    p.pack(w);
    Mat y;
    matmul_packed(wide.middleCols(32, 32), p, y);
    EXPECT_LT((y - wide.middleCols(32, 32) * w.transpose()).cwiseAbs().maxCoeff(), 1e-4f);
}

TEST(PackedGemm, SameBitsForOneAndTwoThreads) {
    const Mat x = Mat::Random(256, 128), w = Mat::Random(384, 128);
    PackedMatrix p;
    p.pack(w);
    Mat one, two;
    omp_set_num_threads(1);
    matmul_packed(x, p, one);
    omp_set_num_threads(2);
    matmul_packed(x, p, two);
    EXPECT_EQ((one - two).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(PackedGemm, EmptyShapesGiveEmptyResults) {
    PackedMatrix p;
    p.pack(Mat::Random(8, 4));
    Mat y;
    matmul_packed(Mat(0, 4), p, y);
    EXPECT_EQ(y.rows(), 0);
    EXPECT_EQ(y.cols(), 8);
}
