// A straightforward per-token reference forward of the Hugging Face MoE architectures, written
// apart from the loader (core/models/hf/) and mirroring transformers' modeling_<arch>.py line by
// line: llama's rotate_half, DeepSeek-V2's complex rotary product, V3's interleave permutation,
// softmax-then-top-K routers, V3's biased group selection, qwen2_moe's gated shared expert,
// granite's multipliers. Reads config.json and the safetensors files by their Hub names. Slow
// on purpose: plain loops over vectors, no packing, no batching.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "core/io/file_io.h"
#include "core/io/safetensors.h"

namespace moe::ref {

using nlohmann::json;
using V = std::vector<float>;

struct RefResult {
    std::vector<V> logits;                          // (n_tokens) each (vocab)
    std::vector<std::vector<std::vector<int>>> chosen;  // (n_moe_layers, n_tokens) sorted expert ids
    std::vector<std::vector<float>> margin;         // (n_moe_layers, n_tokens) k-th minus (k+1)-th selection score
};

class RefModel {
public:
    explicit RefModel(const std::string& folder) {
        namespace fs = std::filesystem;
        cfg_ = json::parse(read_file((fs::path(folder) / "config.json").string()));
        std::vector<std::string> files;
        if (fs::exists(fs::path(folder) / "model.safetensors")) {
            files.push_back((fs::path(folder) / "model.safetensors").string());
        } else {
            const json idx = json::parse(read_file((fs::path(folder) / "model.safetensors.index.json").string()));
            for (const auto& [name, f] : idx["weight_map"].items()) {
                const std::string p = (fs::path(folder) / f.get<std::string>()).string();
                if (std::find(files.begin(), files.end(), p) == files.end()) files.push_back(p);
            }
        }
        for (const std::string& f : files)
            for (auto& [name, t] : read_safetensors(f).tensors) w_[name] = std::move(t.data);
        type_ = cfg_["model_type"];
    }

    RefResult forward(const std::vector<int>& ids) const {
        const int n = static_cast<int>(ids.size());
        const int d = geti("hidden_size");
        const int n_layers = geti("num_hidden_layers");
        const float eps = static_cast<float>(getd("rms_norm_eps", 1e-6));
        const bool granite = type_ == "granitemoe";
        std::vector<V> x(static_cast<size_t>(n));
        for (int t = 0; t < n; ++t) {
            x[t] = row("model.embed_tokens.weight", ids[t], d);
            if (granite) for (float& v : x[t]) v *= static_cast<float>(getd("embedding_multiplier", 1.0));
        }
        const float resid = granite ? static_cast<float>(getd("residual_multiplier", 1.0)) : 1.0f;
        RefResult res;
        for (int l = 0; l < n_layers; ++l) {
            const std::string p = "model.layers." + std::to_string(l) + ".";
            std::vector<V> h(n), a(n);
            for (int t = 0; t < n; ++t) h[t] = rmsnorm(x[t], p + "input_layernorm.weight", eps);
            if (is_mla()) mla(p, h, a); else gqa(p, h, a);
            for (int t = 0; t < n; ++t)
                for (int i = 0; i < d; ++i) x[t][i] += a[t][i] * resid;
            const bool moe = is_moe_layer(l);
            if (moe) {
                res.chosen.emplace_back(n);
                res.margin.emplace_back(n);
            }
            for (int t = 0; t < n; ++t) {
                const V h2 = rmsnorm(x[t], p + "post_attention_layernorm.weight", eps);
                V y = moe ? moe_block(p, h2, &res.chosen.back()[t], &res.margin.back()[t]) : mlp(p + "mlp.", h2, geti("intermediate_size"));
                for (int i = 0; i < d; ++i) x[t][i] += y[i] * resid;
            }
        }
        const std::string head = cfg_.value("tie_word_embeddings", false) ? "model.embed_tokens.weight" : "lm_head.weight";
        for (int t = 0; t < n; ++t) {
            V hN = rmsnorm(x[t], "model.norm.weight", eps);
            V lg = matvec(head, hN, geti("vocab_size"), d);
            if (granite) for (float& v : lg) v /= static_cast<float>(getd("logits_scaling", 1.0));
            res.logits.push_back(lg);
        }
        return res;
    }

private:
    json cfg_;
    std::string type_;
    std::map<std::string, std::vector<float>> w_;

