// Hugging Face MoE decoders, one forward for every family: [RMSNorm -> attention (GQA with
// the per-family biases, q/k norms and clipping, or DeepSeek's MLA) -> residual -> RMSNorm ->
// FFN (engine MoeLayer + shared experts, or a dense SwiGLU MLP) -> residual] x n_layers ->
// RMSNorm -> head. Each step names the transformers code it follows.
//
// Memory: every matrix is held once, packed for the packed GEMM (core/engine/packed_gemm.h), in
// the checkpoint's own precision: a BF16 checkpoint stays BF16 (half of float32), packed straight
// from the memory-mapped shard; F32 (and F16, converted once to F32: see Checkpoint::take_packed)
// as F32 panels. The routed experts are packed by the CPU backend (cpu_backend_bf16() for BF16)
// and the MoE layer keeps only that pack (MoeLayer's packed-only constructor). The embedding
// table is its packed matrix too, rows read back per token (with tied embeddings it IS the head).
// Only small things stay float32: norms, biases, routers (their logits decide the routing).
//
// [SECTION] Weights
// [SECTION] Building blocks
// [SECTION] Attention
// [SECTION] Layers and the model
// [SECTION] Loading
#include "core/models/hf/hf_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/engine/backend.h"
#include "core/engine/packed_gemm.h"
#include "core/engine/rng.h"
#include "core/error.h"
#include "core/models/hf/hf_checkpoint.h"
#include "core/models/hf/hf_config.h"
#include "core/teach/params.h"
#include "core/io/file_io.h"

#if __has_include("core/text/hf_tokenizer.h")
#include "core/text/hf_tokenizer.h"
#define MOE_HAVE_HF_TOKENIZER 1
#endif

