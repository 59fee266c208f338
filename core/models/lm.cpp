// The tiny byte-level MoE language model: config, init, forward, KV-cache stepping, files.
//
// [SECTION] Config
// [SECTION] Tensor table
// [SECTION] Ops (RMSNorm, RoPE, attention, SwiGLU)
// [SECTION] Init
// [SECTION] Forward
// [SECTION] Step (KV cache)
// [SECTION] Files
// [SECTION] Helpers
#include "core/models/lm.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <type_traits>

#include "core/error.h"
#include "core/engine/packed_gemm.h"
#include "core/io/file_io.h"
#include "core/io/json_input.h"
#include "core/io/safetensors.h"

namespace moe {

// [SECTION] Config
void validate(const LmConfig& cfg) {
    const char* where = "LmConfig";
    if (cfg.vocab != 256) throw Error(where, "vocab", "is " + num(cfg.vocab), "the model reads bytes: expected 256");
    if (cfg.d_model < 2 || cfg.d_model > 4096)
        throw Error(where, "d_model", "is " + num(cfg.d_model), "expected 2..4096");
    if (cfg.n_layers < 1 || cfg.n_layers > 64)
        throw Error(where, "n_layers", "is " + num(cfg.n_layers), "expected 1..64");
    if (cfg.n_heads < 1 || cfg.d_model % cfg.n_heads != 0 || (cfg.d_model / cfg.n_heads) % 2 != 0)
        throw Error(where, "n_heads", "is " + num(cfg.n_heads),
                    "expected a divisor of d_model = " + num(cfg.d_model) + " giving an even head_dim");
    if (cfg.max_seq < 1 || cfg.max_seq > 65536)
        throw Error(where, "max_seq", "is " + num(cfg.max_seq), "expected 1..65536");
    if (cfg.moe_every != 1 && cfg.moe_every != 2)
        throw Error(where, "moe_every", "is " + num(cfg.moe_every), "expected 1 (every FFN MoE) or 2 (alternate)");
    if (cfg.moe_every == 2 && (cfg.d_ff_dense < 1 || cfg.d_ff_dense > 65536))
        throw Error(where, "d_ff_dense", "is " + num(cfg.d_ff_dense), "expected 1..65536");
    if (cfg.moe.d_model != cfg.d_model)
        throw Error(where, "moe.d_model", "is " + num(cfg.moe.d_model), "expected d_model = " + num(cfg.d_model));
    if (cfg.moe.activation != Activation::SwiGLU || cfg.moe.router_bias || cfg.moe.expert_biases)
        throw Error(where, "moe", "has activation/bias options the language model does not train",
                    "expected SwiGLU experts without router or expert biases");
    validate(cfg.moe);
    if (cfg.router.n_experts != cfg.moe.n_experts)
        throw Error(where, "router.n_experts", "is " + num(cfg.router.n_experts),
                    "expected moe.n_experts = " + num(cfg.moe.n_experts));
    validate(cfg.router, 0);
    if (!(cfg.norm_eps > 0.0f && cfg.norm_eps < 1.0f))
        throw Error(where, "norm_eps", "is " + fnum(cfg.norm_eps), "expected 0 < eps < 1");
    if (!(cfg.rope_theta > 1.0f && std::isfinite(cfg.rope_theta)))
        throw Error(where, "rope_theta", "is " + fnum(cfg.rope_theta), "expected a finite value > 1");
}

bool is_moe_layer(const LmConfig& cfg, int layer) {
    return cfg.moe_every == 1 || layer % 2 == 1;
}

int n_moe_layers(const LmConfig& cfg) {
    int n = 0;
    for (int l = 0; l < cfg.n_layers; ++l) n += is_moe_layer(cfg, l) ? 1 : 0;
    return n;
}

namespace {
using json = nlohmann::json;

json router_to_json(const RouterConfig& r) {
    return json{{"scheme", scheme_name(r.scheme)}, {"n_experts", r.n_experts}, {"k", r.k},
                {"capacity_factor", r.capacity_factor}, {"drop_policy", drop_policy_name(r.drop_policy)},
                {"renormalize", r.renormalize}, {"routed_scaling", r.routed_scaling},
                {"bias_update_rate", r.bias_update_rate}, {"n_groups", r.n_groups},
                {"topk_groups", r.topk_groups}, {"sinkhorn_iters", r.sinkhorn_iters}};
}

// Every value from the .json is checked for its exact type and range here, so nothing reaches
// nlohmann's get<T>() that it would convert with undefined behaviour (1e30 to int) or silently
// wrong (4294967298 to int as 2, 1.9 as 1, 1e300 to float as infinity).
constexpr const char* kConfigHint = "see docs/MODEL_CARD.md for the config format";

template <class T>
T get_field(const json& j, const char* key, T fallback, const std::string& where, const std::string& prefix) {
    const auto it = j.find(key);
    if (it == j.end()) return fallback;
    const json& v = *it;
    const auto wrong = [&](const std::string& expected) {
        return Error(where, prefix + key, "is " + json_shown(v), expected + "; " + kConfigHint);
    };
    if constexpr (std::is_same_v<T, int>) {
        return static_cast<int>(json_integer(v, where, prefix + key, INT32_MIN, INT32_MAX, kConfigHint));
    } else if constexpr (std::is_same_v<T, float>) {
        if (!v.is_number()) throw wrong("expected a number");
        const double x = v.get<double>();
        if (!(std::fabs(x) <= static_cast<double>(std::numeric_limits<float>::max()))) throw wrong("expected a number a float can hold");
        return static_cast<float>(x);
    } else if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) throw wrong("expected true or false");
        return v.get<bool>();
    } else {
        static_assert(std::is_same_v<T, std::string>, "config fields are int, float, bool or string");
        if (!v.is_string()) throw wrong("expected a string");
        return v.get<std::string>();
    }
}