    int geti(const char* k) const { return cfg_[k].get<int>(); }
    double getd(const char* k, double fallback) const { return cfg_.contains(k) && !cfg_[k].is_null() ? cfg_[k].get<double>() : fallback; }
    bool is_mla() const { return type_ == "deepseek_v2" || type_ == "deepseek_v3" || type_ == "kimi_k2"; }
    const std::vector<float>& W(const std::string& name) const { return w_.at(name); }
    bool has(const std::string& name) const { return w_.count(name) > 0; }

    V row(const std::string& name, int r, int cols) const {
        const std::vector<float>& m = W(name);
        return V(m.begin() + static_cast<long>(r) * cols, m.begin() + static_cast<long>(r + 1) * cols);
    }
    // nn.Linear: y = W x (+ b), W (out, in).
    V matvec(const std::string& name, const V& in, int out, int n_in, const std::string& bias = "") const {
        const std::vector<float>& m = W(name);
        V y(static_cast<size_t>(out), 0.0f);
        for (int o = 0; o < out; ++o) {
            float s = 0.0f;
            for (int i = 0; i < n_in; ++i) s += m[static_cast<size_t>(o) * n_in + i] * in[i];
            y[o] = s + (bias.empty() ? 0.0f : W(bias)[o]);
        }
        return y;
    }
    V rmsnorm(const V& in, const std::string& weight, float eps, int off = 0, int len = -1) const {
        if (len < 0) len = static_cast<int>(in.size());
        float var = 0.0f;
        for (int i = 0; i < len; ++i) var += in[off + i] * in[off + i];
        var /= len;
        const float inv = 1.0f / std::sqrt(var + eps);
        V out(in.begin() + off, in.begin() + off + len);
        for (int i = 0; i < len; ++i) out[i] = W(weight)[i] * (out[i] * inv);
        return out;
    }
    static float silu(float v) { return v / (1.0f + std::exp(-v)); }
    V mlp(const std::string& p, const V& h, int inter) const {  // down(act(gate(x)) * up(x))
        const int d = static_cast<int>(h.size());
        V g = matvec(p + "gate_proj.weight", h, inter, d), u = matvec(p + "up_proj.weight", h, inter, d);
        for (int i = 0; i < inter; ++i) g[i] = silu(g[i]) * u[i];
        return matvec(p + "down_proj.weight", g, d, inter);
    }

    bool is_moe_layer(int l) const {
        if (type_ == "qwen2_moe" || type_ == "qwen3_moe") {
            for (const json& e : cfg_.value("mlp_only_layers", json::array()))
                if (e.get<int>() == l) return false;
            return (l + 1) % cfg_.value("decoder_sparse_step", 1) == 0;
        }
        if (is_mla()) return l >= cfg_.value("first_k_dense_replace", 0);
        return true;
    }

    // --- rotary: inv_freq (default or YaRN, modeling_rope_utils) and attention_factor
    void rope_params(int dim, std::vector<double>& inv_freq, double& attention_factor) const {
        const double base = getd("rope_theta", 10000.0);
        inv_freq.resize(dim / 2);
        for (int i = 0; i < dim / 2; ++i) inv_freq[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) / dim);
        attention_factor = 1.0;
        if (!cfg_.contains("rope_scaling") || cfg_["rope_scaling"].is_null()) return;
        const json& rs = cfg_["rope_scaling"];
        const double factor = rs["factor"].get<double>();
        const double orig = rs["original_max_position_embeddings"].get<double>();
        auto get_mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
        const double ms = rs.value("mscale", 0.0), msa = rs.value("mscale_all_dim", 0.0);
        attention_factor = (ms != 0 && msa != 0) ? get_mscale(factor, ms) / get_mscale(factor, msa) : get_mscale(factor, 1.0);
        const double beta_fast = rs.value("beta_fast", 32.0), beta_slow = rs.value("beta_slow", 1.0);
        auto corr = [&](double rot) { return (dim * std::log(orig / (rot * 2 * M_PI))) / (2 * std::log(base)); };
        double low = std::max(std::floor(corr(beta_fast)), 0.0), high = std::min(std::ceil(corr(beta_slow)), dim - 1.0);
        if (low == high) high += 0.001;
        for (int i = 0; i < dim / 2; ++i) {
            const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
            const double extrap_factor = 1.0 - ramp;
            const double e = inv_freq[i];
            inv_freq[i] = e / factor * (1 - extrap_factor) + e * extrap_factor;
        }
    }
    // llama apply_rotary_pos_emb: x * cos + rotate_half(x) * sin, cos = cat(freqs, freqs).
    static void rotate_half_rope(float* x, int dim, int pos, const std::vector<double>& inv, double af) {
        V out(dim);
        for (int j = 0; j < dim; ++j) {
            const float f = static_cast<float>(pos) * static_cast<float>(inv[j % (dim / 2)]);
            const float c = std::cos(f) * static_cast<float>(af), s = std::sin(f) * static_cast<float>(af);
            const float rot = j < dim / 2 ? -x[j + dim / 2] : x[j - dim / 2];
            out[j] = x[j] * c + rot * s;
        }
        std::copy(out.begin(), out.end(), x);
    }