namespace moe::hf {

namespace fs = std::filesystem;

namespace {

// [SECTION] Weights
struct Linear {
    PackedMatrix w;  // (n_out, n_in) packed
    Vec b;           // (n_out) or empty
    int n_out() const { return w.n_out; }
};

// `name` is the full tensor name without ".weight".
Linear linear(WeightSource& ck, const std::string& name, int64_t n_out, int64_t n_in, bool bias = false) {
    Linear l;
    ck.take_packed(name + ".weight", n_out, n_in, l.w);
    if (bias) l.b = ck.take_vec(name + ".bias", n_out);
    return l;
}

size_t vec_bytes(const Vec& v) { return static_cast<size_t>(v.size()) * sizeof(float); }
size_t linear_bytes(const Linear& l) { return l.w.weight_bytes() + vec_bytes(l.b); }

struct Mlp {  // SwiGLU: down(silu(gate x) * up x)
    Linear gate, up, down;
    bool empty() const { return gate.n_out() == 0; }
    size_t bytes() const { return linear_bytes(gate) + linear_bytes(up) + linear_bytes(down); }
};

struct Layer {
    Vec attn_norm, ffn_norm;  // (d_model)
    // GQA
    Linear q, k, v, o;        // q (n_heads*head_dim, d_model), k/v (n_kv*head_dim, d_model), o (d_model, n_heads*head_dim)
    Vec q_norm, k_norm;       // (head_dim) per head, or the whole projection's width (olmoe)
    // MLA
    Linear q_a, q_b, kv_a, kv_b;  // q_a (q_lora, d), q_b (H*(nope+rope), q_lora), kv_a (kv_lora+rope, d), kv_b (H*(nope+v), kv_lora)
    Vec q_a_norm, kv_a_norm;      // (q_lora_rank), (kv_lora_rank)
    // FFN
    std::unique_ptr<MoeLayer> moe;  // routed experts (null in dense layers)
    Mlp shared;                     // shared experts as one MLP (empty if none)
    Linear shared_gate;             // qwen2_moe (1, d_model)
    Mlp dense;                      // dense layers' MLP
};

// [SECTION] Building blocks
void linear_fwd(ConstMatRef x, const Linear& l, Mat& y) {
    matmul_packed(x, l.w, y);
    if (l.b.size() > 0) y.rowwise() += l.b.transpose();
}

// transformers' RMSNorm: x * rsqrt(mean(x^2) + eps) * weight, over each `width` slice of a row.
void rmsnorm_slices(MatRef x, const Vec& w, float eps, int width) {
    for (Eigen::Index r = 0; r < x.rows(); ++r)
        for (Eigen::Index c0 = 0; c0 < x.cols(); c0 += width) {
            float* p = x.row(r).data() + c0;
            double ss = 0.0;
            for (int i = 0; i < width; ++i) ss += static_cast<double>(p[i]) * p[i];
            const float inv = 1.0f / std::sqrt(static_cast<float>(ss / width) + eps);
            for (int i = 0; i < width; ++i) p[i] = p[i] * inv * w[i];
        }
}

void rmsnorm(ConstMatRef x, const Vec& w, float eps, Mat& y) {
    y = x;
    rmsnorm_slices(y, w, eps, static_cast<int>(w.size()));
}

void mlp_fwd(ConstMatRef x, const Mlp& m, Mat& y) {
    Mat g, u;
    linear_fwd(x, m.gate, g);
    linear_fwd(x, m.up, u);
    for (Eigen::Index i = 0; i < g.size(); ++i) g.data()[i] = silu(g.data()[i]) * u.data()[i];
    linear_fwd(g, m.down, y);
}

// Rotates `dim` values at p (one head's rotated part) for position pos; cos and sin carry
// YaRN's attention factor as transformers' rotary embedding does.
void rope_head(float* p, int pos, const HfConfig& c) {
    const int half = c.rope_dim / 2;
    for (int i = 0; i < half; ++i) {
        const float angle = static_cast<float>(pos) * c.inv_freq[static_cast<size_t>(i)];
        const float cs = std::cos(angle) * c.rope_attention_factor, sn = std::sin(angle) * c.rope_attention_factor;
        float* a = c.rope_pairs == RopePairs::Half ? p + i : p + 2 * i;
        float* b = c.rope_pairs == RopePairs::Half ? p + i + half : p + 2 * i + 1;
        const float x0 = *a, x1 = *b;
        *a = x0 * cs - x1 * sn;
        *b = x1 * cs + x0 * sn;
    }
}

// [SECTION] Attention
// Causal softmax attention: q (n, H*dk) at positions pos0.., k (P, Hkv*dk) and v (P, Hkv*dv)
// from position 0 (P = pos0 + n); query head h reads kv head h / (H / Hkv) (GQA's repeat_kv).
void attend(ConstMatRef q, ConstMatRef k, ConstMatRef v, int n_heads, int n_kv, int dk, int dv, float scale, int pos0,
            Mat& out) {
    const int n = static_cast<int>(q.rows());
    out.setZero(n, static_cast<Eigen::Index>(n_heads) * dv);
    const int group = n_heads / n_kv;
    std::vector<float> w;
    for (int h = 0; h < n_heads; ++h) {
        const int kh = h / group;
        for (int r = 0; r < n; ++r) {
            const int n_keys = pos0 + r + 1;
            w.resize(static_cast<size_t>(n_keys));
            const float* qp = q.row(r).data() + static_cast<size_t>(h) * dk;
            float mx = -INFINITY;
            for (int j = 0; j < n_keys; ++j) {
                const float* kp = k.row(j).data() + static_cast<size_t>(kh) * dk;
                float s = 0.0f;
                for (int d = 0; d < dk; ++d) s += qp[d] * kp[d];
                w[static_cast<size_t>(j)] = s * scale;
                mx = std::max(mx, w[static_cast<size_t>(j)]);
            }
            float z = 0.0f;
            for (float& x : w) z += (x = std::exp(x - mx));
            float* op = out.row(r).data() + static_cast<size_t>(h) * dv;
            for (int j = 0; j < n_keys; ++j) {
                const float a = w[static_cast<size_t>(j)] / z;
                const float* vp = v.row(j).data() + static_cast<size_t>(kh) * dv;
                for (int d = 0; d < dv; ++d) op[d] += a * vp[d];
            }
        }
    }
}

// The KV cache of one layer: rows = positions. GQA keeps (P, n_kv*head_dim); MLA keeps the
// expanded per-head keys (P, H*(nope+rope)) and values (P, H*v_head_dim).
struct LayerCache {
    Mat k, v;
};

void append_rows(Mat& cache, int pos0, ConstMatRef rows) {
    if (cache.rows() < pos0 + rows.rows()) {
        const Eigen::Index cap = std::max<Eigen::Index>(pos0 + rows.rows(), 2 * cache.rows());
        cache.conservativeResize(cap, rows.cols());
    }
    cache.middleRows(pos0, rows.rows()) = rows;
}

// Self-attention of one layer on normed input h (n, d_model) at positions pos0..; k/v of these
// positions go into the cache, whose first pos0 rows hold the earlier ones.
void attention_fwd(const HfConfig& c, const Layer& L, ConstMatRef h, int pos0, LayerCache& cache, Mat& out) {
    const int n = static_cast<int>(h.rows());
    Mat q, k, v;
    int dk = c.head_dim, dv = c.head_dim, n_kv = c.n_kv_heads;
    if (!c.mla) {
        // Llama-style q/k/v (qwen2_moe biases), then q/k norms (qwen3 per head, olmoe whole), clip.
        linear_fwd(h, L.q, q);
        linear_fwd(h, L.k, k);
        linear_fwd(h, L.v, v);
        if (c.qk_norm == QkNorm::PerHead) {
            rmsnorm_slices(q, L.q_norm, c.norm_eps, c.head_dim);
            rmsnorm_slices(k, L.k_norm, c.norm_eps, c.head_dim);
        } else if (c.qk_norm == QkNorm::Whole) {
            rmsnorm_slices(q, L.q_norm, c.norm_eps, static_cast<int>(q.cols()));
            rmsnorm_slices(k, L.k_norm, c.norm_eps, static_cast<int>(k.cols()));
        }
        if (c.clip_qkv > 0.0f) {
            q = q.cwiseMax(-c.clip_qkv).cwiseMin(c.clip_qkv);
            k = k.cwiseMax(-c.clip_qkv).cwiseMin(c.clip_qkv);
            v = v.cwiseMax(-c.clip_qkv).cwiseMin(c.clip_qkv);
        }
        for (int r = 0; r < n; ++r) {
            for (int hh = 0; hh < c.n_heads; ++hh) rope_head(q.row(r).data() + static_cast<size_t>(hh) * dk, pos0 + r, c);
            for (int hh = 0; hh < n_kv; ++hh) rope_head(k.row(r).data() + static_cast<size_t>(hh) * dk, pos0 + r, c);
        }
    } else {
        // DeepSeek MLA: q through q_a -> q_a_layernorm -> q_b (or q_proj); k/v from the
        // compressed latent (kv_a_layernorm, kv_b) plus one shared rotary key k_pe.
        if (c.q_lora_rank > 0) {
            Mat qa;
            linear_fwd(h, L.q_a, qa);
            rmsnorm_slices(qa, L.q_a_norm, 1e-6f, c.q_lora_rank);
            linear_fwd(qa, L.q_b, q);
        } else {
            linear_fwd(h, L.q, q);
        }
        Mat ckv, kv;
        linear_fwd(h, L.kv_a, ckv);  // (n, kv_lora + rope)
        Mat latent = ckv.leftCols(c.kv_lora_rank);
        rmsnorm_slices(latent, L.kv_a_norm, 1e-6f, c.kv_lora_rank);
        linear_fwd(latent, L.kv_b, kv);  // (n, H*(nope + v))
        dk = c.qk_nope_dim + c.qk_rope_dim;
        dv = c.v_head_dim;
        n_kv = c.n_heads;
        k.resize(n, static_cast<Eigen::Index>(c.n_heads) * dk);
        v.resize(n, static_cast<Eigen::Index>(c.n_heads) * dv);
        for (int r = 0; r < n; ++r) {
            float* k_pe = ckv.row(r).data() + c.kv_lora_rank;
            rope_head(k_pe, pos0 + r, c);
            for (int hh = 0; hh < c.n_heads; ++hh) {
                rope_head(q.row(r).data() + static_cast<size_t>(hh) * dk + c.qk_nope_dim, pos0 + r, c);
                const float* src = kv.row(r).data() + static_cast<size_t>(hh) * (c.qk_nope_dim + dv);
                float* kd = k.row(r).data() + static_cast<size_t>(hh) * dk;
                std::copy(src, src + c.qk_nope_dim, kd);
                std::copy(k_pe, k_pe + c.qk_rope_dim, kd + c.qk_nope_dim);
                std::copy(src + c.qk_nope_dim, src + c.qk_nope_dim + dv, v.row(r).data() + static_cast<size_t>(hh) * dv);
            }
        }
    }
    append_rows(cache.k, pos0, k);
    append_rows(cache.v, pos0, v);
    Mat att;
    attend(q, cache.k.topRows(pos0 + n), cache.v.topRows(pos0 + n), c.n_heads, n_kv, dk, dv, c.attn_scale, pos0, att);
    linear_fwd(att, L.o, out);
}

// [SECTION] Layers and the model
struct HfState final : ModelState {
    std::vector<LayerCache> layers;
};

// The tokenizer of a folder: tokenizer.json through core/text when this build has it.
class IdsOnlyTokenizer final : public Tokenizer {
public:
    IdsOnlyTokenizer(int vocab, std::string path) : vocab_(vocab), path_(std::move(path)) {}
    std::string name() const override { return "token ids only"; }
    int32_t vocab_size() const override { return vocab_; }
    std::vector<TokenId> encode(std::string_view, bool) const override {
        throw Error(path_, "", "cannot be read by this build yet (no tokenizer.json support)",
                    "give token ids instead (moelab-cli route --token-ids 1,2,3)");
    }
    std::string decode(std::span<const TokenId> ids, bool) const override {
        std::string s;
        for (TokenId id : ids) s += token_bytes(id);
        return s;
    }
    std::string token_bytes(TokenId id) const override { return "<" + std::to_string(id) + ">"; }
    bool is_special(TokenId) const override { return false; }

private:
    int vocab_;
    std::string path_;
};

class HfModel final : public Model {
public:
    HfConfig cfg;
    ModelInfo info_;
    PackedMatrix embed;  // (vocab, d_model) embed_tokens; empty when tied (the head is the table)
    Vec final_norm;      // (d_model)
    Linear head;         // (vocab, d_model): lm_head, or embed_tokens when tied
    uint64_t resident_bytes_ = 0;
    WeightType experts_type = WeightType::F32;  // the routed experts' packs
    std::vector<Layer> layers;
    std::unique_ptr<Tokenizer> tok;
    int64_t n_params_ = 0;

