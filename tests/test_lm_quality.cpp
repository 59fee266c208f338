// The shipped model (assets/tiny-moe-lm.*) against baselines, on the held-out slice the corpus
// builder produces from the installed Debian files (scripts/install-deps.sh installs them):
//   1. bits per byte clearly below an add-one-smoothed bigram counted on the training split;
//   2. routing carries information: the mutual information between a byte's class and its
//      top-1 expert is well above that of the same model with a re-initialised random router.
// Evaluated on evenly spaced windows of the validation text so it stays fast under sanitizers.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/models/corpus.h"
#include "core/models/lm.h"

using namespace moe;

namespace {

constexpr int kWindows = 64;
constexpr int kWindowLen = 256;

enum ByteClass { kLetter = 0, kDigit, kSpace, kPunct, kNonAscii, kCode, kNumClasses };

struct Slice {
    std::vector<std::string> windows;  // (kWindows) each kWindowLen bytes of validation text
    std::vector<bool> is_code;         // (kWindows) the window lies in the C-source part
};

struct Fixture {
    Corpus corpus;
    Slice slice;
    Fixture() {
        corpus = build_corpus();
        // Where the C part of the validation text starts and ends (sources are appended in order).
        int64_t begin = 0, c_begin = -1, c_end = -1;
        for (const CorpusSource& s : corpus.sources) {
            if (s.name == "c") {
                c_begin = begin;
                c_end = begin + s.valid_bytes;
            }
            begin += s.valid_bytes;
        }
        const int64_t n = static_cast<int64_t>(corpus.valid.size());
        for (int w = 0; w < kWindows; ++w) {
            const int64_t off = (n - kWindowLen - 1) * w / (kWindows - 1);
            slice.windows.push_back(corpus.valid.substr(off, kWindowLen));
            slice.is_code.push_back(off >= c_begin && off + kWindowLen <= c_end);
        }
    }
};

const Fixture& fixture() {
    static const Fixture f;
    return f;
}

int byte_class(uint8_t b, bool code) {
    if (code) return kCode;
    if (b >= 128) return kNonAscii;
    if (std::isalpha(b)) return kLetter;
    if (std::isdigit(b)) return kDigit;
    if (std::isspace(b)) return kSpace;
    return kPunct;
}

// Bits per byte of the model over the windows (predicting bytes 1..n-1 of each window).
double model_bpb(const LmModel& m, const Slice& s) {
    LmRunOptions opt;
    opt.router = m.config().router;
    double bits = 0;
    int64_t count = 0;
    for (const std::string& w : s.windows) {
        const std::vector<uint8_t> bytes(w.begin(), w.end());
        LmForward out;
        m.forward(std::span<const uint8_t>(bytes.data(), bytes.size() - 1), opt, out);
        for (int t = 0; t + 1 < static_cast<int>(bytes.size()); ++t) {
            const auto row = out.logits.row(t);
            const float mx = row.maxCoeff();
            const double lse = mx + std::log((row.array() - mx).exp().cast<double>().sum());
            bits += (lse - row(bytes[t + 1])) / std::log(2.0);
            ++count;
        }
    }
    return bits / count;
}

// Mean over MoE layers of I(class; top-1 expert) in bits, over every byte of the windows.
double routing_mi(const LmModel& m, const Slice& s) {
    const int n_exp = m.config().moe.n_experts;
    const int n_layers = n_moe_layers(m.config());
    std::vector<std::vector<double>> joint(n_layers, std::vector<double>(kNumClasses * n_exp, 0.0));
    LmRunOptions opt;
    opt.router = m.config().router;
    for (size_t w = 0; w < s.windows.size(); ++w) {
        const std::vector<uint8_t> bytes(s.windows[w].begin(), s.windows[w].end());
        LmForward out;
        m.forward(bytes, opt, out);
        for (int l = 0; l < n_layers; ++l)
            for (int t = 0; t < static_cast<int>(bytes.size()); ++t) {
                const auto pairs = out.traces[l].token_pairs(t);
                if (pairs.empty()) continue;
                joint[l][byte_class(bytes[t], s.is_code[w]) * n_exp + pairs[0].expert] += 1.0;
            }
    }
    double mi_sum = 0;
    for (int l = 0; l < n_layers; ++l) {
        double total = 0;
        std::vector<double> pc(kNumClasses, 0.0), pe(n_exp, 0.0);
        for (int c = 0; c < kNumClasses; ++c)
            for (int e = 0; e < n_exp; ++e) {
                const double v = joint[l][c * n_exp + e];
                pc[c] += v;
                pe[e] += v;
                total += v;
            }
        double mi = 0;
        for (int c = 0; c < kNumClasses; ++c)
            for (int e = 0; e < n_exp; ++e) {
                const double v = joint[l][c * n_exp + e];
                if (v > 0) mi += v / total * std::log2(v * total / (pc[c] * pe[e]));
            }
        mi_sum += mi;
    }
    return mi_sum / n_layers;
}

}  // namespace

