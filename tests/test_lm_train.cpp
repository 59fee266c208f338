// Gradient checks of every hand-written backward (central finite differences along a random
// direction per tensor), AdamW against a hand computation, the schedule, resume, and that a
// few steps of training lower the loss. Dimensions are tiny so the whole file runs in seconds.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <random>

#include "core/error.h"
#include "core/models/lm.h"
#include "core/models/lm_train.h"
#include "core/io/file_io.h"

using namespace moe;

namespace {

const int kOneThread = [] {
    omp_set_num_threads(1);  // tiny matrices: threads only add overhead on a busy machine
    return 1;
}();

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

    MoeCase(Scheme scheme, int n_shared, uint32_t seed, int n_rows = 5) {
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
        x = random_mat(n_rows, 6, rng);
        r = random_mat(n_rows, 6, rng);
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

TEST(LmGrad, MoeManyTokens) {
    MoeCase mc(Scheme::Soft, 1, 25, 40);
    check_moe(mc, 500);
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

// eps 5e-4: small enough that no top-K choice flips under the perturbation, large enough that
// float rounding of the loss stays well under the tolerance.
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
        }, seed * 100 + static_cast<uint32_t>(i), 5e-4, 3e-2);
    }
}

}  // namespace

TEST(LmGrad, WholeTinyModelSoftRouter) { check_whole_model(Scheme::Soft, 1, 31); }
TEST(LmGrad, WholeTinyModelTopKWithDenseLayer) { check_whole_model(Scheme::TopKMixtral, 2, 32); }

TEST(LmTrain, AdamWMatchesAHandComputedStep) {
    LmConfig c = tiny_config(Scheme::TopKMixtral, 1);
    const std::vector<LmTensorInfo> infos = lm_tensor_infos(c);
    LmGrads g = LmGrads::zeros_like(c);
    std::vector<Mat> params;
    std::vector<float*> ptr;
    for (const LmTensorInfo& t : infos) params.push_back(Mat::Constant(t.rows, t.cols, 0.5f));
    for (Mat& p : params) ptr.push_back(p.data());
    for (Mat& x : g.g) x.setConstant(0.2f);
    TrainConfig tc;
    tc.beta1 = 0.9f;
    tc.beta2 = 0.99f;
    tc.adam_eps = 1e-8f;
    tc.weight_decay = 0.1f;
    AdamW opt(c);
    const float lr = 0.01f;
    opt.step(ptr, g, lr, tc);
    // Step 1: m = 0.1 g, v = 0.01 g^2; bias-corrected mhat = g, vhat = g^2, update = lr * g/|g| = lr.
    const float decayed = 0.5f - lr * 0.1f * 0.5f - lr * 1.0f;
    const float plain = 0.5f - lr * 1.0f;
    for (size_t i = 0; i < infos.size(); ++i) {
        const float expect = !infos[i].trainable ? 0.5f : infos[i].decay ? decayed : plain;
        EXPECT_NEAR(params[i](0, 0), expect, 1e-6f) << infos[i].name;
    }
    // Step 2 with gradient -0.2: m = 0.9*0.02 - 0.02 = -0.002, v = 0.99*0.0004 + 0.01*0.04 = 0.000796.
    for (Mat& x : g.g) x.setConstant(-0.2f);
    size_t wq = 0;
    while (infos[wq].name != "blocks.0.wq") ++wq;
    const float before = params[wq](0, 0);  // a decayed weight matrix
    ASSERT_TRUE(infos[wq].decay);
    opt.step(ptr, g, lr, tc);
    const double mhat = -0.002 / (1 - 0.81), vhat = 0.000796 / (1 - 0.9801);
    const double expect = before - lr * 0.1 * before - lr * mhat / (std::sqrt(vhat) + 1e-8);
    EXPECT_NEAR(params[wq](0, 0), expect, 1e-6);
}

TEST(LmTrain, ScheduleWarmsUpThenDecays) {
    TrainConfig tc;
    tc.steps = 100;
    tc.warmup = 10;
    tc.lr = 1e-3f;
    tc.min_lr_ratio = 0.1f;
    EXPECT_NEAR(lr_at(tc, 0), 1e-4f, 1e-9f);
    EXPECT_NEAR(lr_at(tc, 9), 1e-3f, 1e-9f);
    EXPECT_NEAR(lr_at(tc, 10), 1e-3f, 1e-9f);
    EXPECT_NEAR(lr_at(tc, 55), 0.55e-3f, 1e-8f);  // cosine midpoint: halfway between lr and min
    EXPECT_NEAR(lr_at(tc, 100), 1e-4f, 1e-9f);
    for (int s = 11; s < 100; ++s) EXPECT_LE(lr_at(tc, s), lr_at(tc, s - 1));
}

namespace {
const std::string kTinyText =
    "the cat sat on the mat. the dog sat on the log. 1 + 1 = 2. 2 + 2 = 4. "
    "the cat and the dog sat on the mat and the log. 3 + 3 = 6. ";

TrainConfig tiny_train(Balance b) {
    TrainConfig tc;
    tc.steps = 30;
    tc.batch = 4;
    tc.seq = 12;
    tc.lr = 1e-2f;
    tc.warmup = 3;
    tc.balance = b;
    tc.seed = 3;
    return tc;
}
}  // namespace