    const ModelInfo& info() const override { return info_; }
    const Tokenizer& tokenizer() const override { return *tok; }
    int64_t n_params() const override { return n_params_; }
    uint64_t resident_weight_bytes() const override { return resident_bytes_; }
    const PackedMatrix& embed_table() const { return cfg.tie_embeddings ? head.w : embed; }
    // The experts exist only as the CPU backend's pack (no float32 copy to give another device);
    // both CPU backends run a pack of either precision the same way (the panels carry their type).
    void set_backend(const Backend& backend) override {
        if (&backend == &cpu_backend() || &backend == &cpu_backend_bf16()) return;
        throw Error(info_.name, "device", std::string("is ") + backend.name() +
                                              ", but a Hugging Face checkpoint's experts are held packed for the CPU only (no float32 copy is kept)",
                    "run it on the CPU");
    }
    std::vector<MoeLayer*> moe_layers() override {
        std::vector<MoeLayer*> out;
        for (Layer& l : layers)
            if (l.moe) out.push_back(l.moe.get());
        return out;
    }

    // Runs tokens at positions pos0.. through every layer, appending to the caches.
    void run(std::span<const TokenId> tokens, int pos0, const ModelRunOptions& opt, std::vector<LayerCache>& caches,
             Mat& logits, std::vector<RoutingTrace>* traces, std::vector<int>* trace_layer, std::vector<Mat>* moe_inputs) const {
        const int n = static_cast<int>(tokens.size());
        if (opt.router.n_experts != cfg.n_experts)
            throw Error("Hugging Face model", "router.n_experts", "is " + num(opt.router.n_experts), "the model has " + num(cfg.n_experts) + " experts");
        validate(opt.router, n);
        Mat x(n, cfg.d_model);  // (n, d_model) residual stream
        const PackedMatrix& table = embed_table();
        for (int t = 0; t < n; ++t) {
            table.row_to_float(tokens[static_cast<size_t>(t)], x.row(t).data());
            x.row(t) *= cfg.embedding_multiplier;
        }
        if (traces) traces->clear();
        if (trace_layer) trace_layer->clear();
        if (moe_inputs) moe_inputs->clear();
        Mat h, a, y;
        for (int l = 0; l < cfg.n_layers; ++l) {
            const Layer& L = layers[static_cast<size_t>(l)];
            rmsnorm(x, L.attn_norm, cfg.norm_eps, h);
            attention_fwd(cfg, L, h, pos0, caches[static_cast<size_t>(l)], a);
            x += a * cfg.residual_multiplier;
            rmsnorm(x, L.ffn_norm, cfg.norm_eps, h);
            if (L.moe) {
                RoutingTrace local;
                RoutingTrace* tr = traces ? &traces->emplace_back() : &local;
                if (trace_layer) trace_layer->push_back(l);
                if (moe_inputs) moe_inputs->push_back(h);
                L.moe->forward(h, opt.router, tokens, y, *tr);
                if (opt.router.shared_experts && !L.shared.empty()) {
                    Mat s;
                    mlp_fwd(h, L.shared, s);
                    if (L.shared_gate.n_out() > 0) {  // qwen2_moe: sigmoid(shared_expert_gate(x)) * shared_expert(x)
                        Mat g;
                        linear_fwd(h, L.shared_gate, g);
                        for (int t = 0; t < n; ++t) s.row(t) *= 1.0f / (1.0f + std::exp(-g(t, 0)));
                    }
                    y += s;
                }
            } else {
                mlp_fwd(h, L.dense, y);
            }
            x += y * cfg.residual_multiplier;
        }
        rmsnorm(x, final_norm, cfg.norm_eps, h);
        linear_fwd(h, head, logits);
        if (cfg.logits_scaling != 1.0f) logits /= cfg.logits_scaling;
    }

