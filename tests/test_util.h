// Helpers shared by the test files (header only: each test_*.cpp is its own executable).
#pragma once

#include <cstdint>

#include "core/engine/tensor.h"

namespace moe::test {

// A seeded (rows, cols) matrix with entries in [-scale, scale]. Not Mat::Random: its stream is
// global state; this xorshift keeps every case reproducible on its own.
inline Mat random_mat(int rows, int cols, uint64_t seed, float scale = 1.0f) {
    Mat m(rows, cols);
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (int64_t i = 0; i < m.size(); ++i) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        m.data()[i] = scale * (static_cast<float>(s % 20001) / 10000.0f - 1.0f);
    }
    return m;
}

inline Vec random_vec(int n, uint64_t seed, float scale = 1.0f) { return random_mat(1, n, seed, scale).row(0).transpose(); }

}  // namespace moe::test