TEST(LmTrain, AFewStepsLowerTheLoss) {
    for (Balance b : {Balance::Switch, Balance::Bias}) {
        LmModel m = LmModel::init(tiny_config(Scheme::TopKMixtral, 1), 4);
        const TrainConfig tc = tiny_train(b);
        const double before = Trainer::evaluate_bpb(m, kTinyText, 12, 1000);
        Trainer t(m, kTinyText, tc);
        TrainMetrics last;
        while (t.step_index() < tc.steps) last = t.step();
        const double after = Trainer::evaluate_bpb(m, kTinyText, 12, 1000);
        EXPECT_LT(after, before - 1.0) << balance_name(b);
        EXPECT_TRUE(std::isfinite(last.loss));
        EXPECT_EQ(last.step, tc.steps);
        if (b == Balance::Bias) {
            // Aux-loss-free balancing moved the selection bias of some expert.
            EXPECT_GT(m.impl().blocks[0].moe->weights().expert_bias.cwiseAbs().maxCoeff(), 0.0f);
            EXPECT_EQ(m.config().router.scheme, Scheme::SigmoidBias);
        }
    }
}

TEST(LmTrain, ResumeReproducesAnUninterruptedRun) {
    const LmConfig c = tiny_config(Scheme::TopKMixtral, 2);
    const TrainConfig tc = tiny_train(Balance::Switch);
    LmModel a = LmModel::init(c, 11);
    {
        Trainer t(a, kTinyText, tc);
        for (int i = 0; i < 12; ++i) t.step();
    }
    LmModel b = LmModel::init(c, 11);
    const std::string path = (std::filesystem::temp_directory_path() / "moelab_test_resume.safetensors").string();
    {
        Trainer t(b, kTinyText, tc);
        for (int i = 0; i < 5; ++i) t.step();
        t.save_checkpoint(path);
    }
    LmModel r = LmModel::load(path);
    Trainer t(r, kTinyText, tc);
    t.load_checkpoint(path);
    EXPECT_EQ(t.step_index(), 5);
    for (int i = 0; i < 7; ++i) t.step();
    const std::vector<float*> pa = lm_tensor_data(a.impl()), pr = lm_tensor_data(r.impl());
    const std::vector<LmTensorInfo> infos = lm_tensor_infos(c);
    for (size_t i = 0; i < infos.size(); ++i) {
        const int64_t n = int64_t{infos[i].rows} * infos[i].cols;
        EXPECT_TRUE(std::equal(pa[i], pa[i] + n, pr[i])) << infos[i].name;
    }
    for (const char* ext : {".safetensors", ".json", ".safetensors.train.json", ".safetensors.optim"})
        std::filesystem::remove((std::filesystem::temp_directory_path() / (std::string("moelab_test_resume") + ext)).string());
    // A truncated optimizer state is a moe::Error naming the file.
    LmModel x = LmModel::init(c, 1);
    Trainer tx(x, kTinyText, tc);
    EXPECT_THROW(tx.load_checkpoint(path), Error);
}

// Issue 15: the resume file's step and adam_t are exact integers; get<int>() turned 1e30 into
// undefined behaviour and 4294967298 into 2.
TEST(LmTrain, ResumeStepMustBeAnExactInteger) {
    const LmConfig c = tiny_config(Scheme::TopKMixtral, 1);
    const TrainConfig tc = tiny_train(Balance::Switch);
    LmModel m = LmModel::init(c, 3);
    const std::string path = (std::filesystem::temp_directory_path() / "moelab_test_resume_step.safetensors").string();
    Trainer t(m, kTinyText, tc);
    t.step();
    t.save_checkpoint(path);
    for (const char* bad : {"1e30", "4294967298", "1.9", "-1", "\"3\"", "[1]"}) {
        write_file_atomic(path + ".train.json", std::string("{\"step\": ") + bad + ", \"adam_t\": 1}");
        try {
            t.load_checkpoint(path);
            ADD_FAILURE() << "step " << bad << " accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.field(), "step") << e.what();
        }
    }
    write_file_atomic(path + ".train.json", "{\"step\": 4, \"adam_t\": 1e999}");
    EXPECT_THROW(t.load_checkpoint(path), Error);
    write_file_atomic(path + ".train.json", "{\"step\": 4}");
    EXPECT_THROW(t.load_checkpoint(path), Error);
    write_file_atomic(path + ".train.json", "{\"step\": 4, \"adam_t\": 1}");
    t.load_checkpoint(path);
    EXPECT_EQ(t.step_index(), 4);
    for (const char* ext : {".safetensors", ".json", ".safetensors.train.json", ".safetensors.optim"})
        std::filesystem::remove((std::filesystem::temp_directory_path() / (std::string("moelab_test_resume_step") + ext)).string());
}

TEST(LmTrain, BadConfigsThrow) {
    LmModel m = LmModel::init(tiny_config(Scheme::TopKMixtral, 1), 4);
    TrainConfig tc = tiny_train(Balance::Switch);
    tc.seq = 99;  // > max_seq
    EXPECT_THROW(Trainer(m, kTinyText, tc), Error);
    tc = tiny_train(Balance::Switch);
    tc.lr = -1.0f;
    EXPECT_THROW(Trainer(m, kTinyText, tc), Error);
    tc = tiny_train(Balance::Switch);
    EXPECT_THROW(Trainer(m, "short", tc), Error);
    Balance b;
    EXPECT_FALSE(balance_from_name("aux", b));
    EXPECT_TRUE(balance_from_name("bias", b));
}
