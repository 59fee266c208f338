// Gradient checks of every hand-written backward (central finite differences along a random
// direction per tensor), AdamW against a hand computation, the schedule, resume, and that a
// few steps of training lower the loss. Dimensions are tiny so the whole file runs in seconds.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <random>

#include "core/lm.h"
#include "core/lm_train.h"

using namespace moe;

namespace {

Mat random_mat(int r, int c, std::mt19937& rng, float scale = 1.0f) {
    std::normal_distribution<float> nd(0.0f, scale);
    Mat m(r, c);
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
    return m;
}

// Checks that grad (same size as the n floats at p) matches the central difference of loss()
// along a random direction u: (L(p + eps u) - L(p - eps u)) / 2 eps  vs  grad . u.
void check_direction(const char* what, float* p, const float* grad, int64_t n, const std::function<double()>& loss,
                     uint32_t seed, double eps = 1e-3, double rel_tol = 2e-2) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> u(n), saved(p, p + n);
    double analytic = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        u[i] = nd(rng);
        analytic += static_cast<double>(grad[i]) * u[i];
    }
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(saved[i] + eps * u[i]);
    const double lp = loss();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(saved[i] - eps * u[i]);
    const double lm = loss();
    std::copy(saved.begin(), saved.end(), p);
    const double numeric = (lp - lm) / (2.0 * eps);
    const double denom = std::max({std::abs(analytic), std::abs(numeric), 1e-4});
    EXPECT_LT(std::abs(analytic - numeric) / denom, rel_tol)
        << what << ": analytic " << analytic << " numeric " << numeric;
}

double weighted_sum(const Mat& y, const Mat& r) { return y.cast<double>().cwiseProduct(r.cast<double>()).sum(); }

}  // namespace

TEST(LmGrad, RmsNorm) {
    std::mt19937 rng(1);
    Mat x = random_mat(4, 8, rng);
    Mat gm = random_mat(8, 1, rng, 0.3f);
    Vec gain = Vec::Ones(8) + Eigen::Map<Vec>(gm.data(), 8);
    const Mat r = random_mat(4, 8, rng);
    auto loss = [&] {
        Mat y;
        lm_ops::rmsnorm(x, gain, 1e-5f, y);
        return weighted_sum(y, r);
    };
    Mat y;
    Vec inv;
    lm_ops::rmsnorm(x, gain, 1e-5f, y, &inv);
    Mat dx = Mat::Zero(4, 8);
    Vec dgain = Vec::Zero(8);
    lm_grad::rmsnorm_backward(x, gain, inv, r, dx, dgain);
    check_direction("rmsnorm dx", x.data(), dx.data(), x.size(), loss, 2);
    check_direction("rmsnorm dgain", gain.data(), dgain.data(), gain.size(), loss, 3);
}

TEST(LmGrad, AttentionWithRope) {
    std::mt19937 rng(4);
    const int n = 5, d = 8, heads = 2;
    Mat q = random_mat(n, d, rng), k = random_mat(n, d, rng), v = random_mat(n, d, rng);
    const Mat r = random_mat(n, d, rng);
    Mat cos(16, 2), sin(16, 2);
    for (int p = 0; p < 16; ++p)
        for (int i = 0; i < 2; ++i) {
            cos(p, i) = std::cos(p * std::pow(100.0f, -0.5f * i));
            sin(p, i) = std::sin(p * std::pow(100.0f, -0.5f * i));
        }
    auto forward = [&](Mat& qr, Mat& kr, Mat& out, std::vector<Mat>* probs) {
        qr = q;
        kr = k;
        lm_ops::rope(qr, heads, 0, cos, sin);
        lm_ops::rope(kr, heads, 0, cos, sin);
        out.resize(n, d);
        lm_ops::attention(qr, kr, v, heads, 0, out, probs);
    };
    auto loss = [&] {
        Mat qr, kr, out;
        forward(qr, kr, out, nullptr);
        return weighted_sum(out, r);
    };
    Mat qr, kr, out;
    std::vector<Mat> probs;
    forward(qr, kr, out, &probs);
    Mat dq = Mat::Zero(n, d), dk = Mat::Zero(n, d), dv = Mat::Zero(n, d);
    lm_grad::attention_backward(qr, kr, v, probs, r, heads, dq, dk, dv);
    lm_ops::rope(dq, heads, 0, cos, sin, -1.0f);
    lm_ops::rope(dk, heads, 0, cos, sin, -1.0f);
    check_direction("attention dq", q.data(), dq.data(), q.size(), loss, 5);
    check_direction("attention dk", k.data(), dk.data(), k.size(), loss, 6);
    check_direction("attention dv", v.data(), dv.data(), v.size(), loss, 7);
    // Causality: the first output row depends on the first position only.
    Mat out2;
    v.row(n - 1) *= 3.0f;
    forward(qr, kr, out2, nullptr);
    EXPECT_TRUE(out2.row(0).isApprox(out.row(0)));
    EXPECT_FALSE(out2.row(n - 1).isApprox(out.row(n - 1)));
}

