// The one seeded random stream of the engine: splitmix64 (Steele, Lea, Flood 2014) with
// Box-Muller normals. std:: distributions differ between standard libraries; this gives the
// same numbers everywhere, so a seed means the same weights, noise and tie-breaks on any machine.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace moe {

struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    // Standard normals one at a time; Box-Muller's second output is kept for the next call.
    double normal() {
        if (has_spare) {
            has_spare = false;
            return spare;
        }
        const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
        const double u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1));
        spare = r * std::sin(2.0 * std::numbers::pi * u2);
        has_spare = true;
        return r * std::cos(2.0 * std::numbers::pi * u2);
    }
    // n normals with this stddev, a Box-Muller pair per two outputs (weight init).
    void fill_normal(float* out, int64_t n, float stddev) {
        for (int64_t i = 0; i < n; i += 2) {
            const double u1 = 1.0 - uniform();
            const double u2 = uniform();
            const double r = std::sqrt(-2.0 * std::log(u1)) * stddev;
            out[i] = static_cast<float>(r * std::cos(2.0 * std::numbers::pi * u2));
            if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(2.0 * std::numbers::pi * u2));
        }
    }
    double spare = 0.0;
    bool has_spare = false;
};

// One splitmix64 step from x: a well-mixed 64-bit hash of a seed or an index.
inline uint64_t splitmix64(uint64_t x) { return Rng(x).next(); }

}  // namespace moe