    void attend(const std::vector<V>& q, const std::vector<V>& k, const std::vector<V>& v, int H, int Hkv, int dk, int dv,
                float scale, std::vector<V>& out) const {
        const int n = static_cast<int>(q.size());
        for (int t = 0; t < n; ++t) {
            out[t].assign(static_cast<size_t>(H) * dv, 0.0f);
            for (int h = 0; h < H; ++h) {
                const int kh = h / (H / Hkv);  // repeat_kv
                V s(t + 1);
                for (int j = 0; j <= t; ++j) {
                    float dot = 0.0f;
                    for (int i = 0; i < dk; ++i) dot += q[t][h * dk + i] * k[j][kh * dk + i];
                    s[j] = dot * scale;
                }
                const float mx = *std::max_element(s.begin(), s.end());
                float z = 0.0f;
                for (float& e : s) z += (e = std::exp(e - mx));
                for (int j = 0; j <= t; ++j)
                    for (int i = 0; i < dv; ++i) out[t][h * dv + i] += s[j] / z * v[j][kh * dv + i];
            }
        }
    }

    void gqa(const std::string& p, const std::vector<V>& h, std::vector<V>& out) const {
        const int n = static_cast<int>(h.size()), d = geti("hidden_size"), H = geti("num_attention_heads");
        const int Hkv = cfg_.value("num_key_value_heads", H);
        const int hd = cfg_.contains("head_dim") ? geti("head_dim") : d / H;
        const float eps = static_cast<float>(getd("rms_norm_eps", 1e-6));
        const std::string a = p + "self_attn.";
        const bool bias = type_ == "qwen2_moe";
        std::vector<double> inv;
        double af = 1;
        rope_params(hd, inv, af);
        std::vector<V> q(n), k(n), v(n);
        for (int t = 0; t < n; ++t) {
            q[t] = matvec(a + "q_proj.weight", h[t], H * hd, d, bias ? a + "q_proj.bias" : "");
            k[t] = matvec(a + "k_proj.weight", h[t], Hkv * hd, d, bias ? a + "k_proj.bias" : "");
            v[t] = matvec(a + "v_proj.weight", h[t], Hkv * hd, d, bias ? a + "v_proj.bias" : "");
            if (type_ == "qwen3_moe") {  // q_norm(q.view(..., head_dim)): per head
                for (int hh = 0; hh < H; ++hh) {
                    const V nq = rmsnorm(q[t], a + "q_norm.weight", eps, hh * hd, hd);
                    std::copy(nq.begin(), nq.end(), q[t].begin() + hh * hd);
                }
                for (int hh = 0; hh < Hkv; ++hh) {
                    const V nk = rmsnorm(k[t], a + "k_norm.weight", eps, hh * hd, hd);
                    std::copy(nk.begin(), nk.end(), k[t].begin() + hh * hd);
                }
            }
            if (type_ == "olmoe") {  // q_norm(q_proj(x)) over the whole projection, then clip_qkv
                q[t] = rmsnorm(q[t], a + "q_norm.weight", eps);
                k[t] = rmsnorm(k[t], a + "k_norm.weight", eps);
                if (cfg_.contains("clip_qkv") && !cfg_["clip_qkv"].is_null()) {
                    const float c = cfg_["clip_qkv"].get<float>();
                    for (V* m : {&q[t], &k[t], &v[t]})
                        for (float& e : *m) e = std::clamp(e, -c, c);
                }
            }
            for (int hh = 0; hh < H; ++hh) rotate_half_rope(q[t].data() + hh * hd, hd, t, inv, af);
            for (int hh = 0; hh < Hkv; ++hh) rotate_half_rope(k[t].data() + hh * hd, hd, t, inv, af);
        }
        const float scale = type_ == "granitemoe" ? static_cast<float>(getd("attention_multiplier", 1.0)) : 1.0f / std::sqrt(static_cast<float>(hd));
        std::vector<V> att(n);
        attend(q, k, v, H, Hkv, hd, hd, scale, att);
        for (int t = 0; t < n; ++t) out[t] = matvec(a + "o_proj.weight", att[t], d, H * hd);
    }