// A nested block ("moe", "router") by reference: copying a json recurses.
const json& get_block(const json& j, const char* key, const std::string& where, const char* expected) {
    static const json kEmpty = json::object();
    const auto it = j.find(key);
    if (it == j.end()) return kEmpty;
    if (!it->is_object()) throw Error(where, key, "is " + json_shown(*it), expected);
    return *it;
}
}  // namespace

std::string lm_config_to_json(const LmConfig& c) {
    json j{{"format", "moelab-lm"}, {"version", 1}, {"vocab", c.vocab}, {"d_model", c.d_model},
           {"n_layers", c.n_layers}, {"n_heads", c.n_heads}, {"max_seq", c.max_seq},
           {"moe_every", c.moe_every}, {"d_ff_dense", c.d_ff_dense}, {"norm_eps", c.norm_eps},
           {"rope_theta", c.rope_theta}, {"tie_embeddings", c.tie_embeddings},
           {"moe", {{"d_ff", c.moe.d_ff}, {"n_experts", c.moe.n_experts}, {"n_shared", c.moe.n_shared},
                    {"d_ff_shared", c.moe.d_ff_shared}, {"activation", activation_name(c.moe.activation)}}},
           {"router", router_to_json(c.router)}};
    return j.dump(2) + "\n";
}

LmConfig lm_config_from_json(const std::string& text, const std::string& where) {
    const json j = parse_json_input(text, where, "JSON", "expected the config written by moelab-cli train");
    if (!j.is_object()) throw Error(where, "JSON", "is not an object", "expected the config written by moelab-cli train");
    if (get_field<std::string>(j, "format", "", where, "") != "moelab-lm")
        throw Error(where, "format", "is not \"moelab-lm\"", "expected a config written by moelab-cli train");
    LmConfig c;
    c.vocab = get_field<int>(j, "vocab", c.vocab, where, "");
    c.d_model = get_field<int>(j, "d_model", c.d_model, where, "");
    c.n_layers = get_field<int>(j, "n_layers", c.n_layers, where, "");
    c.n_heads = get_field<int>(j, "n_heads", c.n_heads, where, "");
    c.max_seq = get_field<int>(j, "max_seq", c.max_seq, where, "");
    c.moe_every = get_field<int>(j, "moe_every", c.moe_every, where, "");
    c.d_ff_dense = get_field<int>(j, "d_ff_dense", c.d_ff_dense, where, "");
    c.norm_eps = get_field<float>(j, "norm_eps", c.norm_eps, where, "");
    c.rope_theta = get_field<float>(j, "rope_theta", c.rope_theta, where, "");
    c.tie_embeddings = get_field<bool>(j, "tie_embeddings", c.tie_embeddings, where, "");
    const json& m = get_block(j, "moe", where, "expected {\"d_ff\": ..., \"n_experts\": ...}");
    c.moe.d_model = c.d_model;
    c.moe.d_ff = get_field<int>(m, "d_ff", c.moe.d_ff, where, "moe.");
    c.moe.n_experts = get_field<int>(m, "n_experts", c.moe.n_experts, where, "moe.");
    c.moe.n_shared = get_field<int>(m, "n_shared", c.moe.n_shared, where, "moe.");
    c.moe.d_ff_shared = get_field<int>(m, "d_ff_shared", c.moe.d_ff_shared, where, "moe.");
    const std::string act = get_field<std::string>(m, "activation", "swiglu", where, "moe.");
    if (act != activation_name(Activation::SwiGLU))
        throw Error(where, "moe.activation", "is \"" + act + "\"", "the language model uses \"swiglu\" experts");
    const json& r = get_block(j, "router", where, "expected {\"scheme\": ..., \"k\": ...}");
    const std::string sname = get_field<std::string>(r, "scheme", scheme_name(c.router.scheme), where, "router.");
    const std::optional<Scheme> sch = scheme_from_name(sname);
    if (!sch) throw Error(where, "router.scheme", "is \"" + sname + "\"", "expected a scheme id such as topk_mixtral");
    c.router.scheme = *sch;
    c.router.n_experts = get_field<int>(r, "n_experts", c.moe.n_experts, where, "router.");
    c.router.k = get_field<int>(r, "k", c.router.k, where, "router.");
    c.router.capacity_factor = get_field<float>(r, "capacity_factor", c.router.capacity_factor, where, "router.");
    const std::string dp = get_field<std::string>(r, "drop_policy", drop_policy_name(c.router.drop_policy), where, "router.");
    const std::optional<DropPolicy> pol = drop_policy_from_name(dp);
    if (!pol) throw Error(where, "router.drop_policy", "is \"" + dp + "\"", "expected dropless, position or score");
    c.router.drop_policy = *pol;
    c.router.renormalize = get_field<bool>(r, "renormalize", c.router.renormalize, where, "router.");
    c.router.routed_scaling = get_field<float>(r, "routed_scaling", c.router.routed_scaling, where, "router.");
    c.router.bias_update_rate = get_field<float>(r, "bias_update_rate", c.router.bias_update_rate, where, "router.");
    c.router.n_groups = get_field<int>(r, "n_groups", c.router.n_groups, where, "router.");
    c.router.topk_groups = get_field<int>(r, "topk_groups", c.router.topk_groups, where, "router.");
    c.router.sinkhorn_iters = get_field<int>(r, "sinkhorn_iters", c.router.sinkhorn_iters, where, "router.");
    try {
        validate(c);
    } catch (const Error& e) {
        throw Error(where, e.field(), e.problem(), e.hint());
    }
    return c;
}

