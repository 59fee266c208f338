// Training the tiny MoE language model: hand-written backward, AdamW, schedule, checkpoints.
//
// [SECTION] Products    every weight-sized product on the packed kernels
// [SECTION] Gradients
// [SECTION] Backward building blocks
// [SECTION] Whole-model loss and gradients
// [SECTION] Optimizer and schedule
// [SECTION] Trainer
// [SECTION] Checkpoints
#include "core/models/lm_train.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>

#include <Eigen/Core>

#include "core/engine/packed_gemm.h"
#include "core/error.h"
#include "core/io/file_io.h"
#include "core/io/json_input.h"

namespace moe {

namespace {
float sigmoidf(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// [SECTION] Products
// The forward and backward products go through core/engine/packed_gemm.h, the kernels the
// model's inference runs on, chosen for this CPU (AVX-512, AVX2, portable). The weights change
// every step, so the packed side is packed at each call: one pass over it, against the
// n_tokens (2048 for the default batch) multiply-adds per packed element that follow. Eigen's
// GEMM repacks both sides on every call too, and its threads spin-wait on each other on a busy
// machine (see packed_gemm.h). Inside the per-expert parallel loop the product runs on the
// calling thread (no nested parallel region), so the scratch is per thread.
enum class Into { Set, Add };

struct ProductScratch {
    PackedMatrix packed;
    Mat at;   // a^T for add_atb
    Mat out;  // the product before it is stored or added
};
thread_local ProductScratch t_product;

void store(const Mat& product, MatRef out, Into into) {
    MOE_ASSERT(out.rows() == product.rows() && out.cols() == product.cols(), "product: output shape");
    if (into == Into::Add)
        out += product;
    else
        out = product;
}

// out (=, +=) a b^T: a (n, k), b (m, k) (a weight as stored, (out, in)), out (n, m).
void mul_abt(ConstMatRef a, ConstMatRef b, MatRef out, Into into) {
    ProductScratch& s = t_product;
    s.packed.pack(b);
    matmul_packed(a, s.packed, s.out);
    store(s.out, out, into);
}

// out (=, +=) a b: a (n, k), b (k, m), out (n, m).
void mul_ab(ConstMatRef a, ConstMatRef b, MatRef out, Into into) {
    ProductScratch& s = t_product;
    s.packed.pack_transposed(b);
    matmul_packed(a, s.packed, s.out);
    store(s.out, out, into);
}

// g += a^T b: a (n, m), b (n, k), g (m, k); the weight gradients, summed over the n tokens.
void add_atb(ConstMatRef a, ConstMatRef b, MatRef g) {
    ProductScratch& s = t_product;
    s.at = a.transpose();
    s.packed.pack_transposed(b);
    matmul_packed(s.at, s.packed, s.out);
    store(s.out, g, Into::Add);
}
}  // namespace

// [SECTION] Gradients
LmGrads LmGrads::zeros_like(const LmConfig& cfg) {
    LmGrads g;
    for (const LmTensorInfo& t : lm_tensor_infos(cfg)) g.g.push_back(Mat::Zero(t.rows, t.cols));
    return g;
}

void LmGrads::set_zero() {
    for (Mat& m : g) m.setZero();
}

double LmGrads::squared_norm() const {
    double s = 0.0;
    for (const Mat& m : g) s += m.cast<double>().squaredNorm();
    return s;
}

// [SECTION] Backward building blocks
namespace lm_grad {

void rmsnorm_backward(ConstMatRef x, const Vec& gain, const Vec& inv_rms, ConstMatRef dy, MatRef dx,
                      Eigen::Ref<Vec> dgain) {
    const int n = static_cast<int>(x.rows());
    const float d = static_cast<float>(x.cols());
    for (int t = 0; t < n; ++t) {
        const float r = inv_rms(t);
        // y = g * x * r, r = (mean(x^2) + eps)^-1/2  =>  dx = r (g dy) - r^3 / d * x * sum(g dy x)
        const RowVec gdy = dy.row(t).cwiseProduct(gain.transpose());  // (d_model)
        const float dot = gdy.dot(x.row(t));
        dx.row(t) += r * gdy - (r * r * r / d * dot) * x.row(t);
        dgain += (dy.row(t).cwiseProduct(x.row(t)) * r).transpose();
    }
}

void attention_backward(ConstMatRef q, ConstMatRef k, ConstMatRef v, const std::vector<Mat>& probs,
                        ConstMatRef dout, int n_heads, MatRef dq, MatRef dk, MatRef dv) {
    const int n = static_cast<int>(q.rows());
    const int hd = static_cast<int>(q.cols()) / n_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    for (int h = 0; h < n_heads; ++h) {
        const Mat& p = probs[h];                              // (n, n)
        const Mat d_o = dout.middleCols(h * hd, hd);          // (n, hd)
        const Mat v_h = v.middleCols(h * hd, hd);             // (n, hd)
        Mat dp = d_o * v_h.transpose();                       // (n, n)
        dv.middleCols(h * hd, hd) += p.transpose() * d_o;
        // softmax backward, row by row: ds = p * (dp - sum_j dp_j p_j); masked p are 0.
        for (int i = 0; i < n; ++i) {
            const float dot = dp.row(i).head(i + 1).dot(p.row(i).head(i + 1));
            dp.row(i).head(i + 1) = (p.row(i).head(i + 1).array() * (dp.row(i).head(i + 1).array() - dot)).matrix() * scale;
            dp.row(i).tail(n - i - 1).setZero();
        }
        dq.middleCols(h * hd, hd) += dp * k.middleCols(h * hd, hd);
        dk.middleCols(h * hd, hd) += dp.transpose() * q.middleCols(h * hd, hd);
    }
}

void swiglu_backward(ConstMatRef x, const Mat& w1, const Mat& w3, const Mat& w2, ConstMatRef h_pre,
                     ConstMatRef h_lin, ConstMatRef h_act, ConstMatRef dy, MatRef dx, MatRef dw1,
                     MatRef dw3, MatRef dw2) {
    add_atb(dy, h_act, dw2);                                   // (d_model, d_ff)
    Mat d_act(dy.rows(), w2.cols());                           // (n, d_ff)
    mul_ab(dy, w2, d_act, Into::Set);
    Mat d_pre(d_act.rows(), d_act.cols());                     // (n, d_ff)
    Mat d_lin(d_act.rows(), d_act.cols());                     // (n, d_ff)
    for (int64_t i = 0; i < d_act.size(); ++i) {
        const float z = h_pre.data()[i];
        const float s = sigmoidf(z);
        const float silu_z = z * s;
        d_lin.data()[i] = d_act.data()[i] * silu_z;
        d_pre.data()[i] = d_act.data()[i] * h_lin.data()[i] * s * (1.0f + z * (1.0f - s));
    }
    add_atb(d_pre, x, dw1);
    add_atb(d_lin, x, dw3);
    mul_ab(d_pre, w1, dx, Into::Add);
    mul_ab(d_lin, w3, dx, Into::Add);
}

void moe_backward(const MoeLayer& layer, const RouterConfig& rc, ConstMatRef x, const RoutingTrace& trace,
                  const MoeForwardCache& cache, ConstMatRef dy, float aux_scale, float z_scale, MatRef dx,
                  MoeLayerWeights& dw) {
    const MoeLayerConfig& cfg = layer.config();
    const MoeLayerWeights& w = layer.weights();
    const int n_tokens = static_cast<int>(x.rows());
    const int n_experts = cfg.n_experts;
    const int n_kept = cache.expert_begin.empty() ? 0 : cache.expert_begin[n_experts];
    MOE_ASSERT(static_cast<int>(cache.order.size()) == n_kept, "moe_backward: cache does not match the trace");
    std::vector<float> d_gate(trace.pairs.size(), 0.0f);  // (n_pairs)
    Mat dx_rows(n_kept, cfg.d_model);                      // (n_kept, d_model) per kept pair
    // Experts are independent: each thread owns whole experts, so the result does not depend on
    // the thread count.
#pragma omp parallel for schedule(dynamic)
    for (int e = 0; e < n_experts; ++e) {
        const int b = cache.expert_begin[e], n = cache.expert_begin[e + 1] - b;
        if (n == 0) continue;
        Mat xs(n, cfg.d_model), dys(n, cfg.d_model);  // (n, d_model) rows of this expert
        for (int r = 0; r < n; ++r) {
            const int pi = cache.order[b + r];
            const RoutedPair& p = trace.pairs[pi];
            xs.row(r) = x.row(p.token);
            d_gate[pi] = dy.row(p.token).dot(cache.expert_out.row(b + r));
            dys.row(r) = dy.row(p.token) * p.gate;
        }
        Mat dxs = Mat::Zero(n, cfg.d_model);
        const ExpertWeights& ew = w.experts[e];
        ExpertWeights& g = dw.experts[e];
        swiglu_backward(xs, ew.w1, ew.w3, ew.w2, cache.h_pre.middleRows(b, n), cache.h_lin.middleRows(b, n),
                        cache.h_act.middleRows(b, n), dys, dxs, g.w1, g.w3, g.w2);
        dx_rows.middleRows(b, n) = dxs;
    }
    for (int r = 0; r < n_kept; ++r) dx.row(trace.pairs[cache.order[r]].token) += dx_rows.row(r);
    for (int s = 0; s < cfg.n_shared; ++s) {
        const ExpertWeights& ew = w.shared[s];
        ExpertWeights& g = dw.shared[s];
        swiglu_backward(x, ew.w1, ew.w3, ew.w2, cache.shared_h_pre[s], cache.shared_h_lin[s],
                        cache.shared_h_act[s], dy, dx, g.w1, g.w3, g.w2);
    }
    if (rc.scheme == Scheme::Hash) return;  // no learned router
    Mat d_logits = Mat::Zero(n_tokens, n_experts);  // (n_tokens, n_experts)
    gate_backward(rc, trace, d_gate, d_logits);
    if (aux_scale != 0.0f) aux_loss_backward(trace, aux_scale, d_logits);
    if (z_scale != 0.0f) z_loss_backward(trace, z_scale, d_logits);
    add_atb(d_logits, cache.x_router, dw.w_router);
    // Jitter is treated as a constant factor on the input (its gradient path is dropped).
    mul_ab(d_logits, w.w_router, dx, Into::Add);
}

double head_cross_entropy(ConstMatRef h, const Mat& w, std::span<const uint8_t> targets, Mat* dh, Mat* dw) {
    const int n = static_cast<int>(h.rows());
    Mat logits(n, w.rows());  // (n, vocab)
    mul_abt(h, w, logits, Into::Set);
    double loss = 0.0;
    const float inv_n = 1.0f / static_cast<float>(n);
    for (int t = 0; t < n; ++t) {
        float* row = logits.row(t).data();
        const int v = static_cast<int>(logits.cols());
        float mx = row[0];
        for (int j = 1; j < v; ++j) mx = std::max(mx, row[j]);
        double sum = 0.0;
        for (int j = 0; j < v; ++j) sum += std::exp(static_cast<double>(row[j] - mx));
        const double lse = mx + std::log(sum);
        loss += lse - row[targets[t]];
        if (dh || dw) {
            // dlogits = (softmax - onehot) / n
            for (int j = 0; j < v; ++j) row[j] = static_cast<float>(std::exp(row[j] - lse)) * inv_n;
            row[targets[t]] -= inv_n;
        }
    }
    if (dw) add_atb(logits, h, *dw);
    if (dh) mul_ab(logits, w, *dh, Into::Add);
    return loss / n;
}

}  // namespace lm_grad

// [SECTION] Whole-model loss and gradients
const char* balance_name(Balance b) {
    switch (b) {
        case Balance::Switch: return "switch";
        case Balance::None: return "none";
        case Balance::Bias: return "bias";
    }
    return "?";
}

bool balance_from_name(const std::string& name, Balance& out) {
    for (Balance b : {Balance::Switch, Balance::None, Balance::Bias})
        if (name == balance_name(b)) {
            out = b;
            return true;
        }
    return false;
}

namespace {

struct BlockCache {
    Mat x_in;                   // (n, d_model) residual stream entering the block
    Vec inv1, inv2;             // (n) RMSNorm inverse rms
    Mat h1;                     // (n, d_model) normed attention input
    Mat q, k, v;                // (n, d_model) q, k after RoPE
    std::vector<std::vector<Mat>> probs;  // (batch) x (n_heads) each (seq, seq)
    Mat o;                      // (n, d_model) attention output before wo
    Mat x_mid;                  // (n, d_model) residual after attention
    Mat h2;                     // (n, d_model) normed FFN input
    RoutingTrace trace;
    MoeForwardCache mc;
    Mat d_pre, d_lin, d_act;    // (n, d_ff_dense) dense FFN intermediates
};

// Indices of each block's tensors in lm_tensor_infos order, so grads can be addressed by name.
struct BlockIdx {
    int attn_norm, wq, wk, wv, wo, ffn_norm;
    int w_router = -1, first_expert = -1;  // MoE: experts start here, 3 tensors each, then shared
    int w1 = -1, w3 = -1, w2 = -1;         // dense
};

std::vector<BlockIdx> block_indices(const LmConfig& c, int& final_norm, int& head) {
    std::vector<BlockIdx> out;
    int i = 0;
    i++;  // tok_emb
    head = c.tie_embeddings ? 0 : i++;
    final_norm = i++;
    for (int l = 0; l < c.n_layers; ++l) {
        BlockIdx b{};
        b.attn_norm = i++;
        b.wq = i++;
        b.wk = i++;
        b.wv = i++;
        b.wo = i++;
        b.ffn_norm = i++;
        if (is_moe_layer(c, l)) {
            b.w_router = i++;
            i += 2;  // w_noise, expert_bias
            b.first_expert = i;
            i += 3 * (c.moe.n_experts + c.moe.n_shared);
        } else {
            b.w1 = i++;
            b.w3 = i++;
            b.w2 = i++;
        }
        out.push_back(b);
    }
    return out;
}

// The MoE gradient container for one layer, as views would be nicer but MoeLayerWeights holds
// Mats: we swap the LmGrads matrices in and out (no copies).
void swap_moe_grads(LmGrads& g, const BlockIdx& b, const LmConfig& c, MoeLayerWeights& dw) {
    dw.experts.resize(c.moe.n_experts);
    dw.shared.resize(c.moe.n_shared);
    dw.w_router.swap(g.g[b.w_router]);
    int i = b.first_expert;
    for (ExpertWeights& e : dw.experts) {
        e.w1.swap(g.g[i++]);
        e.w3.swap(g.g[i++]);
        e.w2.swap(g.g[i++]);
    }
    for (ExpertWeights& e : dw.shared) {
        e.w1.swap(g.g[i++]);
        e.w3.swap(g.g[i++]);
        e.w2.swap(g.g[i++]);
    }
}

}  // namespace

double lm_loss_and_grads(const LmModel& model, const RouterConfig& rc, const LossOptions& lo,
                         std::span<const uint8_t> tokens, int batch, int seq, LmGrads* grads,
                         LossParts* parts) {
    const LmModel::Impl& m = model.impl();
    const LmConfig& c = m.cfg;
    MOE_ASSERT(batch >= 1 && seq >= 1 && seq <= c.max_seq, "lm_loss_and_grads: batch and seq in range");
    MOE_ASSERT(static_cast<int64_t>(tokens.size()) == int64_t{batch} * (seq + 1),
               "lm_loss_and_grads: tokens must hold batch rows of seq + 1 bytes");
    const int n = batch * seq;
    const int d = c.d_model;
    std::vector<uint8_t> inputs(n), targets(n);
    std::vector<int32_t> ids(n);
    for (int b = 0; b < batch; ++b)
        for (int t = 0; t < seq; ++t) {
            inputs[b * seq + t] = tokens[b * (seq + 1) + t];
            targets[b * seq + t] = tokens[b * (seq + 1) + t + 1];
            ids[b * seq + t] = inputs[b * seq + t];
        }
    RouterConfig rcb = rc;
    std::vector<BlockCache> cache(c.n_layers);
    Mat x(n, d);  // (n, d_model) residual stream
    for (int t = 0; t < n; ++t) x.row(t) = m.tok_emb.row(inputs[t]);
    Mat y;
    for (int l = 0; l < c.n_layers; ++l) {
        const LmBlock& blk = m.blocks[l];
        BlockCache& bc = cache[l];
        bc.x_in = x;
        lm_ops::rmsnorm(x, blk.attn_norm, c.norm_eps, bc.h1, &bc.inv1);
        for (Mat* m_out : {&bc.q, &bc.k, &bc.v}) m_out->resize(n, d);
        mul_abt(bc.h1, blk.wq, bc.q, Into::Set);
        mul_abt(bc.h1, blk.wk, bc.k, Into::Set);
        mul_abt(bc.h1, blk.wv, bc.v, Into::Set);
        bc.o.resize(n, d);
        bc.probs.assign(batch, {});
#pragma omp parallel for schedule(static)
        for (int b = 0; b < batch; ++b) {
            MatRef qb = bc.q.middleRows(b * seq, seq);
            MatRef kb = bc.k.middleRows(b * seq, seq);
            lm_ops::rope(qb, c.n_heads, 0, m.rope_cos, m.rope_sin);
            lm_ops::rope(kb, c.n_heads, 0, m.rope_cos, m.rope_sin);
            lm_ops::attention(qb, kb, bc.v.middleRows(b * seq, seq), c.n_heads, 0, bc.o.middleRows(b * seq, seq),
                              &bc.probs[b]);
        }
        mul_abt(bc.o, blk.wo, x, Into::Add);
        bc.x_mid = x;
        lm_ops::rmsnorm(x, blk.ffn_norm, c.norm_eps, bc.h2, &bc.inv2);
        if (blk.moe) {
            blk.moe->forward(bc.h2, rcb, ids, y, bc.trace, grads ? &bc.mc : nullptr);
        } else {
            lm_ops::swiglu(bc.h2, blk.w1, blk.w3, blk.w2, y, &bc.d_pre, &bc.d_lin, &bc.d_act);
        }
        x += y;
    }
    Mat hf;
    Vec inv_f;
    lm_ops::rmsnorm(x, m.final_norm, c.norm_eps, hf, &inv_f);

    int i_final = 0, i_head = 0;
    const std::vector<BlockIdx> bidx = block_indices(c, i_final, i_head);
    Mat dhf;
    if (grads) {
        grads->set_zero();
        dhf = Mat::Zero(n, d);
    }
    const double ce = lm_grad::head_cross_entropy(hf, m.head_weight(), targets, grads ? &dhf : nullptr,
                                                  grads ? &grads->g[i_head] : nullptr);
    const bool use_aux = lo.aux_alpha > 0.0f;
    const bool use_z = lo.z_beta > 0.0f;
    double aux = 0, z = 0, cv = 0;
    int n_moe = 0;
    for (const BlockCache& bc : cache) {
        if (bc.trace.n_tokens == 0) continue;
        aux += bc.trace.stats.aux_loss;
        z += bc.trace.stats.z_loss;
        cv += bc.trace.stats.load_cv;
        ++n_moe;
    }
    const double total = ce + (use_aux ? lo.aux_alpha * aux : 0.0) + (use_z ? lo.z_beta * z : 0.0);
    if (parts) {
        parts->ce = ce;
        parts->aux = n_moe ? aux / n_moe : 0.0;
        parts->z = n_moe ? z / n_moe : 0.0;
        parts->load_cv = n_moe ? cv / n_moe : 0.0;
        parts->total = total;
        parts->traces.clear();
    }
    if (grads) {
        LmGrads& g = *grads;
        Mat dx = Mat::Zero(n, d);  // (n, d_model) gradient of the residual stream
        lm_grad::rmsnorm_backward(x, m.final_norm, inv_f, dhf, dx, Eigen::Map<Vec>(g.g[i_final].data(), d));
        Mat dh(n, d), dq(n, d), dk(n, d), dv(n, d), d_o(n, d);
        for (int l = c.n_layers - 1; l >= 0; --l) {
            const LmBlock& blk = m.blocks[l];
            BlockCache& bc = cache[l];
            const BlockIdx& bi = bidx[l];
            // FFN sublayer: y added to the residual, so dy = dx.
            dh.setZero();
            if (blk.moe) {
                MoeLayerWeights dw;
                swap_moe_grads(g, bi, c, dw);
                lm_grad::moe_backward(*blk.moe, rcb, bc.h2, bc.trace, bc.mc, dx, use_aux ? lo.aux_alpha : 0.0f,
                                      use_z ? lo.z_beta : 0.0f, dh, dw);
                swap_moe_grads(g, bi, c, dw);
            } else {
                lm_grad::swiglu_backward(bc.h2, blk.w1, blk.w3, blk.w2, bc.d_pre, bc.d_lin, bc.d_act, dx, dh,
                                         g.g[bi.w1], g.g[bi.w3], g.g[bi.w2]);
            }
            lm_grad::rmsnorm_backward(bc.x_mid, blk.ffn_norm, bc.inv2, dh, dx, Eigen::Map<Vec>(g.g[bi.ffn_norm].data(), d));
            // Attention sublayer.
            add_atb(dx, bc.o, g.g[bi.wo]);
            mul_ab(dx, blk.wo, d_o, Into::Set);
            dq.setZero();
            dk.setZero();
            dv.setZero();
#pragma omp parallel for schedule(static)
            for (int b = 0; b < batch; ++b) {
                const int r0 = b * seq;
                lm_grad::attention_backward(bc.q.middleRows(r0, seq), bc.k.middleRows(r0, seq),
                                            bc.v.middleRows(r0, seq), bc.probs[b], d_o.middleRows(r0, seq),
                                            c.n_heads, dq.middleRows(r0, seq), dk.middleRows(r0, seq),
                                            dv.middleRows(r0, seq));
                MatRef dqb = dq.middleRows(r0, seq);
                MatRef dkb = dk.middleRows(r0, seq);
                lm_ops::rope(dqb, c.n_heads, 0, m.rope_cos, m.rope_sin, -1.0f);
                lm_ops::rope(dkb, c.n_heads, 0, m.rope_cos, m.rope_sin, -1.0f);
            }
            add_atb(dq, bc.h1, g.g[bi.wq]);
            add_atb(dk, bc.h1, g.g[bi.wk]);
            add_atb(dv, bc.h1, g.g[bi.wv]);
            mul_ab(dq, blk.wq, dh, Into::Set);
            mul_ab(dk, blk.wk, dh, Into::Add);
            mul_ab(dv, blk.wv, dh, Into::Add);
            lm_grad::rmsnorm_backward(bc.x_in, blk.attn_norm, bc.inv1, dh, dx, Eigen::Map<Vec>(g.g[bi.attn_norm].data(), d));
        }
        Mat& demb = g.g[0];
        for (int t = 0; t < n; ++t) demb.row(inputs[t]) += dx.row(t);
    }
    if (parts)
        for (BlockCache& bc : cache)
            if (bc.trace.n_tokens > 0) parts->traces.push_back(std::move(bc.trace));
    return total;
}

// [SECTION] Optimizer and schedule
void validate(const TrainConfig& tc, const LmConfig& model, const char* where) {
    auto bad = [&](const char* field, const std::string& value, const std::string& hint) {
        throw Error(where, field, "is " + value, hint);
    };
    if (tc.steps < 1 || tc.steps > 10000000) bad("steps", num(tc.steps), "expected 1..10000000");
    if (tc.batch < 1 || tc.batch > 4096) bad("batch", num(tc.batch), "expected 1..4096");
    if (tc.seq < 1 || tc.seq > model.max_seq) bad("seq", num(tc.seq), "expected 1..max_seq = " + num(model.max_seq));
    if (!(tc.lr > 0.0f && tc.lr < 1.0f)) bad("lr", fnum(tc.lr), "expected 0 < lr < 1, e.g. 0.003");
    if (!(tc.min_lr_ratio >= 0.0f && tc.min_lr_ratio <= 1.0f)) bad("min_lr_ratio", fnum(tc.min_lr_ratio), "expected 0..1");
    if (tc.warmup < 0) bad("warmup", num(tc.warmup), "expected >= 0");
    if (!(tc.weight_decay >= 0.0f && tc.weight_decay < 10.0f)) bad("weight_decay", fnum(tc.weight_decay), "expected 0..10");
    if (!(tc.beta1 >= 0.0f && tc.beta1 < 1.0f)) bad("beta1", fnum(tc.beta1), "expected 0 <= beta1 < 1");
    if (!(tc.beta2 >= 0.0f && tc.beta2 < 1.0f)) bad("beta2", fnum(tc.beta2), "expected 0 <= beta2 < 1");
    if (!(tc.adam_eps > 0.0f)) bad("adam_eps", fnum(tc.adam_eps), "expected > 0");
    if (!(tc.grad_clip >= 0.0f && std::isfinite(tc.grad_clip))) bad("grad_clip", fnum(tc.grad_clip), "expected >= 0 (0 = off)");
    if (!(tc.loss.aux_alpha >= 0.0f && tc.loss.aux_alpha < 10.0f)) bad("aux_alpha", fnum(tc.loss.aux_alpha), "expected 0..10");
    if (!(tc.loss.z_beta >= 0.0f && tc.loss.z_beta < 10.0f)) bad("z_beta", fnum(tc.loss.z_beta), "expected 0..10");
    if (tc.threads < 1 || tc.threads > 256) bad("threads", num(tc.threads), "expected 1..256");
}

float lr_at(const TrainConfig& tc, int step) {
    if (step < tc.warmup) return tc.lr * static_cast<float>(step + 1) / static_cast<float>(tc.warmup);
    const int span = std::max(1, tc.steps - tc.warmup);
    const double progress = std::min(1.0, static_cast<double>(step - tc.warmup) / span);
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    return static_cast<float>(tc.lr * (tc.min_lr_ratio + (1.0 - tc.min_lr_ratio) * cosine));
}

AdamW::AdamW(const LmConfig& cfg) : infos_(lm_tensor_infos(cfg)) {
    for (const LmTensorInfo& t : infos_) {
        m_.push_back(Mat::Zero(t.rows, t.cols));
        v_.push_back(Mat::Zero(t.rows, t.cols));
    }
}

void AdamW::step(std::span<float* const> params, const LmGrads& grads, float lr, const TrainConfig& tc) {
    MOE_ASSERT(params.size() == infos_.size() && grads.g.size() == infos_.size(), "AdamW: one param per tensor");
    ++t_;
    const double bc1 = 1.0 - std::pow(static_cast<double>(tc.beta1), t_);
    const double bc2 = 1.0 - std::pow(static_cast<double>(tc.beta2), t_);
    const float b1 = tc.beta1, b2 = tc.beta2;
    for (size_t i = 0; i < infos_.size(); ++i) {
        if (!infos_[i].trainable) continue;
        const float decay = infos_[i].decay ? tc.weight_decay : 0.0f;
        float* p = params[i];
        float* mi = m_[i].data();
        float* vi = v_[i].data();
        const float* g = grads.g[i].data();
        const int64_t n = m_[i].size();
        for (int64_t j = 0; j < n; ++j) {
            mi[j] = b1 * mi[j] + (1.0f - b1) * g[j];
            vi[j] = b2 * vi[j] + (1.0f - b2) * g[j] * g[j];
            const double mhat = mi[j] / bc1;
            const double vhat = vi[j] / bc2;
            // Decoupled weight decay (Loshchilov & Hutter): shrink the weight, apart from Adam.
            p[j] -= lr * decay * p[j];
            p[j] -= static_cast<float>(lr * mhat / (std::sqrt(vhat) + tc.adam_eps));
        }
    }
}

// [SECTION] Trainer
namespace {
RouterConfig train_router(const LmConfig& c, Balance b) {
    RouterConfig rc = c.router;
    if (b == Balance::Bias) rc.scheme = Scheme::SigmoidBias;
    rc.add_noise = false;
    rc.jitter_eps = 0.0f;
    return rc;
}
LossOptions train_loss(const TrainConfig& tc) {
    LossOptions lo = tc.loss;
    if (tc.balance != Balance::Switch) lo.aux_alpha = 0.0f;
    if (tc.balance == Balance::None) lo.z_beta = 0.0f;
    return lo;
}
}  // namespace

Trainer::Trainer(LmModel& model, std::string train_text, TrainConfig tc)
    : model_(model), text_(std::move(train_text)), tc_(tc) {
    const LmConfig& c = model_.config();
    validate(tc_, c, "TrainConfig");
    if (static_cast<int64_t>(text_.size()) < tc_.seq + 1)
        throw Error("Trainer", "train_text", "has " + num(static_cast<int64_t>(text_.size())) + " bytes",
                    "need at least seq + 1 = " + num(tc_.seq + 1));
    opt_ = AdamW(c);
    grads_ = LmGrads::zeros_like(c);
    // The model remembers the routing it was trained with.
    model_.impl().cfg.router.scheme = train_router(c, tc_.balance).scheme;
}

TrainMetrics Trainer::step() {
    const auto t0 = std::chrono::steady_clock::now();
    const LmConfig& c = model_.config();
    const int B = tc_.batch, S = tc_.seq;
    // Batch windows come from (seed, step) alone, so a resumed run draws the same batches.
    std::mt19937_64 rng(tc_.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(step_) * 1000003ULL + 17);
    std::uniform_int_distribution<int64_t> pick(0, static_cast<int64_t>(text_.size()) - S - 1);
    std::vector<uint8_t> tokens(static_cast<size_t>(B) * (S + 1));
    for (int b = 0; b < B; ++b) {
        const int64_t off = pick(rng);
        std::memcpy(tokens.data() + static_cast<size_t>(b) * (S + 1), text_.data() + off, S + 1);
    }
    const RouterConfig rc = train_router(c, tc_.balance);
    const LossOptions lo = train_loss(tc_);
    LossParts parts;
    lm_loss_and_grads(model_, rc, lo, tokens, B, S, &grads_, &parts);
    const double gnorm = std::sqrt(grads_.squared_norm());
    if (tc_.grad_clip > 0.0f && gnorm > tc_.grad_clip) {
        const float s = static_cast<float>(tc_.grad_clip / gnorm);
        for (Mat& g : grads_.g) g *= s;
    }
    const float lr = lr_at(tc_, step_);
    const std::vector<float*> params = lm_tensor_data(model_.impl());  // also invalidates packed experts
    opt_.step(params, grads_, lr, tc_);
    if (tc_.balance == Balance::Bias) {
        int i = 0;
        for (LmBlock& blk : model_.impl().blocks) {
            if (!blk.moe) continue;
            update_expert_bias(blk.moe->mutable_weights().expert_bias, parts.traces[i++], rc.bias_update_rate);
        }
    }
    ++step_;
    TrainMetrics mt;
    mt.step = step_;
    mt.loss = parts.ce;
    mt.bpb = parts.ce / std::numbers::ln2;
    mt.aux = parts.aux;
    mt.z = parts.z;
    mt.load_cv = parts.load_cv;
    mt.grad_norm = gnorm;
    mt.lr = lr;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    mt.tokens_per_s = dt > 0 ? B * S / dt : 0.0;
    return mt;
}

double Trainer::evaluate_bpb(const LmModel& model, const std::string& text, int seq, int64_t max_bytes) {
    const LmConfig& c = model.config();
    seq = std::clamp(seq, 1, c.max_seq);
    const int64_t usable = std::min<int64_t>(max_bytes, static_cast<int64_t>(text.size()));
    const int64_t n_win = (usable - 1) / seq;
    if (n_win < 1) return 0.0;
    double sum = 0.0;
    int64_t count = 0;
    const RouterConfig rc = c.router;
    const int per_batch = 8;
    for (int64_t w0 = 0; w0 < n_win; w0 += per_batch) {
        const int nb = static_cast<int>(std::min<int64_t>(per_batch, n_win - w0));
        std::vector<uint8_t> tok(static_cast<size_t>(nb) * (seq + 1));
        for (int b = 0; b < nb; ++b)
            std::memcpy(tok.data() + static_cast<size_t>(b) * (seq + 1), text.data() + (w0 + b) * seq, seq + 1);
        LossParts parts;
        lm_loss_and_grads(model, rc, LossOptions{0.0f, 0.0f}, tok, nb, seq, nullptr, &parts);
        sum += parts.ce * nb * seq;
        count += int64_t{nb} * seq;
    }
    return sum / count / std::numbers::ln2;
}

// [SECTION] Checkpoints
namespace {
using json = nlohmann::json;

std::string pack_moments(const std::vector<Mat>& m, const std::vector<Mat>& v) {
    std::string out;
    for (const std::vector<Mat>* set : {&m, &v})
        for (const Mat& x : *set) out.append(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
    return out;
}
}  // namespace

void Trainer::save_checkpoint(const std::string& path) const {
    model_.save(path);
    json j{{"format", "moelab-lm-train"}, {"step", step_}, {"adam_t", opt_.t_}, {"seed", tc_.seed},
           {"steps", tc_.steps}, {"batch", tc_.batch}, {"seq", tc_.seq}, {"lr", tc_.lr},
           {"warmup", tc_.warmup}, {"balance", balance_name(tc_.balance)}};
    write_file_atomic(path + ".train.json", j.dump(2) + "\n");
    write_file_atomic(path + ".optim", pack_moments(opt_.m_, opt_.v_));
}

void Trainer::load_checkpoint(const std::string& path) {
    const std::string jpath = path + ".train.json";
    const std::string hint = "expected a checkpoint written by moelab-cli train";
    const json j = parse_json_input(read_file(jpath, 1 << 20), jpath, "JSON", hint);
    if (!j.is_object()) throw Error(jpath, "JSON", "is " + json_shown(j), hint);
    // Exact integers: get<int>() turned "step": 1e30 into undefined behaviour (issue 15).
    const auto field = [&](const char* key) {
        const auto it = j.find(key);
        if (it == j.end()) throw Error(jpath, key, "is missing", hint);
        return static_cast<int>(json_integer(*it, jpath, key, 0, INT32_MAX, hint));
    };
    const int step = field("step");
    const int adam_t = field("adam_t");
    const std::string opath = path + ".optim";
    const std::string bytes = read_file(opath);
    size_t expect = 0;
    for (const Mat& x : opt_.m_) expect += 2 * x.size() * sizeof(float);
    if (bytes.size() != expect)
        throw Error(opath, "size", "is " + num(static_cast<int64_t>(bytes.size())) + " bytes",
                    "expected " + num(static_cast<int64_t>(expect)) + " for this model's optimizer state");
    size_t off = 0;
    for (std::vector<Mat>* set : {&opt_.m_, &opt_.v_})
        for (Mat& x : *set) {
            std::memcpy(x.data(), bytes.data() + off, x.size() * sizeof(float));
            off += x.size() * sizeof(float);
        }
    step_ = step;
    opt_.t_ = adam_t;
}

}  // namespace moe