    void forward(std::span<const TokenId> tokens, const ModelRunOptions& opt, ModelForward& out) const override {
        check_tokens(tokens, info_.vocab, info_.max_seq, "Hugging Face model forward");
        std::vector<LayerCache> caches(static_cast<size_t>(cfg.n_layers));
        run(tokens, 0, opt, caches, out.logits, &out.traces, &out.trace_layer, opt.keep_moe_inputs ? &out.moe_inputs : nullptr);
        if (!opt.keep_moe_inputs) out.moe_inputs.clear();
    }

    std::unique_ptr<ModelState> new_state() const override {
        auto st = std::make_unique<HfState>();
        st->layers.resize(static_cast<size_t>(cfg.n_layers));
        return st;
    }

    void step(ModelState& st, TokenId token, const ModelRunOptions& opt, Vec& logits,
              std::vector<RoutingTrace>* traces) const override {
        auto* s = dynamic_cast<HfState*>(&st);
        MOE_ASSERT(s != nullptr, "a state from another model was passed to a Hugging Face model");
        if (s->pos >= info_.max_seq)
            throw Error("Hugging Face model step", "position", "is " + num(s->pos), "the context is full at " + num(info_.max_seq) + " tokens");
        const TokenId one[1] = {token};
        check_tokens(one, info_.vocab, info_.max_seq, "Hugging Face model step");
        Mat out;
        run(one, s->pos, opt, s->layers, out, traces, nullptr, nullptr);
        logits = out.row(0).transpose();
        ++s->pos;
    }
};

// [SECTION] Loading
// Layer tensor names end in ".weight"; linear() adds it back.
std::string weight_base(int l, const char* pattern, int expert = -1) {
    std::string s = layer_tensor(l, pattern, expert);
    return s.substr(0, s.size() - std::string_view(".weight").size());
}

Mlp load_mlp(WeightSource& ck, int l, const char* gate, const char* up, const char* down, int d_ff, int d) {
    Mlp m;
    m.gate = linear(ck, weight_base(l, gate), d_ff, d);
    m.up = linear(ck, weight_base(l, up), d_ff, d);
    m.down = linear(ck, weight_base(l, down), d, d_ff);
    return m;
}

std::unique_ptr<MoeLayer> load_moe(WeightSource& ck, const HfConfig& c, const ArchTensorNames& names, int l) {
    MoeLayerConfig mc;
    mc.d_model = c.d_model;
    mc.d_ff = c.d_ff_expert;
    mc.n_experts = c.n_experts;
    mc.activation = Activation::SwiGLU;
    MoeLayerWeights w;
    w.w_router = ck.take(layer_tensor(l, names.router), c.n_experts, c.d_model);
    std::vector<ExpertWeights> experts(static_cast<size_t>(c.n_experts));
    // The engine's noisy top-K knob needs a noise projection; a trained model has none, so it is
    // zero: the noise is then eps * softplus(0), the same spread for every expert.
    w.w_noise = Mat::Zero(c.n_experts, c.d_model);
    w.expert_bias = *names.router_bias ? ck.take_vec(layer_tensor(l, names.router_bias), c.n_experts) : Vec::Zero(c.n_experts);
    if (*names.fused_input) {
        // GraniteMoeParallelExperts: input_linear (E, 2 d_ff, d) is chunked into silu(first half) * second half.
        const std::vector<Mat> in = ck.take_stack(layer_tensor(l, names.fused_input), c.n_experts, 2 * c.d_ff_expert, c.d_model);
        const std::vector<Mat> out = ck.take_stack(layer_tensor(l, names.fused_output), c.n_experts, c.d_model, c.d_ff_expert);
        for (int e = 0; e < c.n_experts; ++e) {
            ExpertWeights& x = experts[static_cast<size_t>(e)];
            x.w1 = in[static_cast<size_t>(e)].topRows(c.d_ff_expert);
            x.w3 = in[static_cast<size_t>(e)].bottomRows(c.d_ff_expert);
            x.w2 = out[static_cast<size_t>(e)];
        }
    } else {
        for (int e = 0; e < c.n_experts; ++e) {
            ExpertWeights& x = experts[static_cast<size_t>(e)];
            x.w1 = ck.take(layer_tensor(l, names.expert_gate, e), c.d_ff_expert, c.d_model);
            x.w3 = ck.take(layer_tensor(l, names.expert_up, e), c.d_ff_expert, c.d_model);
            x.w2 = ck.take(layer_tensor(l, names.expert_down, e), c.d_model, c.d_ff_expert);
        }
    }
    // The float32 experts above are this layer's only (transient: one layer's worth at a time);
    // the layer keeps the pack, BF16 for a BF16 checkpoint. Packing from the file's BF16 bits
    // directly would need a Backend::pack_experts taking them (the CPU backend packs from Mat).
    const Backend& be = ck.weight_type() == WeightType::BF16 ? cpu_backend_bf16() : cpu_backend();
    std::unique_ptr<PackedExperts> packed = be.pack_experts(experts, mc.activation);
    return std::make_unique<MoeLayer>(mc, std::move(w), be, std::move(packed));
}

Layer load_layer(WeightSource& ck, const HfConfig& c, int l) {
    const ArchTensorNames& names = tensor_names(c.arch);
    Layer L;
    const int d = c.d_model;
    L.attn_norm = ck.take_vec(layer_tensor(l, "input_layernorm.weight"), d);
    L.ffn_norm = ck.take_vec(layer_tensor(l, "post_attention_layernorm.weight"), d);
    const std::string a = layer_tensor(l, "self_attn.");
    if (!c.mla) {
        const int q_out = c.n_heads * c.head_dim, kv_out = c.n_kv_heads * c.head_dim;
        L.q = linear(ck, a + "q_proj", q_out, d, c.qkv_bias);
        L.k = linear(ck, a + "k_proj", kv_out, d, c.qkv_bias);
        L.v = linear(ck, a + "v_proj", kv_out, d, c.qkv_bias);
        L.o = linear(ck, a + "o_proj", d, q_out, c.o_bias);
        if (c.qk_norm == QkNorm::PerHead) {
            L.q_norm = ck.take_vec(a + "q_norm.weight", c.head_dim);
            L.k_norm = ck.take_vec(a + "k_norm.weight", c.head_dim);
        } else if (c.qk_norm == QkNorm::Whole) {
            L.q_norm = ck.take_vec(a + "q_norm.weight", q_out);
            L.k_norm = ck.take_vec(a + "k_norm.weight", kv_out);
        }
    } else {
        const int qk = c.qk_nope_dim + c.qk_rope_dim;
        if (c.q_lora_rank > 0) {
            L.q_a = linear(ck, a + "q_a_proj", c.q_lora_rank, d, c.o_bias);
            L.q_a_norm = ck.take_vec(a + "q_a_layernorm.weight", c.q_lora_rank);
            L.q_b = linear(ck, a + "q_b_proj", c.n_heads * qk, c.q_lora_rank);
        } else {
            L.q = linear(ck, a + "q_proj", c.n_heads * qk, d);
        }
        L.kv_a = linear(ck, a + "kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_dim, d, c.o_bias);
        L.kv_a_norm = ck.take_vec(a + "kv_a_layernorm.weight", c.kv_lora_rank);
        L.kv_b = linear(ck, a + "kv_b_proj", c.n_heads * (c.qk_nope_dim + c.v_head_dim), c.kv_lora_rank);
        L.o = linear(ck, a + "o_proj", d, c.n_heads * c.v_head_dim, c.o_bias);
    }
    if (c.moe_layer[static_cast<size_t>(l)]) {
        L.moe = load_moe(ck, c, names, l);
        if (c.n_shared > 0)
            L.shared = load_mlp(ck, l, names.shared_gate, names.shared_up, names.shared_down, c.d_ff_shared, d);
        if (c.shared_gate) L.shared_gate = linear(ck, weight_base(l, names.shared_expert_gate), 1, d);
    } else {
        L.dense = load_mlp(ck, l, names.dense_gate, names.dense_up, names.dense_down, c.d_ff_dense, d);
    }
    return L;
}

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& folder, int vocab) {
    const std::string path = (fs::path(folder) / "tokenizer.json").string();
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw Error(folder, "tokenizer.json", "is missing", "a Hugging Face model folder carries its tokenizer.json beside config.json");
#ifdef MOE_HAVE_HF_TOKENIZER
    std::unique_ptr<Tokenizer> t = load_hf_tokenizer(path);
    if (t->vocab_size() > vocab)
        throw Error(path, "vocab", "has " + num(t->vocab_size()) + " tokens", "at most the model's vocab_size = " + num(vocab));
    return t;
#else
    return std::make_unique<IdsOnlyTokenizer>(vocab, path);
#endif
}

int64_t count_stored(const HfModel& m) {
    int64_t n = static_cast<int64_t>(m.embed_table().n_out) * m.embed_table().n_in + m.final_norm.size();
    if (!m.cfg.tie_embeddings) n += static_cast<int64_t>(m.head.w.n_out) * m.head.w.n_in;
    auto lin = [](const Linear& l) { return static_cast<int64_t>(l.w.n_out) * l.w.n_in + l.b.size(); };
    for (const Layer& L : m.layers) {
        n += L.attn_norm.size() + L.ffn_norm.size() + L.q_norm.size() + L.k_norm.size() + L.q_a_norm.size() + L.kv_a_norm.size();
        for (const Linear* l : {&L.q, &L.k, &L.v, &L.o, &L.q_a, &L.q_b, &L.kv_a, &L.kv_b, &L.shared_gate, &L.shared.gate,
                                &L.shared.up, &L.shared.down, &L.dense.gate, &L.dense.up, &L.dense.down})
            n += lin(*l);
        if (L.moe) n += count_params(L.moe->config(), false, 0) + (L.moe->weights().expert_bias.size() && tensor_names(m.cfg.arch).router_bias[0] ? m.cfg.n_experts : 0);
    }
    return n;
}

// What the model holds: every packed matrix's panels, the experts' packs (the CPU backend's
// three packed matrices per expert), norms, biases, routers.
uint64_t count_resident_bytes(const HfModel& m) {
    uint64_t b = m.embed.weight_bytes() + linear_bytes(m.head) + vec_bytes(m.final_norm);
    for (const Layer& L : m.layers) {
        b += vec_bytes(L.attn_norm) + vec_bytes(L.ffn_norm) + vec_bytes(L.q_norm) + vec_bytes(L.k_norm) + vec_bytes(L.q_a_norm) +
             vec_bytes(L.kv_a_norm);
        for (const Linear* l : {&L.q, &L.k, &L.v, &L.o, &L.q_a, &L.q_b, &L.kv_a, &L.kv_b, &L.shared_gate}) b += linear_bytes(*l);
        b += L.shared.bytes() + L.dense.bytes();
        if (!L.moe) continue;
        const MoeLayerConfig& mc = L.moe->config();
        const MoeLayerWeights& w = L.moe->weights();
        const WeightType t = m.experts_type;
        b += static_cast<uint64_t>(mc.n_experts) *
             (2 * PackedMatrix::packed_bytes(t, mc.d_ff, mc.d_model) + PackedMatrix::packed_bytes(t, mc.d_model, mc.d_ff));
        b += static_cast<uint64_t>(w.w_router.size() + w.w_noise.size()) * sizeof(float) + vec_bytes(w.b_router) + vec_bytes(w.expert_bias);
    }
    return b;
}

}  // namespace

uint64_t available_memory_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    uint64_t kb = 0;
    std::string unit;
    while (in >> key >> kb >> unit)
        if (key == "MemAvailable:") return kb * 1024;
    return 0;
}