// [SECTION] Tensor table
std::vector<LmTensorInfo> lm_tensor_infos(const LmConfig& c) {
    std::vector<LmTensorInfo> t;
    const int d = c.d_model;
    t.push_back({"tok_emb", c.vocab, d, true, true});
    if (!c.tie_embeddings) t.push_back({"head", c.vocab, d, true, true});
    t.push_back({"final_norm", d, 1, false, true});
    const int d_ff_shared = c.moe.d_ff_shared > 0 ? c.moe.d_ff_shared : c.moe.d_ff;
    for (int l = 0; l < c.n_layers; ++l) {
        const std::string p = "blocks." + num(l) + ".";
        t.push_back({p + "attn_norm", d, 1, false, true});
        t.push_back({p + "wq", d, d, true, true});
        t.push_back({p + "wk", d, d, true, true});
        t.push_back({p + "wv", d, d, true, true});
        t.push_back({p + "wo", d, d, true, true});
        t.push_back({p + "ffn_norm", d, 1, false, true});
        if (is_moe_layer(c, l)) {
            t.push_back({p + "moe.w_router", c.moe.n_experts, d, true, true});
            t.push_back({p + "moe.w_noise", c.moe.n_experts, d, false, false});
            t.push_back({p + "moe.expert_bias", c.moe.n_experts, 1, false, false});
            auto expert = [&](const std::string& q, int d_ff) {
                t.push_back({q + "w1", d_ff, d, true, true});
                t.push_back({q + "w3", d_ff, d, true, true});
                t.push_back({q + "w2", d, d_ff, true, true});
            };
            for (int e = 0; e < c.moe.n_experts; ++e) expert(p + "moe.experts." + num(e) + ".", c.moe.d_ff);
            for (int s = 0; s < c.moe.n_shared; ++s) expert(p + "moe.shared." + num(s) + ".", d_ff_shared);
        } else {
            t.push_back({p + "w1", c.d_ff_dense, d, true, true});
            t.push_back({p + "w3", c.d_ff_dense, d, true, true});
            t.push_back({p + "w2", d, c.d_ff_dense, true, true});
        }
    }
    return t;
}

std::vector<float*> lm_tensor_data(LmModel::Impl& m) {
    m.packed.reset();  // the caller may write through these pointers
    std::vector<float*> p;
    p.push_back(m.tok_emb.data());
    if (!m.cfg.tie_embeddings) p.push_back(m.head.data());
    p.push_back(m.final_norm.data());
    for (LmBlock& b : m.blocks) {
        p.push_back(b.attn_norm.data());
        p.push_back(b.wq.data());
        p.push_back(b.wk.data());
        p.push_back(b.wv.data());
        p.push_back(b.wo.data());
        p.push_back(b.ffn_norm.data());
        if (b.moe) {
            MoeLayerWeights& w = b.moe->mutable_weights();
            p.push_back(w.w_router.data());
            p.push_back(w.w_noise.data());
            p.push_back(w.expert_bias.data());
            for (ExpertWeights& e : w.experts) {
                p.push_back(e.w1.data());
                p.push_back(e.w3.data());
                p.push_back(e.w2.data());
            }
            for (ExpertWeights& e : w.shared) {
                p.push_back(e.w1.data());
                p.push_back(e.w3.data());
                p.push_back(e.w2.data());
            }
        } else {
            p.push_back(b.w1.data());
            p.push_back(b.w3.data());
            p.push_back(b.w2.data());
        }
    }
    return p;
}