TEST(LmGrad, DenseSwiGlu) {
    std::mt19937 rng(8);
    const int n = 4, d = 6, f = 5;
    Mat x = random_mat(n, d, rng), w1 = random_mat(f, d, rng, 0.5f), w3 = random_mat(f, d, rng, 0.5f),
        w2 = random_mat(d, f, rng, 0.5f);
    const Mat r = random_mat(n, d, rng);
    auto loss = [&] {
        Mat y;
        lm_ops::swiglu(x, w1, w3, w2, y);
        return weighted_sum(y, r);
    };
    Mat y, hp, hl, ha;
    lm_ops::swiglu(x, w1, w3, w2, y, &hp, &hl, &ha);
    Mat dx = Mat::Zero(n, d), dw1 = Mat::Zero(f, d), dw3 = Mat::Zero(f, d), dw2 = Mat::Zero(d, f);
    lm_grad::swiglu_backward(x, w1, w3, w2, hp, hl, ha, r, dx, dw1, dw3, dw2);
    check_direction("swiglu dx", x.data(), dx.data(), x.size(), loss, 9);
    check_direction("swiglu dw1", w1.data(), dw1.data(), w1.size(), loss, 10);
    check_direction("swiglu dw3", w3.data(), dw3.data(), w3.size(), loss, 11);
    check_direction("swiglu dw2", w2.data(), dw2.data(), w2.size(), loss, 12);
}

TEST(LmGrad, HeadCrossEntropy) {
    std::mt19937 rng(13);
    Mat h = random_mat(3, 6, rng), w = random_mat(256, 6, rng, 0.5f);
    const std::vector<uint8_t> targets = {7, 200, 7};
    auto loss = [&] { return lm_grad::head_cross_entropy(h, w, targets, nullptr, nullptr); };
    Mat dh = Mat::Zero(3, 6), dw = Mat::Zero(256, 6);
    lm_grad::head_cross_entropy(h, w, targets, &dh, &dw);
    check_direction("head dh", h.data(), dh.data(), h.size(), loss, 14);
    check_direction("head dw", w.data(), dw.data(), w.size(), loss, 15);
}

namespace {

// A small MoE layer, its input and a random readout: the harness of the MoE checks.
struct MoeCase {
    MoeLayerConfig cfg;
    RouterConfig rc;
    std::unique_ptr<MoeLayer> layer;
    Mat x, r;
    float aux_scale = 0, z_scale = 0;

    MoeCase(Scheme scheme, int n_shared, uint32_t seed) {
        cfg.d_model = 6;
        cfg.d_ff = 5;
        cfg.n_experts = 4;
        cfg.n_shared = n_shared;
        cfg.d_ff_shared = 3;
        rc.scheme = scheme;
        rc.n_experts = 4;
        rc.k = 2;
        layer = std::make_unique<MoeLayer>(cfg, init_moe_layer(cfg, seed));
        std::mt19937 rng(seed);
        // Router weights large enough that the top-K choice has clear margins.
        layer->mutable_weights().w_router = random_mat(4, 6, rng, 1.5f);
        x = random_mat(5, 6, rng);
        r = random_mat(5, 6, rng);
    }
    double loss() const {
        Mat y;
        RoutingTrace tr;
        layer->forward(x, rc, {}, y, tr);
        return weighted_sum(y, r) + aux_scale * tr.stats.aux_loss + z_scale * tr.stats.z_loss;
    }
    void grads(Mat& dx, MoeLayerWeights& dw) const {
        Mat y;
        RoutingTrace tr;
        MoeForwardCache cache;
        layer->forward(x, rc, {}, y, tr, &cache);
        dx = Mat::Zero(x.rows(), x.cols());
        dw = layer->weights();
        dw.w_router.setZero();
        for (ExpertWeights& e : dw.experts) { e.w1.setZero(); e.w3.setZero(); e.w2.setZero(); }
        for (ExpertWeights& e : dw.shared) { e.w1.setZero(); e.w3.setZero(); e.w2.setZero(); }
        lm_grad::moe_backward(*layer, rc, x, tr, cache, r, aux_scale, z_scale, dx, dw);
    }
};

void check_moe(MoeCase& mc, uint32_t seed) {
    Mat dx;
    MoeLayerWeights dw;
    mc.grads(dx, dw);
    auto loss = [&] { return mc.loss(); };
    check_direction("moe dx", mc.x.data(), dx.data(), dx.size(), loss, seed);
    MoeLayerWeights& w = mc.layer->mutable_weights();
    check_direction("moe d w_router", w.w_router.data(), dw.w_router.data(), dw.w_router.size(),
                    [&] { mc.layer->mutable_weights(); return mc.loss(); }, seed + 1);
    for (int e = 0; e < mc.cfg.n_experts; ++e) {
        for (int which = 0; which < 3; ++which) {
            Mat& p = which == 0 ? w.experts[e].w1 : which == 1 ? w.experts[e].w3 : w.experts[e].w2;
            const Mat& g = which == 0 ? dw.experts[e].w1 : which == 1 ? dw.experts[e].w3 : dw.experts[e].w2;
            if (g.squaredNorm() == 0.0f) continue;  // an expert no token chose
            check_direction("moe expert weight", p.data(), g.data(), p.size(),
                            [&] { mc.layer->mutable_weights(); return mc.loss(); }, seed + 2 + e * 3 + which);
        }
    }
    for (size_t s = 0; s < w.shared.size(); ++s)
        check_direction("moe shared w2", w.shared[s].w2.data(), dw.shared[s].w2.data(), w.shared[s].w2.size(),
                        [&] { mc.layer->mutable_weights(); return mc.loss(); }, seed + 40);
}

}  // namespace