uint64_t hf_model_memory_bytes(const std::string& folder) { return summarize_checkpoint(folder).resident_bytes; }

namespace {

// The model's weights from a source (a checkpoint, or random), layer by layer.
std::unique_ptr<HfModel> build_model(WeightSource& ck, const HfConfig& cfg, const std::string& where) {
    auto m = std::make_unique<HfModel>();
    m->experts_type = ck.weight_type();
    if (cfg.tie_embeddings) {
        if (ck.has("lm_head.weight"))
            throw Error(where, "tensor 'lm_head.weight'", "is present but tie_word_embeddings is true", "one of the two is wrong");
        m->head = linear(ck, "model.embed_tokens", cfg.vocab, cfg.d_model);
    } else {
        m->embed = linear(ck, "model.embed_tokens", cfg.vocab, cfg.d_model).w;
        m->head = linear(ck, "lm_head", cfg.vocab, cfg.d_model);
    }
    m->final_norm = ck.take_vec("model.norm.weight", cfg.d_model);
    for (int l = 0; l < cfg.n_layers; ++l) m->layers.push_back(load_layer(ck, cfg, l));
    return m;
}

// What the session and the app show about it, and the counts.
void describe(HfModel& m, HfConfig cfg, ModelConfig counted, std::string name, std::string source, std::unique_ptr<Tokenizer> tok) {
    ModelInfo& info = m.info_;
    info.name = std::move(name);
    info.source = std::move(source);
    info.vocab = cfg.vocab;
    info.d_model = cfg.d_model;
    info.n_layers = cfg.n_layers;
    info.max_seq = std::min(cfg.max_position, 4096);
    info.moe.d_model = cfg.d_model;
    info.moe.d_ff = cfg.d_ff_expert;
    info.moe.n_experts = cfg.n_experts;
    info.moe.n_shared = cfg.n_shared;
    info.moe.d_ff_shared = cfg.n_shared > 0 ? cfg.d_ff_shared / cfg.n_shared : 0;
    info.trained_router = cfg.router;
    for (int l = 0; l < cfg.n_layers; ++l)
        if (cfg.moe_layer[static_cast<size_t>(l)]) info.moe_layer_index.push_back(l);
    info.counted = std::move(counted);
    info.routing_notes = cfg.routing_notes;
    m.cfg = std::move(cfg);
    m.tok = std::move(tok);
    m.n_params_ = count_stored(m);
    m.resident_bytes_ = count_resident_bytes(m);
}

// Random weights by tensor name, made when taken (a seed per name): matrices uniform with the
// variance 1/n_in of a trained layer's scale, norms 1, other vectors small. Nothing is read.
class RandomWeights final : public WeightSource {
public:
    RandomWeights(WeightType type, uint64_t seed) : type_(type), seed_(seed) {}
    bool has(const std::string&) const override { return false; }  // nothing beyond what the config names
    Mat take(const std::string& name, int64_t rows, int64_t cols) override {
        Mat m(rows, cols);
        fill(name, m.data(), m.size(), 1.0f / std::sqrt(static_cast<float>(cols)));
        return m;
    }
    Vec take_vec(const std::string& name, int64_t n) override {
        if (name.ends_with("norm.weight")) return Vec::Ones(n);
        Vec v(n);
        fill(name, v.data(), n, 0.02f);
        return v;
    }
    std::vector<Mat> take_stack(const std::string& name, int64_t n, int64_t rows, int64_t cols) override {
        std::vector<Mat> out;
        for (int64_t i = 0; i < n; ++i) out.push_back(take(name + "#" + std::to_string(i), rows, cols));
        return out;
    }
    void take_packed(const std::string& name, int64_t rows, int64_t cols, PackedMatrix& w) override {
        const Mat m = take(name, rows, cols);
        if (type_ == WeightType::BF16) w.pack_bf16(m);
        else w.pack(m);
    }
    WeightType weight_type() const override { return type_; }

private:
    void fill(const std::string& name, float* p, int64_t n, float stddev) const {
        uint64_t h = 1469598103934665603ull;  // FNV-1a of the name: the same tensor, the same values
        for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
        Rng rng(seed_ ^ h);
        const float a = stddev * std::sqrt(3.0f);  // U(-a, a) has variance a^2 / 3
        for (int64_t i = 0; i < n; ++i) p[i] = a * static_cast<float>(2.0 * rng.uniform() - 1.0);
    }
    WeightType type_;
    uint64_t seed_;
};

}  // namespace