// [SECTION] Ops (RMSNorm, RoPE, attention, SwiGLU)
namespace lm_ops {

void rmsnorm(ConstMatRef x, const Vec& gain, float eps, Mat& y, Vec* inv_rms) {
    const int n = static_cast<int>(x.rows());
    const int d = static_cast<int>(x.cols());
    y.resize(n, d);
    if (inv_rms) inv_rms->resize(n);
    for (int t = 0; t < n; ++t) {
        const float ms = x.row(t).squaredNorm() / static_cast<float>(d);
        const float r = 1.0f / std::sqrt(ms + eps);
        if (inv_rms) (*inv_rms)(t) = r;
        y.row(t) = x.row(t).cwiseProduct(gain.transpose()) * r;
    }
}

void rope(MatRef x, int n_heads, int pos0, const Mat& cos, const Mat& sin, float sign) {
    const int n = static_cast<int>(x.rows());
    const int hd = static_cast<int>(x.cols()) / n_heads;
    const int half = hd / 2;
    for (int t = 0; t < n; ++t) {
        const float* c = cos.row(pos0 + t).data();
        const float* s = sin.row(pos0 + t).data();
        float* row = x.row(t).data();
        for (int h = 0; h < n_heads; ++h) {
            float* a = row + h * hd;
            for (int i = 0; i < half; ++i) {
                const float x0 = a[i], x1 = a[i + half];
                const float si = sign * s[i];
                a[i] = x0 * c[i] - x1 * si;
                a[i + half] = x0 * si + x1 * c[i];
            }
        }
    }
}

void attention(ConstMatRef q, ConstMatRef k, ConstMatRef v, int n_heads, int pos0, MatRef out,
               std::vector<Mat>* probs) {
    const int n_q = static_cast<int>(q.rows());
    const int n_k = pos0 + n_q;
    MOE_ASSERT(k.rows() >= n_k && v.rows() >= n_k, "attention: keys must cover every query position");
    const int hd = static_cast<int>(q.cols()) / n_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    if (probs) {
        probs->resize(n_heads);
        for (Mat& p : *probs) p.setZero(n_q, n_k);
    }
    // Causal, in blocks of query rows: a block of rows [i0, i0 + rows) sees keys 0 .. pos0 + i0 +
    // rows - 1 only, so the scores above the diagonal are never computed (half the work of the
    // full n_q x n_k product at pos0 = 0). Heads are independent: one task per (head, block).
    constexpr int kBlock = 32;
    const int n_blocks = (n_q + kBlock - 1) / kBlock;
    const int n_tasks = n_heads * n_blocks;
    // Always inside this parallel region when there is more than one query: Eigen multiplies
    // the blocks single-threaded only inside a team of 2+ threads; outside one it splits even
    // these small products across threads that spin-wait on each other (see packed_gemm.h).
#pragma omp parallel for schedule(dynamic) if (n_q > 1)
    for (int task = 0; task < n_tasks; ++task) {
        const int h = task / n_blocks;
        const int i0 = (task % n_blocks) * kBlock;
        const int rows = std::min(kBlock, n_q - i0);
        const int keys = pos0 + i0 + rows;
        Mat s = (q.block(i0, h * hd, rows, hd) * k.block(0, h * hd, keys, hd).transpose()) * scale;  // (rows, keys)
        for (int r = 0; r < rows; ++r) {
            const int n_vis = pos0 + i0 + r + 1;  // query i0 + r sees keys 0 .. pos0 + i0 + r
            auto vis = s.row(r).head(n_vis).array();
            vis = (vis - vis.maxCoeff()).exp();
            vis *= 1.0f / vis.sum();
            s.row(r).tail(keys - n_vis).setZero();
        }
        out.block(i0, h * hd, rows, hd).noalias() = s * v.block(0, h * hd, keys, hd);
        if (probs) (*probs)[h].block(i0, 0, rows, keys) = s;
    }
}

void swiglu(ConstMatRef x, const Mat& w1, const Mat& w3, const Mat& w2, Mat& y, Mat* h_pre,
            Mat* h_lin, Mat* h_act) {
    Mat pre = x * w1.transpose();  // (n_tokens, d_ff)
    Mat lin = x * w3.transpose();  // (n_tokens, d_ff)
    Mat act = pre.unaryExpr([](float v) { return silu(v); }).cwiseProduct(lin);  // (n_tokens, d_ff)
    y.noalias() = act * w2.transpose();
    if (h_pre) *h_pre = std::move(pre);
    if (h_lin) *h_lin = std::move(lin);
    if (h_act) *h_act = std::move(act);
}

}  // namespace lm_ops