TEST(LmQuality, CorpusHasEverySourceAndAValidationSlice) {
    const Fixture& f = fixture();
    ASSERT_EQ(f.corpus.sources.size(), 6u);
    for (const CorpusSource& s : f.corpus.sources) {
        EXPECT_GT(s.train_bytes, 100000) << s.name;
        EXPECT_GT(s.valid_bytes, 1000) << s.name;
        // The fixed rule: about one document in 20 is held out.
        EXPECT_NEAR(static_cast<double>(s.valid_bytes) / (s.train_bytes + s.valid_bytes), 0.05, 0.03) << s.name;
    }
    EXPECT_TRUE(is_valid_utf8(f.corpus.valid));
    int n_code = 0;
    for (bool c : f.slice.is_code) n_code += c ? 1 : 0;
    EXPECT_GT(n_code, 0);
}

TEST(LmQuality, BeatsBigramBaselineOnHeldOutText) {
    const Fixture& f = fixture();
    const auto t0 = std::chrono::steady_clock::now();
    const LmModel m = LmModel::load(builtin_model_path());
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Bigram with add-one smoothing, counted on the training split.
    std::vector<double> counts(256 * 256, 1.0), row_sum(256, 256.0);
    const std::string& tr = f.corpus.train;
    for (size_t i = 0; i + 1 < tr.size(); ++i) {
        const uint8_t a = tr[i], b = tr[i + 1];
        counts[a * 256 + b] += 1.0;
        row_sum[a] += 1.0;
    }
    double bits = 0;
    int64_t n = 0;
    for (const std::string& w : f.slice.windows)
        for (size_t t = 0; t + 1 < w.size(); ++t) {
            const uint8_t a = w[t], b = w[t + 1];
            bits -= std::log2(counts[a * 256 + b] / row_sum[a]);
            ++n;
        }
    const double bigram_bpb = bits / n;
    const double lm_bpb = model_bpb(m, f.slice);
    std::printf("[ quality ] load %.3f s; held-out slice: model %.3f bpb, bigram %.3f bpb\n", load_s, lm_bpb, bigram_bpb);
    RecordProperty("model_bpb", std::to_string(lm_bpb));
    RecordProperty("bigram_bpb", std::to_string(bigram_bpb));
    EXPECT_LT(lm_bpb, bigram_bpb - 0.3);
}

TEST(LmQuality, RoutingCarriesInformationAboutTheByteClass) {
    const Fixture& f = fixture();
    const LmModel trained = LmModel::load(builtin_model_path());
    LmModel random = LmModel::load(builtin_model_path());
    std::mt19937 rng(12345);
    const float scale = 1.0f / std::sqrt(static_cast<float>(random.config().d_model));
    std::normal_distribution<float> nd(0.0f, scale);
    for (LmBlock& b : random.impl().blocks) {
        if (!b.moe) continue;
        Mat& w = b.moe->mutable_weights().w_router;
        for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = nd(rng);
    }
    const double mi_trained = routing_mi(trained, f.slice);
    const double mi_random = routing_mi(random, f.slice);
    std::printf("[ quality ] I(byte class; top-1 expert): trained %.3f bits, random router %.3f bits\n", mi_trained,
                mi_random);
    RecordProperty("mi_trained", std::to_string(mi_trained));
    RecordProperty("mi_random", std::to_string(mi_random));
    EXPECT_GT(mi_trained, 1.5 * mi_random);
    EXPECT_GT(mi_trained, mi_random + 0.1);
}