std::unique_ptr<Model> open_hf_model(const std::string& folder, const OpenOptions& opt) {
    const std::string config_path = (fs::path(folder) / "config.json").string();
    std::error_code ec;
    if (!fs::exists(config_path, ec))
        throw Error(folder, "config.json", "is missing", "a Hugging Face model folder (config.json, *.safetensors, tokenizer.json)");
    HfConfig cfg = read_hf_config(config_path);
    auto tok = open_tokenizer(folder, cfg.vocab);
    const uint64_t need = hf_model_memory_bytes(folder);
    const uint64_t have = opt.memory_limit ? opt.memory_limit : available_memory_bytes();
    if (have > 0 && need > have) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "needs %.2f GB for its weights but %.2f GB of memory is available",
                      static_cast<double>(need) / 1e9, static_cast<double>(have) / 1e9);
        throw Error(folder, "", buf, "close other programs, or pick a smaller model (README: which models fit in how much RAM)");
    }
    Checkpoint ck = Checkpoint::open(folder, opt.progress, opt.user);
    std::unique_ptr<HfModel> m = build_model(ck, cfg, folder);
    const std::vector<std::string> left = ck.untaken();
    if (!left.empty())
        throw Error(folder, "tensor '" + left.front() + "'", "is not part of a " + cfg.model_type + " model with this config" +
                    (left.size() > 1 ? " (and " + num(static_cast<int64_t>(left.size()) - 1) + " more)" : ""),
                    "check config.json against the checkpoint");
    const std::string name = cfg.model_type + " (" + fs::path(folder).filename().string() + ", " + ck.dtype() + ")";
    describe(*m, std::move(cfg), load_model_config(config_path), name, folder, std::move(tok));
    return m;
}

std::unique_ptr<Model> random_hf_model(std::string_view config_json, int n_layers_built, WeightType type, uint64_t seed) {
    const std::string where = "random_hf_model config";
    HfConfig cfg = parse_hf_config(config_json, where);
    if (n_layers_built < 0 || n_layers_built > cfg.n_layers)
        throw Error(where, "n_layers_built", "is " + num(n_layers_built), "0 .. num_hidden_layers = " + num(cfg.n_layers));
    cfg.n_layers = n_layers_built;
    cfg.moe_layer.resize(static_cast<size_t>(n_layers_built));
    RandomWeights w(type, seed);
    std::unique_ptr<HfModel> m = build_model(w, cfg, where);
    const int vocab = cfg.vocab;
    const std::string name = cfg.model_type + " (random, " + (type == WeightType::BF16 ? "BF16" : "F32") + ")";
    describe(*m, std::move(cfg), parse_model_config(config_json, where), name, "", std::make_unique<IdsOnlyTokenizer>(vocab, where));
    return m;
}

}  // namespace moe::hf