// [SECTION] Init
LmModel::LmModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
    for (const LmTensorInfo& t : lm_tensor_infos(impl_->cfg))
        if (t.trainable) impl_->n_params += int64_t{t.rows} * t.cols;
}
LmModel::LmModel(LmModel&&) noexcept = default;
LmModel& LmModel::operator=(LmModel&&) noexcept = default;
LmModel::~LmModel() = default;
const LmConfig& LmModel::config() const { return impl_->cfg; }
LmModel::Impl& LmModel::impl() { return *impl_; }
const LmModel::Impl& LmModel::impl() const { return *impl_; }

namespace {

void make_rope_tables(LmModel::Impl& m) {
    const int hd = m.cfg.d_model / m.cfg.n_heads;
    const int half = hd / 2;
    m.rope_cos.resize(m.cfg.max_seq, half);
    m.rope_sin.resize(m.cfg.max_seq, half);
    for (int p = 0; p < m.cfg.max_seq; ++p)
        for (int i = 0; i < half; ++i) {
            const double freq = std::pow(static_cast<double>(m.cfg.rope_theta), -2.0 * i / hd);
            m.rope_cos(p, i) = static_cast<float>(std::cos(p * freq));
            m.rope_sin(p, i) = static_cast<float>(std::sin(p * freq));
        }
}

// Zeros of every MoE tensor's shape: init() and load() overwrite them all, so a random fill
// (init_moe_layer) would only cost time, seconds for a large config.
MoeLayerWeights zero_moe_weights(const MoeLayerConfig& c) {
    const auto expert = [&](int d_ff) {
        ExpertWeights e;
        e.w1 = Mat::Zero(d_ff, c.d_model);
        e.w3 = Mat::Zero(d_ff, c.d_model);
        e.w2 = Mat::Zero(c.d_model, d_ff);
        return e;
    };
    MoeLayerWeights w;
    w.w_router = Mat::Zero(c.n_experts, c.d_model);
    w.w_noise = Mat::Zero(c.n_experts, c.d_model);
    w.expert_bias = Vec::Zero(c.n_experts);
    for (int e = 0; e < c.n_experts; ++e) w.experts.push_back(expert(c.d_ff));
    for (int s = 0; s < c.n_shared; ++s) w.shared.push_back(expert(c.d_ff_shared > 0 ? c.d_ff_shared : c.d_ff));
    return w;
}

// Allocates every tensor with its shape (zeros, norms at 1).
std::unique_ptr<LmModel::Impl> allocate(const LmConfig& cfg) {
    auto m = std::make_unique<LmModel::Impl>();
    m->cfg = cfg;
    const int d = cfg.d_model;
    m->tok_emb = Mat::Zero(cfg.vocab, d);
    if (!cfg.tie_embeddings) m->head = Mat::Zero(cfg.vocab, d);
    m->final_norm = Vec::Ones(d);
    m->blocks.resize(cfg.n_layers);
    for (int l = 0; l < cfg.n_layers; ++l) {
        LmBlock& b = m->blocks[l];
        b.attn_norm = Vec::Ones(d);
        b.ffn_norm = Vec::Ones(d);
        b.wq = Mat::Zero(d, d);
        b.wk = Mat::Zero(d, d);
        b.wv = Mat::Zero(d, d);
        b.wo = Mat::Zero(d, d);
        if (is_moe_layer(cfg, l)) {
            b.moe = std::make_unique<MoeLayer>(cfg.moe, zero_moe_weights(cfg.moe));
        } else {
            b.w1 = Mat::Zero(cfg.d_ff_dense, d);
            b.w3 = Mat::Zero(cfg.d_ff_dense, d);
            b.w2 = Mat::Zero(d, cfg.d_ff_dense);
        }
    }
    make_rope_tables(*m);
    return m;
}

void fill_normal(Mat& m, std::mt19937_64& rng, float stddev) {
    std::normal_distribution<float> nd(0.0f, stddev);
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
}

}  // namespace