    void mla(const std::string& p, const std::vector<V>& h, std::vector<V>& out) const {
        const int n = static_cast<int>(h.size()), d = geti("hidden_size"), H = geti("num_attention_heads");
        const int nope = geti("qk_nope_head_dim"), rd = geti("qk_rope_head_dim"), vd = geti("v_head_dim"), kvr = geti("kv_lora_rank");
        const int qk = nope + rd;
        const std::string a = p + "self_attn.";
        std::vector<double> inv;
        double af = 1;
        rope_params(rd, inv, af);
        std::vector<V> q(n), k(n), v(n);
        for (int t = 0; t < n; ++t) {
            if (cfg_["q_lora_rank"].is_null()) {
                q[t] = matvec(a + "q_proj.weight", h[t], H * qk, d);
            } else {
                const int qr = geti("q_lora_rank");
                const V qa = rmsnorm(matvec(a + "q_a_proj.weight", h[t], qr, d), a + "q_a_layernorm.weight", 1e-6f);
                q[t] = matvec(a + "q_b_proj.weight", qa, H * qk, qr);
            }
            const V ckv = matvec(a + "kv_a_proj_with_mqa.weight", h[t], kvr + rd, d);
            const V kvn = rmsnorm(ckv, a + "kv_a_layernorm.weight", 1e-6f, 0, kvr);
            const V kv = matvec(a + "kv_b_proj.weight", kvn, H * (nope + vd), kvr);
            V k_pe(ckv.begin() + kvr, ckv.end());
            rope_mla(k_pe.data(), rd, t, inv, af);
            k[t].assign(static_cast<size_t>(H) * qk, 0.0f);
            v[t].assign(static_cast<size_t>(H) * vd, 0.0f);
            for (int hh = 0; hh < H; ++hh) {
                rope_mla(q[t].data() + hh * qk + nope, rd, t, inv, af);
                for (int i = 0; i < nope; ++i) k[t][hh * qk + i] = kv[hh * (nope + vd) + i];
                for (int i = 0; i < rd; ++i) k[t][hh * qk + nope + i] = k_pe[i];
                for (int i = 0; i < vd; ++i) v[t][hh * vd + i] = kv[hh * (nope + vd) + nope + i];
            }
        }
        float scale = 1.0f / std::sqrt(static_cast<float>(qk));
        if (type_ != "deepseek_v2" && cfg_.contains("rope_scaling") && !cfg_["rope_scaling"].is_null()) {
            const json& rs = cfg_["rope_scaling"];
            const double msa = rs.value("mscale_all_dim", 0.0), f = rs["factor"].get<double>();
            if (msa != 0) {
                const double m = f <= 1 ? 1.0 : 0.1 * msa * std::log(f) + 1.0;
                scale = static_cast<float>(scale * m * m);
            }
        }
        std::vector<V> att(n);
        attend(q, k, v, H, H, qk, vd, scale, att);
        for (int t = 0; t < n; ++t) out[t] = matvec(a + "o_proj.weight", att[t], d, H * vd);
    }
    // V2: view_as_complex over (2i, 2i+1) times polar(1, freq) * attention_scaling, interleaved
    // back. V3 (rope_interleave): view (d/2, 2), transpose, reshape: evens then odds, then
    // rotate_half; the output stays in that permuted order (q and k alike, so q.k is the same).
    void rope_mla(float* x, int dim, int pos, const std::vector<double>& inv, double af) const {
        if (type_ == "deepseek_v2") {
            for (int i = 0; i < dim / 2; ++i) {
                const float f = static_cast<float>(pos) * static_cast<float>(inv[i]);
                const float c = std::cos(f) * static_cast<float>(af), s = std::sin(f) * static_cast<float>(af);
                const float re = x[2 * i], im = x[2 * i + 1];
                x[2 * i] = re * c - im * s;
                x[2 * i + 1] = re * s + im * c;
            }
            return;
        }
        V perm(dim);
        for (int i = 0; i < dim / 2; ++i) {
            perm[i] = x[2 * i];
            perm[dim / 2 + i] = x[2 * i + 1];
        }
        std::copy(perm.begin(), perm.end(), x);
        rotate_half_rope(x, dim, pos, inv, af);
    }