TEST(LmGrad, MoeExpertsAndRouterGatesTopK) {
    MoeCase mc(Scheme::TopKMixtral, 1, 21);
    check_moe(mc, 100);
}

TEST(LmGrad, MoeSoftAndSigmoidRouters) {
    MoeCase soft(Scheme::Soft, 0, 22);
    check_moe(soft, 200);
    MoeCase sig(Scheme::SigmoidBias, 1, 23);
    check_moe(sig, 300);
}

TEST(LmGrad, AuxAndZLosses) {
    MoeCase mc(Scheme::TopKMixtral, 0, 24);
    mc.r.setZero();  // only the balancing losses: their gradient reaches the router alone
    mc.aux_scale = 1.0f;
    mc.z_scale = 0.5f;
    Mat dx;
    MoeLayerWeights dw;
    mc.grads(dx, dw);
    EXPECT_GT(dw.w_router.norm(), 0.0f);
    MoeLayerWeights& w = mc.layer->mutable_weights();
    check_direction("aux+z d w_router", w.w_router.data(), dw.w_router.data(), dw.w_router.size(),
                    [&] { mc.layer->mutable_weights(); return mc.loss(); }, 400);
    check_direction("aux+z dx", mc.x.data(), dx.data(), dx.size(), [&] { return mc.loss(); }, 401);
}

namespace {

LmConfig tiny_config(Scheme scheme, int moe_every) {
    LmConfig c;
    c.d_model = 8;
    c.n_layers = 2;
    c.n_heads = 2;
    c.max_seq = 16;
    c.moe_every = moe_every;
    c.d_ff_dense = 6;
    c.moe.d_model = 8;
    c.moe.d_ff = 4;
    c.moe.n_experts = 4;
    c.moe.n_shared = 1;
    c.moe.d_ff_shared = 3;
    c.router.scheme = scheme;
    c.router.n_experts = 4;
    c.router.k = 2;
    return c;
}

std::vector<uint8_t> tiny_tokens(int batch, int seq, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> t(static_cast<size_t>(batch) * (seq + 1));
    for (uint8_t& b : t) b = static_cast<uint8_t>('a' + rng() % 6);
    return t;
}

void check_whole_model(Scheme scheme, int moe_every, uint32_t seed) {
    const LmConfig c = tiny_config(scheme, moe_every);
    LmModel model = LmModel::init(c, seed);
    const int batch = 2, seq = 6;
    const std::vector<uint8_t> tok = tiny_tokens(batch, seq, seed);
    LossOptions lo{0.01f, 0.001f};
    LmGrads g = LmGrads::zeros_like(c);
    lm_loss_and_grads(model, c.router, lo, tok, batch, seq, &g);
    const std::vector<LmTensorInfo> infos = lm_tensor_infos(c);
    std::vector<float*> data = lm_tensor_data(model.impl());
    ASSERT_EQ(infos.size(), g.g.size());
    for (size_t i = 0; i < infos.size(); ++i) {
        if (!infos[i].trainable) continue;
        check_direction(infos[i].name.c_str(), data[i], g.g[i].data(), g.g[i].size(), [&] {
            lm_tensor_data(model.impl());  // invalidate packed experts after the perturbation
            return lm_loss_and_grads(model, c.router, lo, tok, batch, seq, nullptr);
        }, seed * 100 + static_cast<uint32_t>(i), 1e-3, 3e-2);
    }
}

}  // namespace

TEST(LmGrad, WholeTinyModelSoftRouter) { check_whole_model(Scheme::Soft, 1, 31); }
TEST(LmGrad, WholeTinyModelTopKWithDenseLayer) { check_whole_model(Scheme::TopKMixtral, 2, 32); }