LmModel LmModel::init(const LmConfig& cfg, uint64_t seed) {
    validate(cfg);
    std::unique_ptr<Impl> m = allocate(cfg);
    std::mt19937_64 rng(seed);
    const int d = cfg.d_model;
    const float s_in = 1.0f / std::sqrt(static_cast<float>(d));
    // Residual-branch outputs (wo, w2) are scaled down by sqrt(2 n_layers), as GPT-2 does, so the
    // residual stream does not grow with depth at init.
    const float s_out = s_in / std::sqrt(2.0f * cfg.n_layers);
    // Tied head: logits = rmsnorm(x) . emb, and rmsnorm(x) has norm sqrt(d), so std 0.5/sqrt(d)
    // starts the logits near 0.5 std: close to uniform, loss about ln 256 at step 0.
    fill_normal(m->tok_emb, rng, 0.5f * s_in);
    if (!cfg.tie_embeddings) fill_normal(m->head, rng, s_in);
    for (int l = 0; l < cfg.n_layers; ++l) {
        LmBlock& b = m->blocks[l];
        fill_normal(b.wq, rng, s_in);
        fill_normal(b.wk, rng, s_in);
        fill_normal(b.wv, rng, s_in);
        fill_normal(b.wo, rng, s_out);
        if (b.moe) {
            MoeLayerWeights w = init_moe_layer(cfg.moe, seed * 1000003ULL + static_cast<uint64_t>(l) + 1);
            for (ExpertWeights& e : w.experts) e.w2 *= 1.0f / std::sqrt(2.0f * cfg.n_layers);
            for (ExpertWeights& e : w.shared) e.w2 *= 1.0f / std::sqrt(2.0f * cfg.n_layers);
            b.moe = std::make_unique<MoeLayer>(cfg.moe, std::move(w));
        } else {
            fill_normal(b.w1, rng, s_in);
            fill_normal(b.w3, rng, s_in);
            fill_normal(b.w2, rng, 1.0f / std::sqrt(static_cast<float>(cfg.d_ff_dense) * 2.0f * cfg.n_layers));
        }
    }
    return LmModel(std::move(m));
}

void LmModel::set_backend(const Backend& backend) {
    for (LmBlock& b : impl_->blocks)
        if (b.moe) b.moe->set_backend(backend);
}

int64_t LmModel::n_params() const { return impl_->n_params; }

// [SECTION] Forward
// Every product of the forward goes through core/engine/packed_gemm.h: weights packed once, threads
// split each product into independent tasks. (Eigen's own threaded GEMM spin-waited its way to
// 40-60 ms for a 128-byte text on 2 cores; see packed_gemm.h.)
struct LmPackedBlock {
    PackedMatrix wqkv;         // (3 d_model, d_model): wq, wk, wv stacked, one product for all three
    PackedMatrix wo;           // (d_model, d_model)
    PackedMatrix w1, w3, w2;   // dense SwiGLU layers only
};
struct LmPackedWeights {
    std::vector<LmPackedBlock> blocks;  // (n_layers)
    PackedMatrix head;                  // (vocab, d_model)
};

namespace {

RouterConfig checked_router(const LmConfig& cfg, const RouterConfig& rc, const char* where) {
    if (rc.n_experts != cfg.moe.n_experts)
        throw Error(where, "router.n_experts", "is " + num(rc.n_experts),
                    "the model has " + num(cfg.moe.n_experts) + " experts per MoE layer");
    return rc;
}

const LmPackedWeights& packed_weights(const LmModel::Impl& m) {
    if (!m.packed) {
        auto pk = std::make_shared<LmPackedWeights>();
        pk->blocks.resize(m.blocks.size());
        for (size_t l = 0; l < m.blocks.size(); ++l) {
            const LmBlock& b = m.blocks[l];
            LmPackedBlock& p = pk->blocks[l];
            Mat qkv(3 * b.wq.rows(), b.wq.cols());
            qkv << b.wq, b.wk, b.wv;
            p.wqkv.pack(qkv);
            p.wo.pack(b.wo);
            if (!b.moe) {
                p.w1.pack(b.w1);
                p.w3.pack(b.w3);
                p.w2.pack(b.w2);
            }
        }
        pk->head.pack(m.head_weight());
        m.packed = std::move(pk);
    }
    return *m.packed;
}

// Scratch of one forward or step, reused across the layers.
struct Work {
    Mat h, qkv, att, y, ff_pre, ff_lin;
};

// One transformer block on rows at positions pos0 .. pos0 + n - 1 of x (n, d_model), with keys
// and values of earlier positions in k_all / v_all when they are not null (the KV cache: rows
// < pos0 filled, the block writes rows pos0 .. pos0 + n - 1). Routing trace to *trace.
void run_block(const LmModel::Impl& m, int l, int pos0, Mat& x, Mat* k_all, Mat* v_all,
               const RouterConfig& rc, std::span<const int32_t> ids, Work& w, RoutingTrace* trace,
               Mat* moe_input) {
    const LmConfig& c = m.cfg;
    const LmBlock& b = m.blocks[l];
    const LmPackedBlock& pb = packed_weights(m).blocks[static_cast<size_t>(l)];
    const int n = static_cast<int>(x.rows());
    const int d = c.d_model;
    lm_ops::rmsnorm(x, b.attn_norm, c.norm_eps, w.h);
    matmul_packed(w.h, pb.wqkv, w.qkv);  // (n, 3 d_model): q | k | v
    auto q = w.qkv.leftCols(d);
    auto k = w.qkv.middleCols(d, d);
    auto v = w.qkv.rightCols(d);
    lm_ops::rope(q, c.n_heads, pos0, m.rope_cos, m.rope_sin);
    lm_ops::rope(k, c.n_heads, pos0, m.rope_cos, m.rope_sin);
    w.att.resize(n, d);
    if (k_all) {
        k_all->middleRows(pos0, n) = k;
        v_all->middleRows(pos0, n) = v;
        lm_ops::attention(q, *k_all, *v_all, c.n_heads, pos0, w.att);
    } else {
        lm_ops::attention(q, k, v, c.n_heads, pos0, w.att);
    }
    matmul_packed(w.att, pb.wo, w.y);
    x += w.y;
    lm_ops::rmsnorm(x, b.ffn_norm, c.norm_eps, w.h);
    if (b.moe) {
        b.moe->forward(w.h, rc, ids, w.y, *trace);
        if (moe_input) *moe_input = w.h;
    } else {
        matmul_packed(w.h, pb.w1, w.ff_pre);
        matmul_packed(w.h, pb.w3, w.ff_lin);
        w.ff_pre = w.ff_pre.unaryExpr([](float t) { return silu(t); }).cwiseProduct(w.ff_lin);
        matmul_packed(w.ff_pre, pb.w2, w.y);
    }
    x += w.y;
}

}  // namespace