    static std::vector<int> topk(const V& s, int k) {  // torch.topk: largest first
        std::vector<int> idx(s.size());
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return s[a] > s[b]; });
        idx.resize(static_cast<size_t>(k));
        return idx;
    }
    static float gap(const V& s, int k) {
        V sorted = s;
        std::sort(sorted.begin(), sorted.end(), std::greater<float>());
        return static_cast<int>(sorted.size()) > k ? sorted[k - 1] - sorted[k] : 1.0f;
    }

    V expert(const std::string& p, int e, const V& h) const {
        const int d = static_cast<int>(h.size());
        if (type_ == "granitemoe") {
            const int inter = geti("intermediate_size"), E = geti("num_local_experts");
            (void)E;
            const std::vector<float>& in = W(p + "block_sparse_moe.input_linear.weight");
            const std::vector<float>& outw = W(p + "block_sparse_moe.output_linear.weight");
            V hid(2 * inter, 0.0f);
            for (int o = 0; o < 2 * inter; ++o)
                for (int i = 0; i < d; ++i) hid[o] += in[(static_cast<size_t>(e) * 2 * inter + o) * d + i] * h[i];
            V act(inter);
            for (int i = 0; i < inter; ++i) act[i] = silu(hid[i]) * hid[inter + i];  // chunk(2): first half through the activation
            V y(d, 0.0f);
            for (int o = 0; o < d; ++o)
                for (int i = 0; i < inter; ++i) y[o] += outw[(static_cast<size_t>(e) * d + o) * inter + i] * act[i];
            return y;
        }
        if (type_ == "mixtral") {
            const int inter = geti("intermediate_size");
            const std::string x = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
            V g = matvec(x + "w1.weight", h, inter, d), u = matvec(x + "w3.weight", h, inter, d);
            for (int i = 0; i < inter; ++i) g[i] = silu(g[i]) * u[i];
            return matvec(x + "w2.weight", g, d, inter);
        }
        const int inter = type_ == "olmoe" ? geti("intermediate_size") : geti("moe_intermediate_size");
        return mlp(p + "mlp.experts." + std::to_string(e) + ".", h, inter);
    }

    V moe_block(const std::string& p, const V& h, std::vector<int>* chosen, float* margin) const {
        const int d = static_cast<int>(h.size()), k = geti("num_experts_per_tok");
        std::vector<int> idx;
        V wts;
        if (type_ == "mixtral" || type_ == "granitemoe") {
            const int E = geti("num_local_experts");
            const V lg = matvec(p + (type_ == "mixtral" ? "block_sparse_moe.gate.weight" : "block_sparse_moe.router.layer.weight"), h, E, d);
            idx = topk(lg, k);
            *margin = gap(lg, k);
            const float mx = lg[idx[0]];
            float z = 0;
            for (int i : idx) z += std::exp(lg[i] - mx);
            for (int i : idx) wts.push_back(std::exp(lg[i] - mx) / z);  // = softmax(all) top-k renormalised
        } else if (type_ == "qwen2_moe" || type_ == "qwen3_moe" || type_ == "olmoe" || type_ == "deepseek_v2") {
            const int E = type_ == "deepseek_v2" ? geti("n_routed_experts") : geti("num_experts");
            const V lg = matvec(p + "mlp.gate.weight", h, E, d);
            const float mx = *std::max_element(lg.begin(), lg.end());
            V pr(E);
            float z = 0;
            for (int i = 0; i < E; ++i) z += (pr[i] = std::exp(lg[i] - mx));
            for (float& v : pr) v /= z;
            V sel = pr;
            if (type_ == "deepseek_v2" && cfg_.value("topk_method", std::string("greedy")) == "group_limited_greedy") {
                const int G = geti("n_group"), tg = geti("topk_group"), gs = E / G;
                V gscore(G);
                for (int g = 0; g < G; ++g) gscore[g] = *std::max_element(pr.begin() + g * gs, pr.begin() + (g + 1) * gs);
                const std::vector<int> keep = topk(gscore, tg);
                for (int i = 0; i < E; ++i)
                    if (std::find(keep.begin(), keep.end(), i / gs) == keep.end()) sel[i] = 0.0f;  // masked_fill 0
            }
            idx = topk(sel, k);
            *margin = gap(sel, k);
            for (int i : idx) wts.push_back(pr[i]);
            if (type_ == "deepseek_v2") {
                for (float& w : wts) w *= static_cast<float>(getd("routed_scaling_factor", 1.0));
            } else if (cfg_.value("norm_topk_prob", false)) {
                float s = 0;
                for (float w : wts) s += w;
                for (float& w : wts) w /= s;
            }
        } else {  // deepseek_v3, kimi_k2
            const int E = geti("n_routed_experts"), G = geti("n_group"), tg = geti("topk_group"), gs = E / G;
            const V lg = matvec(p + "mlp.gate.weight", h, E, d);
            V s(E), sc(E);
            for (int i = 0; i < E; ++i) {
                s[i] = 1.0f / (1.0f + std::exp(-lg[i]));
                sc[i] = s[i] + W(p + "mlp.gate.e_score_correction_bias")[i];
            }
            V gscore(G);
            for (int g = 0; g < G; ++g) {
                V part(sc.begin() + g * gs, sc.begin() + (g + 1) * gs);
                std::sort(part.begin(), part.end(), std::greater<float>());
                gscore[g] = part[0] + (gs > 1 ? part[1] : 0.0f);  // topk(2).sum()
            }
            const std::vector<int> keep = topk(gscore, tg);
            V masked = sc;
            for (int i = 0; i < E; ++i)
                if (std::find(keep.begin(), keep.end(), i / gs) == keep.end()) masked[i] = 0.0f;
            idx = topk(masked, k);
            *margin = gap(masked, k);
            for (int i : idx) wts.push_back(s[i]);  // gates from the unbiased scores
            if (cfg_.value("norm_topk_prob", false)) {
                float z = 1e-20f;
                for (float w : wts) z += w;
                for (float& w : wts) w /= z;
            }
            for (float& w : wts) w *= static_cast<float>(getd("routed_scaling_factor", 1.0));
        }
        V y(d, 0.0f);
        for (size_t r = 0; r < idx.size(); ++r) {
            const V e = expert(p, idx[r], h);
            for (int i = 0; i < d; ++i) y[i] += wts[r] * e[i];
        }
        *chosen = idx;
        std::sort(chosen->begin(), chosen->end());
        if (type_ == "qwen2_moe" && has(p + "mlp.shared_expert.gate_proj.weight")) {
            const V s = mlp(p + "mlp.shared_expert.", h, geti("shared_expert_intermediate_size"));
            const float g = matvec(p + "mlp.shared_expert_gate.weight", h, 1, d)[0];
            const float sig = 1.0f / (1.0f + std::exp(-g));
            for (int i = 0; i < d; ++i) y[i] += sig * s[i];
        }
        if (is_mla() && cfg_.value("n_shared_experts", 0) > 0) {
            const V s = mlp(p + "mlp.shared_experts.", h, geti("moe_intermediate_size") * geti("n_shared_experts"));
            for (int i = 0; i < d; ++i) y[i] += s[i];
        }
        return y;
    }
};

}  // namespace moe::ref