void LmModel::forward(std::span<const uint8_t> bytes, const LmRunOptions& opt, LmForward& out) const {
    const Impl& m = *impl_;
    const LmConfig& c = m.cfg;
    const int n = static_cast<int>(bytes.size());
    if (n < 1 || n > c.max_seq)
        throw Error("LmModel::forward", "bytes", "has length " + num(n), "expected 1.." + num(c.max_seq));
    const RouterConfig rc = checked_router(c, opt.router, "LmModel::forward");
    validate(rc, n);
    std::vector<int32_t> ids(bytes.begin(), bytes.end());  // (n) for Hash routing
    Mat x(n, c.d_model);  // (n, d_model) residual stream
    for (int t = 0; t < n; ++t) x.row(t) = m.tok_emb.row(bytes[t]);
    out.traces.clear();
    out.trace_layer.clear();
    out.moe_inputs.clear();
    Work w;
    for (int l = 0; l < c.n_layers; ++l) {
        RoutingTrace* trace = nullptr;
        Mat* moe_input = nullptr;
        if (m.blocks[l].moe) {
            trace = &out.traces.emplace_back();
            out.trace_layer.push_back(l);
            if (opt.keep_moe_inputs) moe_input = &out.moe_inputs.emplace_back();
        }
        run_block(m, l, 0, x, nullptr, nullptr, rc, ids, w, trace, moe_input);
    }
    lm_ops::rmsnorm(x, m.final_norm, c.norm_eps, w.h);
    matmul_packed(w.h, packed_weights(m).head, out.logits);
}

// [SECTION] Step (KV cache)
std::unique_ptr<LmModel::State> LmModel::new_state() const {
    auto st = std::make_unique<State>();
    const LmConfig& c = impl_->cfg;
    st->k_cache.assign(c.n_layers, Mat::Zero(c.max_seq, c.d_model));
    st->v_cache.assign(c.n_layers, Mat::Zero(c.max_seq, c.d_model));
    return st;
}

void LmModel::step(State& st, uint8_t byte, const LmRunOptions& opt, Vec& logits,
                   std::vector<RoutingTrace>* traces) const {
    const Impl& m = *impl_;
    const LmConfig& c = m.cfg;
    if (st.pos >= c.max_seq)
        throw Error("LmModel::step", "position", "is " + num(st.pos),
                    "the context is full at max_seq = " + num(c.max_seq) + " bytes; start a new state");
    const RouterConfig rc = checked_router(c, opt.router, "LmModel::step");
    validate(rc, 1);
    const int32_t id = byte;
    Mat x = m.tok_emb.row(byte);  // (1, d_model)
    if (traces) traces->clear();
    Work w;
    RoutingTrace local;
    for (int l = 0; l < c.n_layers; ++l) {
        RoutingTrace* trace = nullptr;
        if (m.blocks[l].moe) trace = traces ? &traces->emplace_back() : &local;
        run_block(m, l, st.pos, x, &st.k_cache[l], &st.v_cache[l], rc, std::span<const int32_t>(&id, 1), w,
                  trace, nullptr);
    }
    lm_ops::rmsnorm(x, m.final_norm, c.norm_eps, w.h);
    matmul_packed(w.h, packed_weights(m).head, w.y);
    logits = w.y.row(0).transpose();
    ++st.pos;
}

// [SECTION] Files
namespace {
std::string config_path_of(const std::string& path) {
    return std::filesystem::path(path).replace_extension(".json").string();
}

// The weights travel through core/safetensors (every format rule checked there); this file only
// matches them to the tensor table of the .json config. A vector (n, 1) is stored with shape [n].
std::vector<int64_t> file_shape(const LmTensorInfo& t) {
    if (t.cols == 1) return {t.rows};
    return {t.rows, t.cols};
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + num(shape[i]);
    return s + "]";
}

std::string tensor_field(const std::string& name) { return "tensor '" + name + "'"; }
}  // namespace

LmModel LmModel::load(const std::string& path) {
    const std::string cfg_path = config_path_of(path);
    std::string cfg_text;
    try {
        cfg_text = read_file(cfg_path, kMaxConfigBytes);
    } catch (const Error& e) {
        throw Error(cfg_path, "config", e.problem(), "a model is a .safetensors file with its .json config beside it");
    }
    const LmConfig cfg = lm_config_from_json(cfg_text, cfg_path);
    const std::vector<LmTensorInfo> infos = lm_tensor_infos(cfg);

    // Issue 15: a 61-byte config can ask for billions of parameters. Nothing is allocated for
    // the model until the file has been read and every tensor checked against the config's
    // table, and the config's total is bounded by the file first (2 bytes per value at least).
    int64_t n_values = 0;
    for (const LmTensorInfo& ti : infos) n_values += int64_t{ti.rows} * ti.cols;  // validate() bounds each layer
    std::error_code ec;
    const uintmax_t file_bytes = std::filesystem::file_size(path, ec);
    if (!ec && static_cast<uintmax_t>(n_values) > file_bytes / 2)
        throw Error(path, "size", "is " + num(static_cast<int64_t>(file_bytes)) + " bytes, too small for the " + num(n_values) +
                                      " weights its .json config describes", "the file does not match its .json config");
    const SafeTensorsFile file = read_safetensors(path);
    std::vector<const SafeTensor*> found(infos.size());
    for (size_t i = 0; i < infos.size(); ++i) {
        const LmTensorInfo& ti = infos[i];
        const std::string field = tensor_field(ti.name);
        const auto it = file.tensors.find(ti.name);
        if (it == file.tensors.end()) throw Error(path, field, "is missing", "the file does not match its .json config");
        const SafeTensor& t = it->second;
        const std::vector<int64_t> want = file_shape(ti);
        if (t.shape != want)
            throw Error(path, field, "has shape " + shape_text(t.shape),
                        "expected " + shape_text(want) + " from the .json config");
        if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16" && t.dtype != "F64")
            throw Error(path, field, "has dtype " + t.dtype, "expected floating-point weights (F32, F16, BF16 or F64)");
        MOE_ASSERT(static_cast<int64_t>(t.data.size()) == int64_t{ti.rows} * ti.cols, "the reader checked the byte size against the shape");
        for (size_t j = 0; j < t.data.size(); ++j)
            if (!std::isfinite(t.data[j]))
                throw Error(path, field, "holds a non-finite value at index " + num(static_cast<int64_t>(j)), "the weights are corrupt; retrain");
        found[i] = &t;
    }
    std::unique_ptr<Impl> m = allocate(cfg);
    const std::vector<float*> data = lm_tensor_data(*m);
    for (size_t i = 0; i < infos.size(); ++i) std::copy(found[i]->data.begin(), found[i]->data.end(), data[i]);
    for (LmBlock& b : m->blocks)
        if (b.moe) b.moe->mutable_weights();  // drop packed copies of the zero init
    return LmModel(std::move(m));
}

void LmModel::save(const std::string& path) const {
    LmModel::Impl& m = const_cast<LmModel::Impl&>(*impl_);
    const std::vector<LmTensorInfo> infos = lm_tensor_infos(m.cfg);
    const std::vector<float*> data = lm_tensor_data(m);
    SafeTensorsFile file;
    file.metadata["format"] = "moelab-lm";
    for (size_t i = 0; i < infos.size(); ++i) {
        SafeTensor t;
        t.dtype = "F32";
        t.shape = file_shape(infos[i]);
        t.data.assign(data[i], data[i] + int64_t{infos[i].rows} * infos[i].cols);
        file.tensors.emplace(infos[i].name, std::move(t));
    }
    write_safetensors(path, file);
    write_file_atomic(config_path_of(path), lm_config_to_json(m.cfg));
}

// [SECTION] Helpers
std::vector<std::pair<int, float>> top_next_bytes(const Eigen::Ref<const RowVec>& logits, int n) {
    const int v = static_cast<int>(logits.size());
    n = std::clamp(n, 0, v);
    const float mx = logits.maxCoeff();
    std::vector<std::pair<int, float>> p(v);
    double sum = 0.0;
    for (int i = 0; i < v; ++i) {
        const float e = std::exp(logits(i) - mx);
        p[i] = {i, e};
        sum += e;
    }
    for (auto& [b, pr] : p) pr = static_cast<float>(pr / sum);
    std::partial_sort(p.begin(), p.begin() + n, p.end(),
                      [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
    p.resize(n);
    return p;
}

std::string builtin_model_path() { return std::string(MOE_ASSETS_DIR) + "/tiny-moe-lm.safetensors"; }

}  // namespace moe
